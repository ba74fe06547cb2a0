//! `voicepay history`, `outbox` and `status`, and the way every store command goes: through the running daemon, else on the store itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use voicepay_core::{control, durable};
use voicepay_device::control as device_control;
use voicepay_device::identity as device_identity;
use voicepay_device::phrasebook::Phrasebook;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::store::{Store, StoreConfig, StoreError};

use super::print_reply;

pub fn history(
    data_dir: Option<PathBuf>,
    profile: &DeviceProfile,
    json: bool,
    verify: bool,
    agent: Option<String>,
) -> Result<ExitCode> {
    let request = control::Request::History {
        json,
        verify,
        agent,
    };
    device_command(data_dir, profile, request)
}

pub fn outbox(data_dir: Option<PathBuf>, profile: &DeviceProfile, json: bool) -> Result<ExitCode> {
    device_command(data_dir, profile, control::Request::Outbox { json })
}

/// Through the daemon running on the data directory if there is one (sled
/// lets one process open the store), else on the store itself, with the
/// same answers ([`device_control::device`]).
pub fn device_command(
    data_dir: Option<PathBuf>,
    profile: &DeviceProfile,
    request: control::Request,
) -> Result<ExitCode> {
    let data_dir = super::data_dir_or_default(data_dir);
    let book = device_control::DeviceBook {
        profile: profile.payee_book(),
        live: None,
        calendar: profile.payments.calendar.clone(),
        gateway: device_identity::load_gateway_key(&data_dir).ok(),
        phrasebook: Phrasebook::new(profile.language),
    };
    ask_daemon_or_store(&data_dir, profile, &request, |store| {
        device_control::device(&store, &book, &request)
    })
}

/// Through the running daemon, else what the store says, plainly marked
/// "not running".
pub fn status(data_dir: Option<PathBuf>, profile: &DeviceProfile, json: bool) -> Result<ExitCode> {
    let data_dir = super::data_dir_or_default(data_dir);
    let request = control::Request::Status { json };
    ask_daemon_or_store(&data_dir, profile, &request, |store| {
        let device_id = device_identity::load_device_key(&data_dir)
            .ok()
            .map(|key| voicepay_core::protocol::device_id_for(&key.public_key()));
        device_control::status(&store, device_id.as_deref(), None, json)
    })
}

/// [`control::ask_or_answer`] for the device's store.
fn ask_daemon_or_store(
    data_dir: &Path,
    profile: &DeviceProfile,
    request: &control::Request,
    answer: impl FnOnce(Store) -> control::Reply,
) -> Result<ExitCode> {
    let open_now = || {
        let config = StoreConfig::new(data_dir.join("store"))
            .with_initial_limits(profile.limits.clone())
            .with_lock_wait(Duration::ZERO);
        match Store::open(&config) {
            Err(StoreError::Db(error)) if durable::is_lock_held(&error) => Ok(None),
            opened => opened.map(Some),
        }
    };
    let reply = control::ask_or_answer(data_dir, request, durable::LOCK_WAIT, open_now, answer)?;
    Ok(print_reply(reply))
}
