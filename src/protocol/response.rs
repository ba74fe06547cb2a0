//! `PaymentResponse`: the gateway's signed answer to one request.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Approved,
    Declined,
}

/// The gateway's signed answer. Unknown fields are ignored here (unlike the
/// request): a device must be able to settle its outbox on a newer gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResponse {
    pub request_id: Uuid,
    pub status: ResponseStatus,
    pub reason: Option<String>,
    pub gateway_txn_id: Option<String>,
    /// Unix milliseconds.
    pub processed_at: u64,
}

impl PaymentResponse {
    pub fn approved(request_id: Uuid, gateway_txn_id: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id,
            status: ResponseStatus::Approved,
            reason: None,
            gateway_txn_id: Some(gateway_txn_id),
            processed_at,
        }
    }

    pub fn declined(request_id: Uuid, reason: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id,
            status: ResponseStatus::Declined,
            reason: Some(reason),
            gateway_txn_id: None,
            processed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;

    #[test]
    fn payment_response_json_names() {
        let id = Uuid::now_v7();
        let ok = PaymentResponse::approved(id, "gw-1".into(), NOW);
        let json = serde_json::to_string(&ok).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"request_id":"{id}","status":"approved","reason":null,"gateway_txn_id":"gw-1","processed_at":{NOW}}}"#
            )
        );
        assert_eq!(
            serde_json::from_str::<PaymentResponse>(&json).ok(),
            Some(ok)
        );
        let no = PaymentResponse::declined(id, "over daily limit".into(), NOW);
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
