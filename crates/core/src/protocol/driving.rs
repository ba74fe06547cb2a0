//! The vehicle's driving state on `{prefix}/devices/{device_id}/driving`: what the car says, and how the device reads it.
//!
//! The vehicle publishes, retained, `true` or `false`, or a JSON object
//! whose boolean `driving` says it (`{"driving":true,"speed_kmh":42}`: the
//! other fields are ignored). An empty payload (a cleared retained message)
//! means the vehicle no longer says, and the profile's `assume_driving`
//! applies. The message is not signed: the broker's access control must let
//! only the vehicle publish here. A forged `false` unlocks no more than the
//! user may pay when parked, and a forged `true` only restricts.

/// The longest payload read; the state is a word.
const MAX_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDriving {
    #[error("driving state of {0} bytes is longer than {MAX_BYTES}")]
    TooLarge(usize),
    #[error("driving state is neither true, false nor {{\"driving\": true|false}}")]
    Unreadable,
}

/// `Some(driving)`, or `None` when the vehicle has cleared its state.
pub fn read_driving(payload: &[u8]) -> Result<Option<bool>, BadDriving> {
    if payload.len() > MAX_BYTES {
        return Err(BadDriving::TooLarge(payload.len()));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Bool(driving)) => Ok(Some(driving)),
        Ok(serde_json::Value::Object(fields)) => match fields.get("driving") {
            Some(serde_json::Value::Bool(driving)) => Ok(Some(*driving)),
            _ => Err(BadDriving::Unreadable),
        },
        _ => Err(BadDriving::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vehicle_says_true_false_or_an_object_with_driving_and_anything_else_is_refused() {
        assert_eq!(read_driving(b"true"), Ok(Some(true)));
        assert_eq!(read_driving(b" false\n"), Ok(Some(false)));
        assert_eq!(read_driving(br#"{"driving":true}"#), Ok(Some(true)));
        assert_eq!(
            read_driving(br#"{"driving": false, "speed_kmh": 0}"#),
            Ok(Some(false))
        );
        assert_eq!(read_driving(b""), Ok(None), "a cleared retained state");
        for garbage in [
            &b"yes"[..],
            b"1",
            b"\"true\"",
            br#"{"driving":"true"}"#,
            br#"{"moving":true}"#,
            b"[true]",
            b"\xff\xfe",
        ] {
            assert_eq!(
                read_driving(garbage),
                Err(BadDriving::Unreadable),
                "{garbage:?}"
            );
        }
        assert_eq!(read_driving(&[b' '; 300]), Err(BadDriving::TooLarge(300)));
    }
}
