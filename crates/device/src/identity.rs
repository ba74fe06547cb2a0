//! The device's keys on disk: its signing key (`device.key`, which only the daemon reads), the id derived from it, and the gateway key it trusts.

use std::path::Path;

use voicepay_core::durable::{self, Existing};
use voicepay_core::identity::IdentityError;
use voicepay_core::keys::{KeyError, PublicKey, SigningKey};
use voicepay_core::protocol::device_id_for;

const DEVICE_KEY: &str = "device.key";
const GATEWAY_KEY: &str = "gateway.pub";

/// A device's keys, loaded.
pub struct DeviceIdentity {
    pub key: SigningKey,
    pub device_id: String,
    pub gateway: PublicKey,
}

impl DeviceIdentity {
    pub fn load(data_dir: &Path) -> Result<Self, IdentityError> {
        let key = load_device_key(data_dir)?;
        let gateway = load_gateway_key(data_dir)?;
        Ok(Self {
            device_id: device_id_for(&key.public_key()),
            key,
            gateway,
        })
    }
}

/// Creates the data directory and a new device key in it.
pub fn init_device_key(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    create_dir(data_dir)?;
    Ok(SigningKey::create_file(&data_dir.join(DEVICE_KEY))?)
}

pub fn load_device_key(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    match SigningKey::load_file(&data_dir.join(DEVICE_KEY)) {
        Err(KeyError::Missing { .. }) => Err(IdentityError::NoDeviceKey(data_dir.to_owned())),
        other => Ok(other?),
    }
}

/// Records the gateway key this device believes (pairing).
pub fn trust_gateway(data_dir: &Path, key: &PublicKey) -> Result<(), IdentityError> {
    create_dir(data_dir)?;
    let path = data_dir.join(GATEWAY_KEY);
    let line = format!("{}\n", key.to_base64url());
    // Re-pairing replaces the old key whole: never a half-written one.
    durable::write_file(&path, line.as_bytes(), 0o644, Existing::Replace).map_err(|e| {
        IdentityError::Io {
            path: e.path,
            source: e.source,
        }
    })
}

pub fn load_gateway_key(data_dir: &Path) -> Result<PublicKey, IdentityError> {
    let path = data_dir.join(GATEWAY_KEY);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IdentityError::NoGateway(data_dir.to_owned()));
        }
        other => other.map_err(|source| IdentityError::Io {
            path: path.clone(),
            source,
        })?,
    };
    PublicKey::from_base64url(text.trim()).map_err(|e| IdentityError::BadGatewayKey {
        path,
        detail: e.to_string(),
    })
}

fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    durable::private_dir(dir).map_err(|source| IdentityError::Io {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_trust_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(matches!(
            DeviceIdentity::load(&data),
            Err(IdentityError::NoDeviceKey(_))
        ));
        let key = init_device_key(&data).unwrap();
        assert!(matches!(
            DeviceIdentity::load(&data),
            Err(IdentityError::NoGateway(_))
        ));
        let gateway = SigningKey::generate().unwrap().public_key();
        trust_gateway(&data, &gateway).unwrap();
        let identity = DeviceIdentity::load(&data).unwrap();
        assert_eq!(identity.gateway, gateway);
        assert_eq!(identity.device_id, device_id_for(&key.public_key()));
        assert!(init_device_key(&data).is_err(), "never overwrites a key");
    }
}
