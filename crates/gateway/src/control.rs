//! The gateway's answers on the control socket (and on its books, when none runs): its ledger, enrolling a device's key, its daily limit.

use voicepay_core::control::{Reply, Request, json};
use voicepay_core::keys::PublicKey;

use crate::Admin;

/// Answers a gateway request from its books.
pub fn answer(gateway: &Admin, request: &Request) -> Reply {
    match request {
        Request::Ledger => match gateway.ledger() {
            Ok(entries) => Reply::done(entries.iter().map(|e| format!("{}\n", json(e))).collect()),
            Err(error) => Reply::failed(error),
        },
        Request::Enroll {
            device_id,
            public_key,
        } => {
            let Ok(key) = PublicKey::from_base64url(public_key.trim()) else {
                return Reply::failed("--public-key is not a base64url Ed25519 public key");
            };
            match gateway.enroll(device_id, &key) {
                Ok(()) => Reply::done(format!("enrolled {device_id} (key id {})\n", key.key_id())),
                Err(error) => Reply::failed(error),
            }
        }
        Request::GatewayLimits { daily } => {
            if let Some(daily) = daily
                && let Err(error) = gateway.set_daily_limit(*daily)
            {
                return Reply::failed(error);
            }
            match gateway.daily_limit() {
                Ok(daily) => Reply::done(format!(
                    "{}\n",
                    json(&serde_json::json!({"daily_limit": daily}))
                )),
                Err(error) => Reply::failed(error),
            }
        }
        _ => Reply::failed("that is a device command: this is a gateway"),
    }
}
