//! Who a device is, in public: the data directory, the public identity an agent's side is given instead of the device's key, and the key report the CLI prints.

use std::path::{Path, PathBuf};

use crate::durable::Existing;
use crate::keys::{KeyError, PublicKey, SigningKey};
use crate::protocol::device_id_for;

/// The device's public identity, for `voicepay mcp` (0644: nothing secret).
pub const PUBLIC_IDENTITY: &str = "device.pub.json";
/// A public identity is a few hundred bytes; anything much larger is not one.
const MAX_PUBLIC_IDENTITY_BYTES: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no device key in {0}: run `voicepay keys init`")]
    NoDeviceKey(PathBuf),
    #[error("no trusted gateway in {0}: run `voicepay trust-gateway --public-key KEY`")]
    NoGateway(PathBuf),
    #[error("{path}: {detail}")]
    BadGatewayKey { path: PathBuf, detail: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "{0} is a private key: give the device's public identity instead (`voicepay keys export` as the device's user), never its key"
    )]
    PrivateKeyGiven(PathBuf),
    #[error(
        "no device public identity at {0}: give it a copy of what `voicepay keys export` prints (as the device's user), or pass --identity"
    )]
    NoPublicIdentity(PathBuf),
    #[error("{path} is not a device's public identity (`voicepay keys export`): {detail}")]
    BadPublicIdentity { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The per-user data directory: `$VOICEPAY_DATA_DIR`, else
/// `$XDG_DATA_HOME/voicepay`, else `~/.local/share/voicepay`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VOICEPAY_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("voicepay");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/voicepay")
}

/// All an agent's side needs of the device, and nothing secret: whose
/// signature a task status must carry, which device's topics to use, and
/// the currency of amounts given without one. `voicepay keys export`
/// writes it, and the daemon keeps a copy in its data directory; the
/// agent's user is given a copy, never the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicIdentity {
    pub role: String,
    pub device_id: String,
    pub kid: String,
    /// base64url of the raw Ed25519 key.
    pub public_key: String,
    /// The profile's topic prefix.
    pub prefix: String,
    /// The profile's currency.
    pub currency: crate::money::Currency,
}

impl PublicIdentity {
    pub fn of(key: &PublicKey, prefix: &str, currency: crate::money::Currency) -> PublicIdentity {
        PublicIdentity {
            role: "device".to_owned(),
            device_id: device_id_for(key),
            kid: key.key_id(),
            public_key: key.to_base64url(),
            prefix: prefix.to_owned(),
            currency,
        }
    }

    /// The file's text: one pretty JSON object and a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The key, once the identity is checked whole: a device's, its id and
    /// key id the key's own, a valid prefix.
    pub fn key(&self) -> Result<PublicKey, String> {
        if self.role != "device" {
            return Err(format!("role {:?}, not \"device\"", self.role));
        }
        let key = PublicKey::from_base64url(&self.public_key).map_err(|e| e.to_string())?;
        if self.device_id != device_id_for(&key) || self.kid != key.key_id() {
            return Err("its device_id or kid is not its public key's".to_owned());
        }
        crate::protocol::topics::validate_prefix(&self.prefix).map_err(|e| e.to_string())?;
        Ok(key)
    }

    /// Writes `path` whole (0644), replacing what was there.
    pub fn write(&self, path: &Path) -> Result<(), IdentityError> {
        crate::durable::write_file(path, self.to_json().as_bytes(), 0o644, Existing::Replace)
            .map_err(|e| IdentityError::Io {
                path: e.path,
                source: e.source,
            })
    }

    /// Reads and checks a public identity file; a private key given by
    /// mistake is refused as such (and not kept in memory).
    pub fn load(path: &Path) -> Result<(PublicIdentity, PublicKey), IdentityError> {
        use std::io::Read;
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |detail: String| IdentityError::BadPublicIdentity {
            path: path.to_owned(),
            detail,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => IdentityError::NoPublicIdentity(path.to_owned()),
                _ => io(e),
            })?
            .take(MAX_PUBLIC_IDENTITY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_PUBLIC_IDENTITY_BYTES {
            return Err(bad(format!(
                "larger than {MAX_PUBLIC_IDENTITY_BYTES} bytes"
            )));
        }
        if SigningKey::from_pkcs8(&bytes).is_ok()
            || String::from_utf8_lossy(&bytes).contains("PRIVATE KEY")
        {
            bytes.fill(0);
            return Err(IdentityError::PrivateKeyGiven(path.to_owned()));
        }
        let identity: PublicIdentity =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let key = identity.key().map_err(bad)?;
        Ok((identity, key))
    }
}

/// What `keys show` and `gateway show-key` print: the key id and public key,
/// and the device id for a device; one JSON object or a few lines.
pub fn key_report(role: &str, key: &PublicKey, json: bool) -> String {
    let device_id = (role == "device").then(|| device_id_for(key));
    if json {
        let mut line = serde_json::json!({
            "role": role,
            "kid": key.key_id(),
            "public_key": key.to_base64url(),
        });
        if let Some(id) = device_id {
            line["device_id"] = serde_json::json!(id);
        }
        return line.to_string();
    }
    let mut lines = Vec::new();
    if let Some(id) = device_id {
        lines.push(format!("device id:  {id}"));
    }
    lines.push(format!("key id:     {}", key.key_id()));
    lines.push(format!("public key: {key}"));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_identity_round_trips_and_a_private_key_in_its_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        crate::durable::private_dir(&data).unwrap();
        let private_key = data.join("device.key");
        let key = SigningKey::create_file(&private_key).unwrap();
        let identity = PublicIdentity::of(
            &key.public_key(),
            "voicepay/v1",
            crate::money::Currency::CNY,
        );
        let path = data.join(PUBLIC_IDENTITY);
        identity.write(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let (loaded, public) = PublicIdentity::load(&path).unwrap();
        assert_eq!((loaded, public), (identity.clone(), key.public_key()));

        let refused = PublicIdentity::load(&private_key).unwrap_err();
        assert!(
            matches!(refused, IdentityError::PrivateKeyGiven(_)),
            "{refused}"
        );
        assert!(refused.to_string().contains("never its key"), "{refused}");

        // Another key under the device's id is not the device.
        let other = SigningKey::generate().unwrap().public_key();
        let forged = PublicIdentity {
            public_key: other.to_base64url(),
            ..identity
        };
        forged.write(&path).unwrap();
        let refused = PublicIdentity::load(&path).unwrap_err();
        assert!(
            matches!(refused, IdentityError::BadPublicIdentity { .. }),
            "{refused}"
        );
    }
}
