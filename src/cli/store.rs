//! `voicepay history`, `outbox` and `status`, and the way every store command goes: through the running daemon, else on the store itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use voicepay_core::control;
use voicepay_device::control as device_control;
use voicepay_device::identity as device_identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::store::{Store, StoreConfig};

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

fn open_store(data_dir: Option<PathBuf>, profile: &DeviceProfile) -> Result<Store> {
    let dir = super::data_dir_or_default(data_dir).join("store");
    let config = StoreConfig::new(dir).with_initial_limits(profile.limits.clone());
    Ok(Store::open(&config)?)
}

/// Through the daemon running on the data directory if there is one (sled
/// lets one process open the store), else on the store itself.
pub fn device_command(
    data_dir: Option<PathBuf>,
    profile: &DeviceProfile,
    request: control::Request,
) -> Result<ExitCode> {
    let data_dir = super::data_dir_or_default(data_dir);
    let reply = match control::call(&data_dir, &request)
        .with_context(|| format!("the daemon on {}", data_dir.display()))?
    {
        Some(reply) => reply,
        None => {
            let book = device_control::DeviceBook {
                profile: profile.payee_book(),
                live: None,
                calendar: profile.payments.calendar.clone(),
                gateway: device_identity::load_gateway_key(&data_dir).ok(),
            };
            device_control::device(&open_store(Some(data_dir), profile)?, &book, &request)
        }
    };
    Ok(print_reply(reply))
}

/// Through the running daemon, else what the store says, plainly marked
/// "not running".
pub fn status(data_dir: Option<PathBuf>, profile: &DeviceProfile, json: bool) -> Result<ExitCode> {
    let data_dir = super::data_dir_or_default(data_dir);
    let request = control::Request::Status { json };
    let ask = || {
        control::call(&data_dir, &request)
            .with_context(|| format!("the daemon on {}", data_dir.display()))
    };
    let from_store = |store: Store| {
        let device_id = device_identity::load_device_key(&data_dir)
            .ok()
            .map(|key| voicepay_core::protocol::device_id_for(&key.public_key()));
        print_reply(device_control::status(
            &store,
            device_id.as_deref(),
            None,
            json,
        ))
    };
    // A daemon that is starting holds the store a moment before its
    // socket answers: ask it again rather than wait on the store's lock
    // (up to 10 s: on a loaded device, 2 s was seen to be too short).
    let store_now = || {
        let dir = data_dir.join("store");
        let config = StoreConfig::new(dir)
            .with_initial_limits(profile.limits.clone())
            .with_lock_wait(Duration::ZERO);
        Store::open(&config)
    };
    let asking = voicepay_core::clock::Stopwatch::start();
    while asking.elapsed() < Duration::from_secs(10) {
        if let Some(reply) = ask()? {
            return Ok(print_reply(reply));
        }
        if let Ok(store) = store_now() {
            return Ok(from_store(store));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match ask()? {
        Some(reply) => Ok(print_reply(reply)),
        None => Ok(from_store(open_store(Some(data_dir.clone()), profile)?)),
    }
}
