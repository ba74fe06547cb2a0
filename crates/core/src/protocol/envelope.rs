//! The signed envelope around every message: sealing exact bytes, and opening them only after every check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ALGORITHM, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError, clip};
use crate::keys::{PublicKey, SigningKey};

/// The signed wrapper around every MQTT body. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u8,
    /// Key id of the signer ([`PublicKey::key_id`]).
    pub kid: String,
    pub alg: String,
    /// base64url (no padding) of the exact payload bytes.
    pub payload: String,
    /// base64url (no padding) of the Ed25519 signature over those bytes.
    pub sig: String,
}

/// Reads only `v`, so a future version with a different shape is reported as
/// an unsupported version rather than as garbage.
#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

impl Envelope {
    /// Signs `payload` as given; the receiver verifies these very bytes.
    pub fn seal(payload: &[u8], key: &SigningKey) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            kid: key.key_id(),
            alg: ALGORITHM.to_string(),
            payload: URL_SAFE_NO_PAD.encode(payload),
            sig: URL_SAFE_NO_PAD.encode(key.sign(payload)),
        }
    }

    /// Serialises `value` once and seals those bytes; returns them too so the
    /// caller can keep exactly what was signed. Refuses a result that [`open`]
    /// would reject as too large, so it never sits in an outbox unsendable.
    pub fn seal_json<T: Serialize>(
        value: &T,
        key: &SigningKey,
    ) -> Result<(Envelope, Vec<u8>), ProtocolError> {
        let payload = serde_json::to_vec(value).map_err(ProtocolError::Encode)?;
        let envelope = Envelope::seal(&payload, key);
        let size = envelope.to_bytes().len();
        if size > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::TooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
            });
        }
        Ok((envelope, payload))
    }

    /// The hex SHA-256 of the payload an envelope's bytes carry (what a
    /// gateway answer is bound to), if they are an envelope at all.
    pub fn payload_sha256_of(message: &[u8]) -> Option<String> {
        Envelope::unverified_payload_of(message).map(|payload| super::sha256_hex(&payload))
    }

    /// The payload bytes an envelope carries, its signature NOT checked: only
    /// for answering a sender nobody can verify (an unknown device) with a
    /// refusal bound to what it sent. Never trust what it says.
    pub fn unverified_payload_of(message: &[u8]) -> Option<Vec<u8>> {
        if message.len() > MAX_MESSAGE_BYTES {
            return None;
        }
        let envelope: Envelope = serde_json::from_slice(message).ok()?;
        URL_SAFE_NO_PAD.decode(&envelope.payload).ok()
    }

    /// The JSON body to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Five plain fields (a u8 and four strings) always serialise.
        serde_json::to_vec(self).expect("an envelope always serialises")
    }
}

/// A message whose signature has been checked against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The key id that signed it; the caller binds it to a device or agent.
    pub kid: String,
    /// The exact signed bytes.
    pub payload: Vec<u8>,
}

impl Opened {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        serde_json::from_slice(&self.payload).map_err(ProtocolError::InvalidPayload)
    }
}

/// Checks a received message and returns its authenticated payload.
///
/// `trusted` maps a key id to the enrolled public key with that id, or `None`.
/// Rejections, in order: too large, not UTF-8, not an envelope, version,
/// algorithm, unknown key, bad base64, bad signature. The payload is not parsed here.
pub fn open(
    message: &[u8],
    trusted: impl Fn(&str) -> Option<PublicKey>,
) -> Result<Opened, ProtocolError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge {
            size: message.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let text = std::str::from_utf8(message).map_err(|_| ProtocolError::NotUtf8)?;
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(e) => {
            return Err(match serde_json::from_str::<VersionProbe>(text) {
                Ok(probe) if probe.v != u64::from(PROTOCOL_VERSION) => {
                    ProtocolError::UnsupportedVersion(probe.v)
                }
                _ => ProtocolError::Malformed(e),
            });
        }
    };
    if envelope.v != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(u64::from(envelope.v)));
    }
    if envelope.alg != ALGORITHM {
        return Err(ProtocolError::UnsupportedAlgorithm(clip(&envelope.alg)));
    }
    let key =
        trusted(&envelope.kid).ok_or_else(|| ProtocolError::UnknownKey(clip(&envelope.kid)))?;
    let payload = URL_SAFE_NO_PAD
        .decode(&envelope.payload)
        .map_err(|_| ProtocolError::InvalidBase64 { field: "payload" })?;
    let sig = URL_SAFE_NO_PAD
        .decode(&envelope.sig)
        .map_err(|_| ProtocolError::InvalidBase64 { field: "sig" })?;
    key.verify(&payload, &sig)
        .map_err(|_| ProtocolError::BadSignature {
            kid: envelope.kid.clone(),
        })?;
    Ok(Opened {
        kid: envelope.kid,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};
    use crate::protocol::testing::*;
    use crate::protocol::{PaymentRequest, PaymentResponse};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn seal_open_round_trip_with_exact_envelope_json() {
        let k = key();
        let req = request();
        let (env, payload) = Envelope::seal_json(&req, &k).expect("seal");
        assert_eq!(payload, serde_json::to_vec(&req).expect("json"));

        let text = String::from_utf8(env.to_bytes()).expect("utf8");
        let expected = format!(
            r#"{{"v":1,"kid":"{}","alg":"Ed25519","payload":"{}","sig":"{}"}}"#,
            k.key_id(),
            URL_SAFE_NO_PAD.encode(&payload),
            env.sig
        );
        assert_eq!(text, expected);
        assert_eq!(URL_SAFE_NO_PAD.decode(&env.sig).expect("sig").len(), 64);

        let opened = open(text.as_bytes(), trust(&k)).expect("open");
        assert_eq!(opened.kid, k.key_id());
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.parse::<PaymentRequest>().expect("parse"), req);
        assert!(matches!(
            opened.parse::<PaymentResponse>(),
            Err(ProtocolError::InvalidPayload(_))
        ));
    }

    #[test]
    fn open_rejects_each_bad_case_with_its_variant() {
        let k = key();
        let (env, _) = Envelope::seal_json(&request(), &k).expect("seal");
        let good = env.to_bytes();
        let t = trust(&k);

        let mut big = good.clone();
        big.resize(MAX_MESSAGE_BYTES + 1, b' ');
        assert!(matches!(
            open(&big, &t),
            Err(ProtocolError::TooLarge { size, max }) if size == MAX_MESSAGE_BYTES + 1 && max == MAX_MESSAGE_BYTES
        ));
        // Exactly at the limit is only as good as its content.
        let mut at_limit = good.clone();
        at_limit.resize(MAX_MESSAGE_BYTES, b' ');
        assert!(open(&at_limit, &t).is_ok());

        let mut not_utf8 = good.clone();
        not_utf8[10] = 0xff;
        assert!(matches!(open(&not_utf8, &t), Err(ProtocolError::NotUtf8)));

        for garbage in [
            &b""[..],
            b"not json",
            b"[]",
            b"{}",
            b"null",
            br#"{"v":1}"#,
            br#"{"v":"1","kid":"a","alg":"Ed25519","payload":"","sig":""}"#,
        ] {
            assert!(
                matches!(open(garbage, &t), Err(ProtocolError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        let extra = edited(&env, |v| v["extra"] = true.into());
        assert!(matches!(open(&extra, &t), Err(ProtocolError::Malformed(_))));

        let v2 = edited(&env, |v| v["v"] = 2.into());
        assert!(matches!(
            open(&v2, &t),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            open(br#"{"v":300,"whatever":[]}"#, &t),
            Err(ProtocolError::UnsupportedVersion(300))
        ));

        let none = edited(&env, |v| v["alg"] = "none".into());
        let err = open(&none, &t).expect_err("alg none");
        assert!(matches!(err, ProtocolError::UnsupportedAlgorithm(ref a) if a == "none"));
        assert!(err.to_string().contains("\"none\""));

        let stranger = edited(&env, |v| v["kid"] = "ffffffffffffffff".into());
        assert!(matches!(
            open(&stranger, &t),
            Err(ProtocolError::UnknownKey(ref kid)) if kid == "ffffffffffffffff"
        ));

        for (field, bad) in [
            ("payload", "not base64!"),
            ("payload", "eyJ9fQ=="),
            ("sig", "***"),
        ] {
            let msg = edited(&env, |v| v[field] = bad.into());
            assert!(
                matches!(open(&msg, &t), Err(ProtocolError::InvalidBase64 { field: f }) if f == field),
                "{field} {bad}"
            );
        }

        // Valid base64 of different bytes: the signature no longer matches.
        let mut tampered_req = request();
        tampered_req.amount = Money::new(360_000, Currency::CNY);
        let tampered_payload = serde_json::to_vec(&tampered_req).expect("json");
        let tampered = edited(&env, |v| {
            v["payload"] = URL_SAFE_NO_PAD.encode(&tampered_payload).into()
        });
        assert!(matches!(
            open(&tampered, &t),
            Err(ProtocolError::BadSignature { ref kid }) if *kid == k.key_id()
        ));

        // Signed by another key that claims the trusted key's id.
        let other = key();
        let mut forged = Envelope::seal(&serde_json::to_vec(&request()).expect("json"), &other);
        forged.kid = k.key_id();
        assert!(matches!(
            open(&forged.to_bytes(), &t),
            Err(ProtocolError::BadSignature { .. })
        ));

        // The untouched message still opens.
        assert!(open(&good, &t).is_ok());
    }

    #[test]
    fn rejections_follow_the_documented_order() {
        let k = key();
        let env = Envelope::seal(b"x", &k);
        let t = trust(&k);
        // Version before algorithm before key before base64.
        let msg = edited(&env, |v| {
            v["v"] = 2.into();
            v["alg"] = "none".into();
            v["kid"] = "nobody".into();
            v["sig"] = "!!".into();
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
        let msg = edited(&env, |v| {
            v["alg"] = "none".into();
            v["kid"] = "nobody".into();
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::UnsupportedAlgorithm(_))
        ));
        let msg = edited(&env, |v| {
            v["kid"] = "nobody".into();
            v["sig"] = "!!".into();
        });
        assert!(matches!(open(&msg, &t), Err(ProtocolError::UnknownKey(_))));
    }

    #[test]
    fn payload_is_not_parsed_before_the_signature() {
        let k = key();
        let t = trust(&k);
        let not_json = b"\x00\x01 definitely not json \xff";
        let env = Envelope::seal(not_json, &k);
        let opened = open(&env.to_bytes(), &t).expect("a signed non-JSON payload opens");
        assert_eq!(opened.payload, not_json);
        assert!(matches!(
            opened.parse::<PaymentRequest>(),
            Err(ProtocolError::InvalidPayload(_))
        ));

        // The same garbage, altered by one byte, fails at the signature, not at parsing.
        let mut altered = not_json.to_vec();
        altered[0] = 0x02;
        let msg = edited(&env, |v| {
            v["payload"] = URL_SAFE_NO_PAD.encode(&altered).into()
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::BadSignature { .. })
        ));
    }

    #[test]
    fn hostile_text_in_errors_is_clipped() {
        let k = key();
        let env = Envelope::seal(b"x", &k);
        let long = "\n".repeat(10_000);
        let msg = edited(&env, |v| v["kid"] = long.clone().into());
        let err = open(&msg, trust(&k)).expect_err("unknown");
        let text = err.to_string();
        assert!(text.len() < 200, "{}", text.len());
        assert!(!text.contains('\n'));
    }

    #[test]
    fn seal_json_refuses_what_open_would_refuse() {
        let k = key();
        let mut req = request();
        req.memo = "m".repeat(MAX_MESSAGE_BYTES);
        assert!(matches!(
            Envelope::seal_json(&req, &k),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_deeply_nested_payload_is_an_error_not_a_crash() {
        let k = key();
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        let opened = open(&Envelope::seal(deep.as_bytes(), &k).to_bytes(), trust(&k)).unwrap();
        assert!(matches!(
            opened.parse::<PaymentRequest>(),
            Err(ProtocolError::InvalidPayload(_))
        ));
        let deep_envelope = format!("{}{}", "{\"v\":".repeat(5_000), "1}".repeat(5_000));
        assert!(open(deep_envelope.as_bytes(), trust(&k)).is_err());
    }

    proptest::proptest! {
        /// Whatever arrives, opening it is an answer, never a panic.
        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let k = key();
            let _ = open(&bytes, trust(&k));
        }

        /// An envelope-shaped message with arbitrary fields is refused, not trusted.
        #[test]
        fn arbitrary_envelope_fields_never_open(
            kid in "\\PC{0,40}", alg in "\\PC{0,12}", payload in "[A-Za-z0-9_-]{0,200}", sig in "[A-Za-z0-9_-]{0,120}",
        ) {
            let k = key();
            let message = serde_json::json!({"v": 1, "kid": kid, "alg": alg, "payload": payload, "sig": sig});
            let bytes = serde_json::to_vec(&message).unwrap();
            proptest::prop_assert!(open(&bytes, trust(&k)).is_err());
        }

        /// A payload signed by a trusted key but holding anything at all is
        /// parsed and validated without a panic.
        #[test]
        fn validating_arbitrary_signed_payloads_never_panics(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            let k = key();
            let opened = open(&Envelope::seal(&payload, &k).to_bytes(), trust(&k)).unwrap();
            if let Ok(request) = opened.parse::<PaymentRequest>() {
                let _ = request.validate();
            }
            let _ = opened.parse::<PaymentResponse>();
            let _ = opened.parse::<crate::protocol::GatewayStatus>();
        }
    }
}
