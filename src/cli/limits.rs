//! `voicepay limits show|set`: the user's limits, in the profile's currency.

use std::process::ExitCode;

use anyhow::{Context, Result};
use voicepay_core::control;
use voicepay_core::money::Money;
use voicepay_device::profile::DeviceProfile;

use super::args::LimitsCommand;
use super::store::device_command;

pub fn run(command: LimitsCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    match command {
        LimitsCommand::Show { data_dir, json } => {
            device_command(data_dir, profile, control::Request::LimitsShow { json })
        }
        LimitsCommand::Set {
            auto,
            daily,
            code,
            data_dir,
        } => {
            let currency = profile.default_currency;
            let amount = |text: &str| {
                Money::parse_decimal(text, currency).with_context(|| format!("amount {text:?}"))
            };
            let optional = |text: &str| -> Result<Option<Money>> {
                if text == "none" {
                    Ok(None)
                } else {
                    amount(text).map(Some)
                }
            };
            let request = control::Request::LimitsSet {
                auto: auto.as_deref().map(amount).transpose()?,
                daily: daily.as_deref().map(optional).transpose()?,
                code: code.as_deref().map(optional).transpose()?,
            };
            device_command(data_dir, profile, request)
        }
    }
}
