//! Ed25519 keys for devices, the gateway and agents: public keys on the wire, signing keys in 0600 files.
//!
//! A public key travels as base64url (no padding) of its raw 32 bytes and is
//! named by its key id, the first 16 hex digits of its SHA-256. A private key
//! lives in a PKCS#8 file that only its owner may read; it is never printed.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::durable::Existing;

/// Length of a raw Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A key file larger than this is not a PKCS#8 Ed25519 key (those are ~85 bytes);
/// the cap keeps a wrong path from reading a huge file into memory.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why a key, a signature or a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a key: the system random source failed")]
    Generate,
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    InvalidPkcs8(String),
    #[error("public key is not base64url without padding")]
    InvalidBase64,
    #[error("public key must be {PUBLIC_KEY_LEN} bytes, got {0}")]
    WrongLength(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("key file {} already exists", path.display())]
    AlreadyExists { path: PathBuf },
    /// The CLI adds the hint naming its own init command (`voicepay keys init`,
    /// `voicepay gateway init`).
    #[error("no key at {}", path.display())]
    Missing { path: PathBuf },
    #[error(
        "key file {} is accessible by group or others (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("key file {} is larger than a key ({size} bytes)", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("key file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl KeyError {
    fn io(path: &Path, source: io::Error) -> KeyError {
        KeyError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A raw Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> PublicKey {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Accepts only the canonical form: no padding, no trailing bits, exactly 32 bytes.
    pub fn from_base64url(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| KeyError::InvalidBase64)?;
        let raw = <[u8; PUBLIC_KEY_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(PublicKey(raw))
    }

    /// First 16 hex digits of SHA-256 of the raw key: short enough for topics and
    /// logs, long enough (64 bits) that enrolled keys do not collide by accident.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.0);
        hex::encode(&digest[..8])
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64url())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::from_base64url(s)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PublicKey::from_base64url(&text).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 private key. Its `Debug` shows only the key id.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// Kept only so `create_file` can write the key; never printed.
    pkcs8: Vec<u8>,
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, KeyError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        SigningKey::from_pkcs8(document.as_ref())
    }

    /// Accepts PKCS#8 v2 (ring's own, public key checked against the private
    /// one) and v1 (what `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| KeyError::InvalidPkcs8(e.to_string()))?;
        Ok(SigningKey {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    pub fn public_key(&self) -> PublicKey {
        let mut raw = [0u8; PUBLIC_KEY_LEN];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }

    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// Generates a key and writes it to a new file that is 0600 from its first
    /// byte (no window where another user could read it). Refuses to replace an
    /// existing file: overwriting a key would orphan every enrolment made with it.
    pub fn create_file(path: &Path) -> Result<SigningKey, KeyError> {
        let key = SigningKey::generate()?;
        // 0600 from the first byte, and a half-written key is never in place.
        crate::durable::write_file(path, &key.pkcs8, 0o600, Existing::Keep).map_err(|e| match e
            .kind()
        {
            io::ErrorKind::AlreadyExists => KeyError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => KeyError::io(&e.path, e.source),
        })?;
        Ok(key)
    }

    /// Loads a key file, refusing one that group or others can read or write.
    pub fn load_file(path: &Path) -> Result<SigningKey, KeyError> {
        let bytes = match read_secret_file(path, MAX_KEY_FILE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(KeyError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(SecretFileError::Insecure { mode }) => {
                return Err(KeyError::InsecurePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Err(SecretFileError::TooLarge { size }) => {
                return Err(KeyError::TooLarge {
                    path: path.to_path_buf(),
                    size,
                });
            }
            Err(SecretFileError::Io(source)) => return Err(KeyError::io(path, source)),
        };
        SigningKey::from_pkcs8(bytes.as_bytes())
    }
}

/// A secret read from a file; its bytes are zeroed when it is dropped.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Why a secret file was not read (see [`read_secret_file`]).
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("accessible by group or others (mode {mode:04o})")]
    Insecure { mode: u32 },
    #[error("larger than the secret it should hold ({size} bytes)")]
    TooLarge { size: u64 },
    #[error(transparent)]
    Io(io::Error),
}

/// Reads a secret file as every secret of ours is read (the device's and
/// the gateway's keys, the history secret): a regular file that group and
/// others can neither read nor write, of at most `max_len` bytes; `None` if
/// there is none. The opened file is checked, not the path, so it cannot be
/// swapped between the check and the read.
pub fn read_secret_file(path: &Path, max_len: u64) -> Result<Option<SecretBytes>, SecretFileError> {
    let file = match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(SecretFileError::Io)?,
    };
    let meta = file.metadata().map_err(SecretFileError::Io)?;
    if !meta.is_file() {
        return Err(SecretFileError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Insecure { mode });
    }
    if meta.len() > max_len {
        return Err(SecretFileError::TooLarge { size: meta.len() });
    }
    let mut bytes = SecretBytes(Vec::new());
    file.take(max_len)
        .read_to_end(&mut bytes.0)
        .map_err(SecretFileError::Io)?;
    Ok(Some(bytes))
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .field("private", &"<redacted>")
            .finish()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        // Best effort: ring keeps its own copy, but ours need not linger on the heap.
        self.pkcs8.fill(0);
        std::hint::black_box(&self.pkcs8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn key() -> SigningKey {
        SigningKey::generate().expect("generate")
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key();
        let msg = b"pay 36 yuan to Heytea";
        let sig = k.sign(msg);
        assert_eq!(sig.len(), SIGNATURE_LEN);
        assert!(k.public_key().verify(msg, &sig).is_ok());
        // Another key does not verify it.
        assert!(matches!(
            key().public_key().verify(msg, &sig),
            Err(KeyError::BadSignature)
        ));
    }

    #[test]
    fn flipped_bits_fail() {
        let k = key();
        let msg = b"pay 36 yuan to Heytea".to_vec();
        let sig = k.sign(&msg);
        let pk = k.public_key();
        for i in 0..msg.len() * 8 {
            let mut m = msg.clone();
            m[i / 8] ^= 1 << (i % 8);
            assert!(pk.verify(&m, &sig).is_err(), "message bit {i}");
        }
        for i in 0..sig.len() * 8 {
            let mut s = sig.clone();
            s[i / 8] ^= 1 << (i % 8);
            assert!(pk.verify(&msg, &s).is_err(), "signature bit {i}");
        }
        assert!(pk.verify(&msg, &sig[..63]).is_err());
        assert!(pk.verify(&msg, &[]).is_err());
    }

    #[test]
    fn base64url_round_trip_and_refusals() {
        let pk = key().public_key();
        let text = pk.to_base64url();
        assert_eq!(text.len(), 43);
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        assert_eq!(PublicKey::from_base64url(&text).ok(), Some(pk));
        assert_eq!(text.parse::<PublicKey>().ok(), Some(pk));
        assert_eq!(pk.to_string(), text);

        let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let long = URL_SAFE_NO_PAD.encode([7u8; 33]);
        assert!(matches!(
            PublicKey::from_base64url(&short),
            Err(KeyError::WrongLength(31))
        ));
        assert!(matches!(
            PublicKey::from_base64url(&long),
            Err(KeyError::WrongLength(33))
        ));
        assert!(matches!(
            PublicKey::from_base64url(""),
            Err(KeyError::WrongLength(0))
        ));
        let padded = base64::engine::general_purpose::URL_SAFE.encode(pk.0);
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode([0xfb; 32]);
        let spaced = format!(" {text}\n");
        for bad in [
            padded.as_str(),
            standard.as_str(),
            spaced.as_str(),
            "not base64!",
            "ab\u{e9}",
        ] {
            assert!(
                matches!(PublicKey::from_base64url(bad), Err(KeyError::InvalidBase64)),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_is_the_base64url_string() {
        let pk = key().public_key();
        let json = serde_json::to_string(&pk).expect("serialize");
        assert_eq!(json, format!("\"{}\"", pk.to_base64url()));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).ok(), Some(pk));
        assert!(serde_json::from_str::<PublicKey>("\"AAAA\"").is_err());
        assert!(serde_json::from_str::<PublicKey>("42").is_err());
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        let pk = PublicKey::from_bytes([0x42; 32]);
        let full = hex::encode(Sha256::digest([0x42u8; 32]));
        assert_eq!(pk.key_id(), full[..16]);
        // Fixed vector, computed independently: `printf 'B%.0s' {1..32} | sha256sum`.
        assert_eq!(pk.key_id(), "425ed4e4a36b30ea");

        let k = key();
        let id = k.key_id();
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(id, k.public_key().key_id());
        assert_eq!(
            id,
            hex::encode(Sha256::digest(k.public_key().as_bytes()))[..16]
        );
    }

    #[test]
    fn pkcs8_round_trip_and_refusal() {
        let k = key();
        let again = SigningKey::from_pkcs8(&k.pkcs8).expect("reload");
        assert_eq!(again.public_key(), k.public_key());
        assert!(matches!(
            SigningKey::from_pkcs8(b"garbage"),
            Err(KeyError::InvalidPkcs8(_))
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(&[]),
            Err(KeyError::InvalidPkcs8(_))
        ));
    }

    #[test]
    fn create_file_is_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.key");
        let k = SigningKey::create_file(&path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SigningKey::load_file(&path).expect("load");
        assert_eq!(loaded.public_key(), k.public_key());

        let before = fs::read(&path).expect("read");
        let err = SigningKey::create_file(&path).expect_err("must refuse");
        assert!(matches!(err, KeyError::AlreadyExists { .. }));
        assert_eq!(
            err.to_string(),
            format!("key file {} already exists", path.display())
        );
        assert_eq!(fs::read(&path).expect("read"), before, "untouched");

        let missing_dir = dir.path().join("nope").join("device.key");
        assert!(matches!(
            SigningKey::create_file(&missing_dir),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn load_file_refuses_group_or_other_access() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.key");
        SigningKey::create_file(&path).expect("create");
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
            set_mode(&path, mode);
            let err = SigningKey::load_file(&path).expect_err("must refuse");
            assert!(
                matches!(err, KeyError::InsecurePermissions { mode: m, .. } if m == mode),
                "{mode:o}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
        }
        // Stricter than 0600 is fine.
        set_mode(&path, 0o400);
        assert!(SigningKey::load_file(&path).is_ok());
    }

    #[test]
    fn load_file_missing_garbage_and_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.key");
        let err = SigningKey::load_file(&path).expect_err("missing");
        assert!(matches!(err, KeyError::Missing { .. }));
        assert_eq!(err.to_string(), format!("no key at {}", path.display()));

        let garbage = dir.path().join("garbage.key");
        fs::write(&garbage, b"not a key").expect("write");
        set_mode(&garbage, 0o600);
        assert!(matches!(
            SigningKey::load_file(&garbage),
            Err(KeyError::InvalidPkcs8(_))
        ));

        let big = dir.path().join("big.key");
        fs::write(&big, vec![0u8; 10_000]).expect("write");
        set_mode(&big, 0o600);
        assert!(matches!(
            SigningKey::load_file(&big),
            Err(KeyError::TooLarge { size: 10_000, .. })
        ));

        let sub = dir.path().join("sub");
        fs::create_dir(&sub).expect("mkdir");
        set_mode(&sub, 0o700);
        assert!(matches!(
            SigningKey::load_file(&sub),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn debug_redacts_the_private_key() {
        let k = key();
        let shown = format!("{k:?} {k:#?}");
        assert!(shown.contains(&k.key_id()));
        assert!(shown.contains("redacted"));
        let std64 = base64::engine::general_purpose::STANDARD;
        // The seed is the last 32 bytes before the public key in ring's v2 document;
        // check the whole document and every 8-byte window of it in common encodings.
        let forms = [
            hex::encode(&k.pkcs8),
            hex::encode_upper(&k.pkcs8),
            URL_SAFE_NO_PAD.encode(&k.pkcs8),
            std64.encode(&k.pkcs8),
            format!("{:?}", k.pkcs8),
        ];
        for form in &forms {
            assert!(!shown.contains(form.as_str()));
        }
        for window in k.pkcs8.windows(8) {
            assert!(!shown.contains(&hex::encode(window)));
            assert!(!shown.contains(&format!("{window:?}")));
            let decimal: Vec<String> = window.iter().map(|b| b.to_string()).collect();
            assert!(!shown.contains(&decimal.join(", ")));
        }
    }
}
