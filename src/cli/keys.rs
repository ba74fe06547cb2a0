//! `voicepay keys init|show|agent|export` and `trust-gateway`: the device's key, an agent's key, and the gateway key the device believes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use voicepay_core::identity;
use voicepay_core::keys::{KeyError, PublicKey, SigningKey};
use voicepay_device::identity as device_identity;
use voicepay_device::profile::DeviceProfile;

use super::args::KeysCommand;
use super::{data_dir_or_default, show_key};

pub fn run(command: KeysCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let public = |key: &SigningKey| {
        identity::PublicIdentity::of(
            &key.public_key(),
            &profile.mqtt.prefix,
            profile.default_currency,
        )
    };
    match command {
        KeysCommand::Init { data_dir } => {
            let data_dir = data_dir_or_default(data_dir);
            let key = device_identity::init_device_key(&data_dir)?;
            public(&key).write(&data_dir.join(identity::PUBLIC_IDENTITY))?;
            show_key("device", &key.public_key(), false);
        }
        KeysCommand::Show { data_dir, json } => {
            let data_dir = data_dir_or_default(data_dir);
            let key = device_identity::load_device_key(&data_dir)?;
            show_key("device", &key.public_key(), json);
        }
        KeysCommand::Agent { name, data_dir } => {
            voicepay_core::agent::validate_name(&name)?;
            let dir = data_dir_or_default(data_dir).join("agents");
            voicepay_core::durable::private_dir(&dir).with_context(|| dir.display().to_string())?;
            let path = dir.join(format!("{name}.key"));
            let key = match SigningKey::create_file(&path) {
                Err(KeyError::AlreadyExists { .. }) => SigningKey::load_file(&path)?,
                made => made?,
            };
            println!("{}", key.public_key());
        }
        KeysCommand::Export { data_dir, out } => {
            let data_dir = data_dir_or_default(data_dir);
            let key = device_identity::load_device_key(&data_dir)?;
            match out {
                Some(path) => public(&key).write(&path)?,
                None => print!("{}", public(&key).to_json()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn trust_gateway(public_key: &str, data_dir: Option<PathBuf>) -> Result<ExitCode> {
    let key = PublicKey::from_base64url(public_key.trim())
        .context("--public-key is not a base64url Ed25519 public key")?;
    let data_dir = data_dir_or_default(data_dir);
    device_identity::trust_gateway(&data_dir, &key)?;
    println!("trusting gateway key {} ({})", key.key_id(), key);
    Ok(ExitCode::SUCCESS)
}
