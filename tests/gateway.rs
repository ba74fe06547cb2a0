//! The reference gateway as integrators run it: a real mosquitto, the `voicepay gateway` binary, signed messages.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use util::*;
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{
    self, ApprovalMethod, Envelope, Evidence, GatewayStatus, PaymentRequest, PaymentResponse,
    RequestBuilder, ResponseStatus, topics,
};

fn request(device_id: &str, minor: i64) -> PaymentRequest {
    let amount = Money::new(minor, Currency::CNY);
    RequestBuilder::new(
        device_id,
        1,
        amount,
        "Heytea",
        voicepay_core::clock::now_ms(),
    )
    .evidence(Evidence::new("Pay 36 yuan to Heytea.", b"pcm", 0.9, "en"))
    .approved(ApprovalMethod::VoiceConfirm, Some("Confirm.".into()))
    .build()
}

/// A bare MQTT client playing the device, with its incoming publishes on a channel.
async fn device_client(
    broker: &Broker,
    id: &str,
    subscribe: &str,
) -> (AsyncClient, mpsc::Receiver<Vec<u8>>) {
    let options = MqttOptions::new(id, "127.0.0.1", broker.port);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let (tx, rx) = mpsc::channel(16);
    let (subscribed_tx, mut subscribed) = mpsc::channel(1);
    client.subscribe(subscribe, QoS::AtLeastOnce).await.unwrap();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = subscribed_tx.try_send(());
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(p.payload.to_vec()).await;
                }
                _ => {}
            }
        }
    });
    subscribed.recv().await.unwrap();
    (client, rx)
}

async fn next_answer(rx: &mut mpsc::Receiver<Vec<u8>>) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_answers_once_per_request_and_keeps_running_after_bad_messages() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    ok(&["gateway", "init", "--data-dir", dir]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["gateway", "show-key", "--json", "--data-dir", dir])).unwrap();
    let gateway_key = PublicKey::from_base64url(shown["public_key"].as_str().unwrap()).unwrap();
    let device = SigningKey::generate().unwrap();
    let public = device.public_key().to_base64url();
    ok(&[
        "gateway",
        "enroll",
        "--device-id",
        "glasses-1",
        "--public-key",
        &public,
        "--data-dir",
        dir,
    ]);

    let prefix = protocol::DEFAULT_PREFIX;
    let (_watch, mut status) =
        device_client(&broker, "watcher", &topics::gateway_status(prefix)).await;
    let mut gateway = gateway_process(&broker.url(), dir);
    // The gateway's status is signed by its key.
    let said = |message: Option<Vec<u8>>| {
        GatewayStatus::open(&message.expect("a status"), &gateway_key)
            .expect("signed by the gateway")
            .online()
    };
    assert!(said(next_answer(&mut status).await), "online");
    let requests = topics::requests(prefix, "glasses-1");
    let (client, mut answers) =
        device_client(&broker, "device", &topics::responses(prefix, "glasses-1")).await;

    let req = request("glasses-1", 3600);
    let good = Envelope::seal_json(&req, &device).unwrap().0.to_bytes();
    let mut tampered: Envelope = serde_json::from_slice(&good).unwrap();
    tampered.payload = Envelope::seal(b"{\"amount\":1}", &device).payload;
    let stranger = SigningKey::generate().unwrap();
    let bad_messages = [
        b"garbage".to_vec(),
        vec![0xff, 0xfe, 0x00],
        serde_json::to_vec(&tampered).unwrap(),
        Envelope::seal_json(&req, &stranger).unwrap().0.to_bytes(),
    ];
    for bad in bad_messages {
        client
            .publish(&requests, QoS::AtLeastOnce, false, bad)
            .await
            .unwrap();
    }
    // Whatever the gateway does with those, it still answers the good one,
    // and only that one.
    client
        .publish(&requests, QoS::AtLeastOnce, false, good.clone())
        .await
        .unwrap();
    let first = next_answer(&mut answers).await.expect("an answer");
    let response: PaymentResponse = protocol::open(&first, |kid| {
        (kid == gateway_key.key_id()).then_some(gateway_key)
    })
    .expect("signed by the gateway")
    .parse()
    .unwrap();
    assert_eq!(response.request_id, req.request_id);
    assert_eq!(response.status, ResponseStatus::Approved);

    // MQTT may deliver twice; the device republishes its outbox on reconnect.
    client
        .publish(&requests, QoS::AtLeastOnce, false, good)
        .await
        .unwrap();
    let second = next_answer(&mut answers).await.expect("a repeated answer");
    assert_eq!(second, first, "the first answer again, byte for byte");

    let exit = gateway.terminate();
    assert!(exit.success(), "graceful stop: {exit:?}");
    assert!(!said(next_answer(&mut status).await), "offline");
    let ledger = ok(&["gateway", "ledger", "--data-dir", dir]);
    assert_eq!(ledger.lines().count(), 1, "charged once: {ledger}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_one_postgres_ledger_give_a_request_the_same_signed_answer_and_charge_it_once()
 {
    let broker = Broker::start();
    let db = voicepay_tools::postgres::TempPostgres::start().unwrap();
    let url = db.url();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_dir, b_dir) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
    // One gateway key, on two hosts.
    ok(&["gateway", "init", "--data-dir", a_dir]);
    let key = std::fs::read(a.path().join("gateway.key")).unwrap();
    voicepay_core::durable::write_file(
        &b.path().join("gateway.key"),
        &key,
        0o600,
        voicepay_core::durable::Existing::Keep,
    )
    .unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["gateway", "show-key", "--json", "--data-dir", a_dir])).unwrap();
    let gateway_key = PublicKey::from_base64url(shown["public_key"].as_str().unwrap()).unwrap();
    let device = SigningKey::generate().unwrap();
    let public = device.public_key().to_base64url();
    let enrolled = ok(&[
        "gateway",
        "enroll",
        "--device-id",
        "glasses-1",
        "--public-key",
        &public,
        "--ledger",
        &url,
        "--data-dir",
        b_dir,
    ]);
    assert!(enrolled.starts_with("enrolled glasses-1"), "{enrolled}");

    let prefix = protocol::DEFAULT_PREFIX;
    let (_watch, mut status) =
        device_client(&broker, "watcher", &topics::gateway_status(prefix)).await;
    let run = |dir: &str| {
        let mut command = gateway_command(&broker.url(), dir);
        command.args(["--ledger", &url]);
        Child::spawn(command)
    };
    let (mut first_gateway, mut second_gateway) = (run(a_dir), run(b_dir));
    // Both are subscribed once each has said its own session online.
    let mut sessions = std::collections::BTreeSet::new();
    while sessions.len() < 2 {
        let said = next_answer(&mut status).await.expect("a status");
        let said = GatewayStatus::open(&said, &gateway_key).expect("signed by the gateway");
        if said.online() {
            sessions.insert(said.session);
        }
    }
    let (client, mut answers) =
        device_client(&broker, "device", &topics::responses(prefix, "glasses-1")).await;
    let req = request("glasses-1", 3600);
    let good = Envelope::seal_json(&req, &device).unwrap().0.to_bytes();
    client
        .publish(
            topics::requests(prefix, "glasses-1"),
            QoS::AtLeastOnce,
            false,
            good,
        )
        .await
        .unwrap();
    // Each gateway hears it (no shared subscription here) and answers it.
    let one = next_answer(&mut answers).await.expect("an answer");
    let other = next_answer(&mut answers).await.expect("a second answer");
    assert_eq!(one, other, "the same signed decision from both");
    let response: PaymentResponse = protocol::open(&one, |kid| {
        (kid == gateway_key.key_id()).then_some(gateway_key)
    })
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(response.status, ResponseStatus::Approved);

    assert!(first_gateway.terminate().success());
    assert!(second_gateway.terminate().success());
    let ledger = ok(&["gateway", "ledger", "--ledger", &url, "--data-dir", a_dir]);
    assert_eq!(ledger.lines().count(), 1, "charged once: {ledger}");
    assert!(ledger.contains(&req.request_id.to_string()), "{ledger}");
}
