//! `voicepay payees list|add|remove`: the payee book, only whose entries can be paid.

use std::process::ExitCode;

use anyhow::Result;
use voicepay_core::control;
use voicepay_device::profile::DeviceProfile;

use super::args::PayeesCommand;
use super::store::device_command;

pub fn run(command: PayeesCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let (data_dir, request) = match command {
        PayeesCommand::List { data_dir, json } => (data_dir, control::Request::PayeesList { json }),
        PayeesCommand::Add {
            name,
            aliases,
            data_dir,
        } => (data_dir, control::Request::PayeesAdd { name, aliases }),
        PayeesCommand::Remove { name, data_dir } => {
            (data_dir, control::Request::PayeesRemove { name })
        }
    };
    device_command(data_dir, profile, request)
}
