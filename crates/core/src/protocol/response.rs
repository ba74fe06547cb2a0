//! `PaymentResponse`: the gateway's signed answer to one request.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Approved,
    Declined,
}

/// What an answer is bound to: one device's request, as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTo {
    pub request_id: Uuid,
    pub device_id: String,
    /// Lowercase hex SHA-256 of the exact request payload answered.
    pub request_sha256: String,
}

/// The gateway's signed answer. Unknown fields are ignored here (unlike the
/// request): a device must be able to settle its outbox on a newer gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResponse {
    pub request_id: Uuid,
    /// The device whose request this answers: no other device settles on it.
    pub device_id: String,
    /// Hex SHA-256 of the request payload answered: the device settles only
    /// if it is the request it sent, byte for byte.
    pub request_sha256: String,
    pub status: ResponseStatus,
    pub reason: Option<String>,
    pub gateway_txn_id: Option<String>,
    /// Unix milliseconds.
    pub processed_at: u64,
}

impl PaymentResponse {
    pub fn approved(to: &AnswerTo, gateway_txn_id: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id: to.request_id,
            device_id: to.device_id.clone(),
            request_sha256: to.request_sha256.clone(),
            status: ResponseStatus::Approved,
            reason: None,
            gateway_txn_id: Some(gateway_txn_id),
            processed_at,
        }
    }

    pub fn declined(to: &AnswerTo, reason: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id: to.request_id,
            device_id: to.device_id.clone(),
            request_sha256: to.request_sha256.clone(),
            status: ResponseStatus::Declined,
            reason: Some(reason),
            gateway_txn_id: None,
            processed_at,
        }
    }

    /// Whether this answers `to`: the same request id, device and bytes.
    pub fn answers(&self, to: &AnswerTo) -> bool {
        self.request_id == to.request_id
            && self.device_id == to.device_id
            && self.request_sha256 == to.request_sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;

    #[test]
    fn payment_response_json_names() {
        let id = Uuid::now_v7();
        let to = AnswerTo {
            request_id: id,
            device_id: "dev-1".into(),
            request_sha256: "ab".repeat(32),
        };
        let ok = PaymentResponse::approved(&to, "gw-1".into(), NOW);
        assert!(ok.answers(&to));
        let other_bytes = AnswerTo {
            request_sha256: "cd".repeat(32),
            ..to.clone()
        };
        assert!(!ok.answers(&other_bytes));
        let json = serde_json::to_string(&ok).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"request_id":"{id}","device_id":"dev-1","request_sha256":"{}","status":"approved","reason":null,"gateway_txn_id":"gw-1","processed_at":{NOW}}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(
            serde_json::from_str::<PaymentResponse>(&json).ok(),
            Some(ok)
        );
        let no = PaymentResponse::declined(&to, "over daily limit".into(), NOW);
        let json = serde_json::to_string(&no).expect("json");
        assert!(
            json.contains(
                r#""status":"declined","reason":"over daily limit","gateway_txn_id":null"#
            )
        );
        let newer = json.replace('}', r#","hint":"x"}"#);
        assert_eq!(
            serde_json::from_str::<PaymentResponse>(&newer).ok(),
            Some(no)
        );
    }
}
