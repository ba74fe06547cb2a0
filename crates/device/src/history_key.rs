//! The device secret the history chain is keyed with: 32 random bytes in a 0600 file beside the device key, so whoever can rewrite the store but not read the secret cannot reseal the chain.
//!
//! Each history entry's seal is an HMAC-SHA256 under this secret (ring's
//! `hmac`, constant-time to check). The file is created once, at the first
//! store open that finds none and no entry sealed with one; it is never
//! replaced, since a new secret would make every sealed entry look forged.

use std::io;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use voicepay_core::durable::Existing;
use voicepay_core::keys::{SecretFileError, read_secret_file};

/// The file name beside the store (the data directory): `history.key`.
pub const FILE_NAME: &str = "history.key";
/// Bytes of secret: SHA-256's block-worth of key strength and more.
pub const SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HistoryKeyError {
    #[error("could not make the history secret: the system random source failed")]
    Generate,
    #[error(
        "history secret {} is accessible by group or others (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("history secret {} is not {SECRET_LEN} bytes (it has {len})", path.display())]
    WrongLength { path: PathBuf, len: u64 },
    #[error("history secret {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The loaded secret, as an HMAC key. Its `Debug` never shows it.
pub struct HistoryKey(hmac::Key);

impl std::fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistoryKey(<redacted>)")
    }
}

impl HistoryKey {
    pub fn from_secret(secret: &[u8; SECRET_LEN]) -> HistoryKey {
        HistoryKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Hex HMAC-SHA256 of `bytes`.
    pub fn seal(&self, bytes: &[u8]) -> String {
        hex::encode(hmac::sign(&self.0, bytes).as_ref())
    }

    /// Whether `seal` is this key's HMAC of `bytes` (compared in constant time).
    pub fn opens(&self, bytes: &[u8], seal: &str) -> bool {
        match hex::decode(seal) {
            Ok(tag) => hmac::verify(&self.0, bytes, &tag).is_ok(),
            Err(_) => false,
        }
    }

    /// Makes a new secret and writes it to a new 0600 file (never over one).
    pub fn create_file(path: &Path) -> Result<HistoryKey, HistoryKeyError> {
        let mut secret = [0u8; SECRET_LEN];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| HistoryKeyError::Generate)?;
        let written = voicepay_core::durable::write_file(path, &secret, 0o600, Existing::Keep);
        let key = HistoryKey::from_secret(&secret);
        secret.fill(0);
        written.map_err(|e| HistoryKeyError::Io {
            path: e.path.clone(),
            source: e.source,
        })?;
        Ok(key)
    }

    /// The secret in `path`, or `None` if there is no such file. Refuses a
    /// file that group or others may read or write, like a key file.
    pub fn load_file(path: &Path) -> Result<Option<HistoryKey>, HistoryKeyError> {
        let wrong_length = |len| HistoryKeyError::WrongLength {
            path: path.to_path_buf(),
            len,
        };
        let secret = match read_secret_file(path, SECRET_LEN as u64) {
            Ok(None) => return Ok(None),
            Ok(Some(secret)) => secret,
            Err(SecretFileError::Insecure { mode }) => {
                return Err(HistoryKeyError::InsecurePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Err(SecretFileError::TooLarge { size }) => return Err(wrong_length(size)),
            Err(SecretFileError::Io(source)) => {
                return Err(HistoryKeyError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let secret: &[u8; SECRET_LEN] = secret
            .as_bytes()
            .try_into()
            .map_err(|_| wrong_length(secret.as_bytes().len() as u64))?;
        Ok(Some(HistoryKey::from_secret(secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_created_secret_is_0600_loads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        assert!(HistoryKey::load_file(&path).expect("none yet").is_none());
        let made = HistoryKey::create_file(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = HistoryKey::load_file(&path).expect("load").expect("there");
        let seal = made.seal(b"entry");
        assert!(loaded.opens(b"entry", &seal));
        assert!(!loaded.opens(b"entry!", &seal));
        assert!(
            HistoryKey::create_file(&path).is_err(),
            "kept, not replaced"
        );
        assert!(
            HistoryKey::load_file(&path)
                .expect("load")
                .expect("there")
                .opens(b"entry", &seal)
        );
    }

    #[test]
    fn a_secret_readable_by_others_or_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        HistoryKey::create_file(&path).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            HistoryKey::load_file(&path),
            Err(HistoryKeyError::InsecurePermissions { mode: 0o644, .. })
        ));
        std::fs::write(&path, b"short").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            HistoryKey::load_file(&path),
            Err(HistoryKeyError::WrongLength { len: 5, .. })
        ));
        std::fs::write(&path, [7u8; 40]).expect("write");
        assert!(matches!(
            HistoryKey::load_file(&path),
            Err(HistoryKeyError::WrongLength { len: 40, .. })
        ));
        let dir_in_place = dir.path().join("elsewhere");
        std::fs::create_dir(&dir_in_place).expect("mkdir");
        std::fs::set_permissions(&dir_in_place, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        assert!(matches!(
            HistoryKey::load_file(&dir_in_place),
            Err(HistoryKeyError::Io { .. })
        ));
    }
}
