//! The wake phrase, for real: spoken fixtures through the model into a daemon whose profile wakes on "hey wallet", over mosquitto and the gateway, with the events on MQTT.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use serde_json::Value;
use util::*;

/// The embedded profile, waking on its phrase.
fn phrase_profile(dir: &std::path::Path) -> String {
    let default = std::fs::read_to_string(root().join("devices/default.toml")).unwrap();
    let text = default.replace("mode = \"always\"", "mode = \"phrase\"");
    assert_ne!(text, default, "the profile's [wake] table moved");
    let path = dir.join("phrase.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `voicepay --device PROFILE run --json --input FIXTURES...`: its steps.
fn say(keys: &Keys, profile: &str, broker: &str, fixtures: &[&str]) -> Vec<Value> {
    let files: Vec<_> = fixtures.iter().map(|f| wav(f)).collect();
    stdout_lines(&play(broker, &keys.dev(), Some(profile), &files))
}

fn steps<'a>(events: &'a [Value], step: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["step"] == step).collect()
}

/// Every message on the device's events topic while `during` runs, up to
/// the first whose step is `last`.
fn events_on_mqtt<T>(broker_port: u16, last: &str, during: impl FnOnce() -> T) -> (T, Vec<Value>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, mut eventloop) = runtime.block_on(async {
        let options = rumqttc::MqttOptions::new("events-listener", "127.0.0.1", broker_port);
        rumqttc::AsyncClient::new(options, 64)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        client
            .subscribe("voicepay/v1/devices/+/events", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = subscribed_tx.send(());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send(serde_json::from_slice::<Value>(&p.payload).unwrap());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    subscribed.recv_timeout(Duration::from_secs(10)).unwrap();
    let result = during();
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| e["step"] == last) {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(event) => seen.push(event),
            Err(_) => panic!("no {last} on MQTT within 20 s: {seen:#?}"),
        }
    }
    (result, seen)
}

#[test]
fn only_what_starts_with_the_wake_phrase_pays_and_the_answer_to_a_question_needs_none() {
    model();
    let scratch = tempfile::tempdir().unwrap();
    let profile = phrase_profile(scratch.path());
    let keys = Keys::new();
    keys.set_limits(&["--auto", "20.00"]);
    let broker = Broker::start();
    let mut gateway = keys.gateway(&broker.url());

    // Said without the phrase: not for the device, and not even logged.
    let ignored = say(&keys, &profile, &broker.url(), &["pay_alice_20"]);
    assert!(steps(&ignored, "heard").is_empty(), "{ignored:#?}");
    assert!(steps(&ignored, "sent").is_empty(), "{ignored:#?}");

    // In one breath: paid under the auto-pay limit, and every step is also
    // an event on MQTT.
    let (paid, on_mqtt) = events_on_mqtt(broker.port, "answer", || {
        say(&keys, &profile, &broker.url(), &["wake_pay_alice_20"])
    });
    let answers = steps(&paid, "answer");
    assert_eq!(answers.len(), 1, "{paid:#?}");
    assert_eq!(answers[0]["status"], "approved");
    let mqtt_answers: Vec<&Value> = on_mqtt.iter().filter(|e| e["step"] == "answer").collect();
    assert_eq!(mqtt_answers.len(), 1, "{on_mqtt:#?}");
    assert_eq!(mqtt_answers[0]["request_id"], answers[0]["request_id"]);

    // The phrase alone, then the command: "Yes?", and the command needs none.
    let follow = say(
        &keys,
        &profile,
        &broker.url(),
        &["wake_alone", "pay_alice_20"],
    );
    let said: Vec<&str> = steps(&follow, "say")
        .iter()
        .filter_map(|s| s["text"].as_str())
        .collect();
    assert_eq!(said.first(), Some(&"Yes?"), "{follow:#?}");
    assert_eq!(steps(&follow, "answer").len(), 1, "{follow:#?}");

    // Above the auto-pay limit: read back, and "Confirm." without the
    // phrase answers the question.
    keys.set_limits(&["--auto", "0"]);
    let confirmed = say(
        &keys,
        &profile,
        &broker.url(),
        &["wake_pay_alice_20", "confirm_plain"],
    );
    let answers = steps(&confirmed, "answer");
    assert_eq!(answers.len(), 1, "{confirmed:#?}");
    assert_eq!(answers[0]["status"], "approved");

    assert!(gateway.terminate_within(Duration::from_secs(5)).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &keys.gw()]);
    assert_eq!(ledger.lines().count(), 3, "{ledger}");
}
