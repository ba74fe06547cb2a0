//! `voicepay history --verify` on a device's own files, as a user runs it: the chain keyed with the device secret, and the gateway's signatures on the answers it holds.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use util::*;
use uuid::Uuid;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{AnswerTo, Envelope, PaymentResponse};
use voicepay_device::store::{
    HistoryEntry, HistoryEvent, PendingPayment, Seal, Settlement, SpendChecks, Store, StoreConfig,
};

/// A paid payment and a cancellation in the device's store, the request
/// signed by the device's key and the answer by the gateway's, as the
/// daemon records them.
fn a_paid_payment_and_a_cancellation(keys: &Keys) {
    let device = SigningKey::load_file(&keys.device_dir.join("device.key")).unwrap();
    let gateway = SigningKey::load_file(&keys.gateway_dir.join("gateway.key")).unwrap();
    let store = Store::open(&StoreConfig::new(keys.device_dir.join("store"))).unwrap();
    let request_id = Uuid::now_v7();
    let payload = format!(r#"{{"request_id":"{request_id}"}}"#);
    let p = PendingPayment {
        request_id,
        seq: store.next_seq().unwrap(),
        amount: Money::new(3_600, Currency::CNY),
        payee: "Heytea".into(),
        created_at: 1,
        offline: false,
        agent: None,
        envelope: Envelope::seal(payload.as_bytes(), &device).to_bytes(),
    };
    store
        .commit_payment(&p, 20_000, &SpendChecks::default())
        .unwrap();
    let to = AnswerTo {
        request_id,
        device_id: device_id(&keys.dev()),
        request_sha256: Envelope::payload_sha256_of(&p.envelope).unwrap(),
    };
    let answer = PaymentResponse::approved(&to, "gw-1".into(), 1_000);
    let (signed, _) = Envelope::seal_json(&answer, &gateway).unwrap();
    let settled = Settlement::Approved {
        gateway_txn_id: "gw-1".into(),
        processed_at: 1_000,
        response: signed.to_bytes(),
    };
    store.settle(request_id, &settled).unwrap().unwrap();
    store
        .record(HistoryEvent::Cancelled {
            amount: Money::new(500, Currency::CNY),
            payee: "Heytea".into(),
            at: 2_000,
            reason: "user said cancel".into(),
            agent: None,
        })
        .unwrap();
}

/// The form the unkeyed hash is taken of: anyone can compute it.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u32,
    index: u64,
    prev_hash: &'a str,
    event: &'a HistoryEvent,
}

/// What whoever can write the store but not read the device secret can do:
/// change the paid amount and rehash the chain from there, and its head.
fn rewrite_without_the_secret(store_dir: &Path) {
    let db = sled::open(store_dir).unwrap();
    let history = db.open_tree("history").unwrap();
    let mut entries: Vec<HistoryEntry> = history
        .iter()
        .map(|item| serde_json::from_slice(&item.unwrap().1).unwrap())
        .collect();
    let HistoryEvent::Paid { amount, .. } = &mut entries[0].event else {
        panic!("entry 0 is the payment")
    };
    amount.minor = 100;
    let mut prev = entries[0].prev_hash.clone();
    for entry in &mut entries {
        entry.prev_hash = prev;
        entry.seal = Seal::Sha256;
        let bytes = serde_json::to_vec(&Canonical {
            v: 1,
            index: entry.index,
            prev_hash: &entry.prev_hash,
            event: &entry.event,
        })
        .unwrap();
        entry.hash = hex::encode(Sha256::digest(&bytes));
        prev = entry.hash.clone();
        history
            .insert(
                entry.index.to_be_bytes(),
                serde_json::to_vec(entry).unwrap(),
            )
            .unwrap();
    }
    let head = format!(r#"{{"next_index":{},"last_hash":"{prev}"}}"#, entries.len());
    db.open_tree("state")
        .unwrap()
        .insert("history_head", head.as_bytes())
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn history_verify_passes_on_a_devices_history_and_names_the_entry_rewritten_without_the_device_secret()
 {
    let keys = Keys::new();
    let dev = keys.dev();
    a_paid_payment_and_a_cancellation(&keys);
    let out = run(voicepay(&["history", "--verify", "--data-dir", &dev]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("history chain intact: 2 entries sealed with the device secret, 1 gateway answers signed by the trusted gateway"),
        "{}",
        stderr(&out)
    );

    rewrite_without_the_secret(&keys.device_dir.join("store"));
    let out = run(voicepay(&["history", "--verify", "--data-dir", &dev]));
    assert!(!out.status.success(), "a rewritten history fails");
    let said = stderr(&out);
    assert!(
        said.contains("history chain broken at entry 0") && said.contains("device secret"),
        "{said}"
    );
    // The listing is still printed, for the user to see what it claims.
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.00 CNY"));
}

#[test]
fn history_verify_names_the_entry_whose_answer_is_not_signed_by_the_trusted_gateway() {
    let keys = Keys::new();
    let dev = keys.dev();
    a_paid_payment_and_a_cancellation(&keys);
    // The device now trusts another gateway key: the stored answer was
    // signed by a key it does not trust.
    let other = tempfile::tempdir().unwrap();
    let other_dir = other.path().join("gateway");
    let other_dir = other_dir.to_str().unwrap();
    ok(&["gateway", "init", "--data-dir", other_dir]);
    let shown: serde_json::Value = serde_json::from_str(&ok(&[
        "gateway",
        "show-key",
        "--json",
        "--data-dir",
        other_dir,
    ]))
    .unwrap();
    let trusted = shown["public_key"].as_str().unwrap();
    ok(&["trust-gateway", "--public-key", trusted, "--data-dir", &dev]);

    let out = run(voicepay(&["history", "--verify", "--data-dir", &dev]));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("history entry 0: the gateway's signed answer does not check")
            && said.contains(shown["kid"].as_str().unwrap()),
        "{said}"
    );
}

#[test]
fn a_device_whose_history_secret_is_gone_says_so_and_its_daemon_does_not_start() {
    model();
    let keys = Keys::new();
    let dev = keys.dev();
    a_paid_payment_and_a_cancellation(&keys);
    let secret = keys.device_dir.join("history.key");
    std::fs::remove_file(&secret).unwrap();

    let out = run(voicepay(&["history", "--verify", "--data-dir", &dev]));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("device secret") && said.contains("is missing"),
        "{said}"
    );

    // Paying on would leave its answers nowhere to be recorded.
    let input = fixture("pay_heytea_36.wav");
    let broker = format!("mqtt://127.0.0.1:{}", free_port());
    let out = run(voicepay(&[
        "run",
        "--broker",
        &broker,
        "--data-dir",
        &dev,
        "--input",
        input.to_str().unwrap(),
    ]));
    assert!(!out.status.success(), "the daemon must not start");
    assert!(stderr(&out).contains("is missing"), "{}", stderr(&out));
    assert!(
        !secret.exists(),
        "no new secret that would not check the old entries"
    );
}
