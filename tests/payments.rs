//! Paying for real: the `voicepay` daemon and gateway binaries, a real mosquitto, the real model, sled and signatures.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use serde_json::Value;
use util::*;

/// A gateway and a paired device, each with its own data directory.
struct Pair {
    broker: Option<Broker>,
    port: u16,
    gateway: Option<Child>,
    keys: Keys,
}

impl Pair {
    fn new() -> Pair {
        model();
        let broker = Broker::start();
        let mut pair = Pair {
            port: broker.port,
            broker: Some(broker),
            gateway: None,
            keys: Keys::new(),
        };
        pair.start_gateway();
        pair
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn start_gateway(&mut self) {
        let gw = self.keys.gw();
        let url = self.url();
        self.gateway = Some(gateway_process(&url, &gw));
    }

    fn stop_broker_and_gateway(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.terminate();
        }
        self.broker = None;
    }

    fn restart(&mut self) {
        self.broker = Some(Broker::start_on(self.port));
        self.start_gateway();
    }

    fn device(&self, args: &[&str]) -> String {
        self.keys.on_device(args)
    }

    /// `voicepay run --input FIXTURES... --json`: the daemon's steps.
    fn say(&self, fixtures: &[&str]) -> Vec<Value> {
        self.say_logged(fixtures).0
    }

    /// The steps, and what the daemon logged.
    fn say_logged(&self, fixtures: &[&str]) -> (Vec<Value>, String) {
        let files: Vec<_> = fixtures.iter().map(|f| wav(f)).collect();
        self.play(&files)
    }

    /// `run --input` on these WAV files: the steps, and what the daemon logged.
    fn play(&self, files: &[std::path::PathBuf]) -> (Vec<Value>, String) {
        let out = play(&self.url(), &self.keys.dev(), None, files);
        (stdout_lines(&out), stderr(&out))
    }

    /// The gateway's ledger, read once it has stopped (sled locks its files).
    fn final_ledger(mut self) -> Vec<Value> {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.terminate();
        }
        self.keys.ledger()
    }

    /// `voicepay run` on one fixture with stdout piped, as a child.
    fn spawn_daemon(&self, fixture_name: &str, extra: &[&str]) -> Child {
        let dev = self.keys.dev();
        let url = self.url();
        let input = fixture(&format!("{fixture_name}.wav"));
        let mut args = vec!["run", "--broker", &url, "--data-dir", &dev];
        args.extend(extra);
        args.extend(["--input", input.to_str().unwrap()]);
        let mut daemon = voicepay(&args);
        daemon.stdout(std::process::Stdio::piped());
        Child::spawn(daemon)
    }

    fn history(&self) -> Vec<Value> {
        let dev = self.keys.dev();
        stdout_lines(&run(voicepay(&[
            "history",
            "--json",
            "--verify",
            "--data-dir",
            &dev,
        ])))
    }
}

fn steps<'a>(events: &'a [Value], step: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["step"] == step).collect()
}

fn said(events: &[Value]) -> String {
    steps(events, "say")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn a_payment_confirmed_by_voice_is_approved_once() {
    let pair = Pair::new();
    let events = pair.say(&["pay_heytea_36", "confirm_plain"]);
    let sent = steps(&events, "sent");
    assert_eq!(sent.len(), 1, "{}", said(&events));
    let answers = steps(&events, "answer");
    assert_eq!(answers.len(), 1, "{}", said(&events));
    assert_eq!(answers[0]["status"], "approved");
    assert_eq!(answers[0]["request_id"], sent[0]["request_id"]);
    // Heytea is a name Whisper's prompt holds: read back, saying the payee is in doubt.
    assert!(
        said(&events).contains("to Heytea? Unsure of the payee"),
        "{}",
        said(&events)
    );

    let history = pair.history();
    assert_eq!(history[0]["event"]["kind"], "paid");
    assert_eq!(history[0]["event"]["amount"]["minor"], 3600);
    assert!(pair.device(&["outbox", "--json"]).is_empty());
    let ledger = pair.final_ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["payee"], "Heytea");
}

#[test]
fn a_cancelled_payment_is_never_sent() {
    let pair = Pair::new();
    let events = pair.say(&["pay_starbucks_50_noisy", "cancel_plain"]);
    assert!(steps(&events, "sent").is_empty(), "{}", said(&events));
    assert!(said(&events).contains("Payment cancelled."));
    assert_eq!(pair.history()[0]["event"]["kind"], "cancelled");
    assert!(pair.final_ledger().is_empty());
}

#[test]
fn under_the_auto_limit_it_pays_without_asking_and_over_the_daily_limit_it_declines() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--auto", "20.00", "--daily", "100.00"]);
    let events = pair.say(&["pay_alice_20", "pay_alice_3000"]);
    let sent = steps(&events, "sent");
    assert_eq!(sent.len(), 1, "{}", said(&events));
    let text = said(&events);
    assert!(text.contains("within your auto-pay limit"), "{text}");
    assert!(text.contains("over your daily limit of 100 yuan"), "{text}");
    let kinds: Vec<Value> = pair
        .history()
        .iter()
        .map(|h| h["event"]["kind"].clone())
        .collect();
    assert_eq!(kinds, ["paid", "refused"]);
    assert_eq!(pair.final_ledger().len(), 1);
}

#[test]
fn a_long_recording_with_chatter_and_one_command_in_it_pays_once() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--auto", "20.00", "--daily", "100.00"]);
    // Silence and talk around the command, in one file, as a microphone hears it.
    let mut recording = vec![0.0f32; 16_000];
    for name in ["none_coffee_was", "pay_alice_20", "none_turn_left"] {
        let clip = voicepay_device::audio::read_wav(&fixture(&format!("{name}.wav"))).unwrap();
        recording.extend(clip.samples);
        recording.extend(vec![0.0f32; 24_000]);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    voicepay_device::audio::wav::write_wav(&path, &recording).unwrap();

    let (events, _) = pair.play(&[path]);
    let heard = steps(&events, "heard");
    assert_eq!(heard.len(), 3, "{events:?}");
    assert_eq!(steps(&events, "sent").len(), 1, "{}", said(&events));
    assert_eq!(pair.final_ledger().len(), 1);
}

#[test]
fn offline_a_small_payment_is_queued_and_paid_once_when_the_link_returns() {
    let mut pair = Pair::new();
    pair.stop_broker_and_gateway();
    // 20 yuan is under the offline floor (50 per payment); 3000 is not.
    let events = pair.say(&["pay_alice_20", "confirm_plain", "pay_alice_3000"]);
    let sent = steps(&events, "sent");
    assert_eq!(sent.len(), 1, "{}", said(&events));
    assert_eq!(sent[0]["offline"], true);
    let text = said(&events);
    assert!(text.contains("offline"), "{text}");
    assert!(
        text.contains("Offline, I can only pay up to 50 yuan"),
        "{text}"
    );
    assert_eq!(pair.device(&["outbox", "--json"]).lines().count(), 1);

    pair.restart();
    // Any utterance: the daemon reconnects, republishes the outbox, settles.
    let events = pair.say(&["none_hello"]);
    assert_eq!(steps(&events, "answer").len(), 1, "{}", said(&events));
    assert!(pair.device(&["outbox", "--json"]).is_empty());
    let history = pair.history();
    let paid: Vec<&Value> = history
        .iter()
        .filter(|h| h["event"]["kind"] == "paid")
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["event"]["offline"], true);
    // The daemon has exited; the gateway finishes what it took before it stops.
    assert_eq!(pair.final_ledger().len(), 1, "paid exactly once");
}

/// The README's main job. Its JSON carries every signer's public key first
/// (the device's, the gateway's and the agent's) and every envelope in full:
/// each signature verifies with nothing but those keys.
#[test]
fn the_demo_tells_the_whole_story_and_its_signatures_verify_independently() {
    model();
    let broker = Broker::start();
    let out = run(voicepay(&["demo", "--json", "--broker", &broker.url()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0]["step"], "keys");
    let key = |name: &str| {
        voicepay_core::keys::PublicKey::from_base64url(lines[0][name].as_str().unwrap()).unwrap()
    };
    let (device, gateway) = (key("device_public_key"), key("gateway_public_key"));
    let agent = key("agent_public_key");
    let verify = |envelope: &Value, signer: voicepay_core::keys::PublicKey| {
        let bytes = serde_json::to_vec(envelope).unwrap();
        voicepay_core::protocol::open(&bytes, |kid| (kid == signer.key_id()).then_some(signer))
            .expect("the signature verifies");
    };
    let sent = steps(&lines, "sent");
    let answers = steps(&lines, "answer");
    assert_eq!(sent.len(), 4, "{}", said(&lines));
    assert_eq!(answers.len(), 4, "{}", said(&lines));
    let agent_task: Vec<&&Value> = sent
        .iter()
        .filter(|s| {
            let payload = voicepay_core::protocol::Envelope::unverified_payload_of(
                &serde_json::to_vec(&s["envelope"]).unwrap(),
            )
            .unwrap();
            let request: Value = serde_json::from_slice(&payload).unwrap();
            request["kind"] == "agent_task" && request["agent"]["agent_id"] == "claude-code"
        })
        .collect();
    assert_eq!(agent_task.len(), 1, "{}", said(&lines));
    for s in &sent {
        verify(&s["envelope"], device);
    }
    let tasks = steps(&lines, "task");
    assert_eq!(tasks.len(), 1, "{}", said(&lines));
    verify(&tasks[0]["envelope"], agent);
    for a in &answers {
        verify(&a["envelope"], gateway);
        assert_eq!(a["status"], "approved");
    }
    assert_eq!(sent.iter().filter(|s| s["offline"] == true).count(), 1);
    let history: Vec<&str> = steps(&lines, "history")
        .iter()
        .map(|h| h["entry"]["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["paid", "paid", "cancelled", "refused", "paid", "paid"]
    );
}

#[test]
fn above_the_code_limit_a_bare_confirm_never_pays() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--code", "20.00"]);
    // "Confirm." without the code is asked again; "Yes, confirm." still has no code.
    let events = pair.say(&["pay_heytea_36", "confirm_plain", "confirm_yes"]);
    let text = said(&events);
    assert!(text.contains("Say confirm and the code"), "{text}");
    assert!(steps(&events, "sent").is_empty(), "{text}");
    assert_eq!(pair.history()[0]["event"]["kind"], "cancelled");
    assert!(pair.final_ledger().is_empty());
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let pair = Pair::new();
    let key = pair.keys.device_dir.join("device.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let dev = pair.keys.dev();
    let url = pair.url();
    let input = fixture("cancel_plain.wav");
    let out = run(voicepay(&[
        "run",
        "--broker",
        &url,
        "--data-dir",
        &dev,
        "--input",
        input.to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("chmod 600"), "{err}");
}

/// Garbage, a forged answer and an answer for a request nobody made wait in
/// the device's MQTT session; the daemon rejects each and still pays.
#[test]
fn bad_answers_are_rejected_and_the_daemon_keeps_paying() {
    use rumqttc::{Client, MqttOptions, QoS};
    use voicepay_core::keys::SigningKey;
    use voicepay_core::protocol::{Envelope, PaymentResponse, topics};

    let pair = Pair::new();
    // A first run opens the device's persistent session on the broker.
    pair.say(&["none_hello"]);
    let device: Value = serde_json::from_str(&pair.device(&["keys", "show", "--json"])).unwrap();
    let responses = topics::responses(protocol_prefix(), device["device_id"].as_str().unwrap());
    let gateway_key = SigningKey::load_file(&pair.keys.gateway_dir.join("gateway.key")).unwrap();
    let forger = SigningKey::generate().unwrap();
    let nobodys = voicepay_core::protocol::AnswerTo {
        request_id: uuid::Uuid::now_v7(),
        device_id: device["device_id"].as_str().unwrap().to_owned(),
        request_sha256: "00".repeat(32),
    };
    let unknown = PaymentResponse::approved(&nobodys, "txn".into(), 1);
    let bad = [
        b"not json at all".to_vec(),
        vec![0xc3, 0x28, 0xff],
        Envelope::seal_json(&unknown, &forger).unwrap().0.to_bytes(),
        Envelope::seal_json(&unknown, &gateway_key)
            .unwrap()
            .0
            .to_bytes(),
    ];
    let (client, mut connection) =
        Client::new(MqttOptions::new("junk", "127.0.0.1", pair.port), 10);
    for message in bad {
        client
            .publish(&responses, QoS::AtLeastOnce, false, message)
            .unwrap();
    }
    client.disconnect().unwrap();
    for event in connection.iter() {
        if event.is_err() {
            break;
        }
    }

    let (events, log) = pair.say_logged(&["pay_heytea_36", "confirm_plain"]);
    // Garbage twice and the forgery; the well-signed answer to nobody's
    // request settles nothing.
    assert_eq!(log.matches("rejected an answer").count(), 3, "{log}");
    let answers = steps(&events, "answer");
    assert_eq!(answers.len(), 1, "{}", said(&events));
    assert_eq!(answers[0]["status"], "approved");
    assert_eq!(pair.final_ledger().len(), 1);
}

fn protocol_prefix() -> &'static str {
    voicepay_core::protocol::DEFAULT_PREFIX
}

#[test]
fn the_demo_runs_on_its_embedded_broker() {
    model();
    let out = run(voicepay(&["demo", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(steps(&lines, "answer").len(), 4, "{}", said(&lines));
    assert_eq!(steps(&lines, "history").len(), 6);
    assert!(!stderr(&out).contains("ERROR"), "{}", stderr(&out));
}

/// A wrong spoken code ends the payment at once: no second guess.
#[test]
fn above_the_code_limit_a_wrong_code_is_refused() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--code", "20.00"]);
    // Four digits can never be the three-digit code.
    let events = pair.say(&["pay_heytea_36", "confirm_wrong_code", "confirm_plain"]);
    let text = said(&events);
    assert!(
        text.contains("Payment cancelled: the code was wrong."),
        "{text}"
    );
    assert!(text.contains("There is nothing to confirm."), "{text}");
    assert!(steps(&events, "sent").is_empty(), "{text}");
    assert!(pair.final_ledger().is_empty());
}

/// Three wrong codes over three runs lock payments that need a code, and
/// the next run is locked too: neither the count nor the lockout is lost
/// to a restart.
#[test]
fn the_payment_code_lockout_survives_a_restart() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--code", "20.00"]);
    for _ in 0..3 {
        let text = said(&pair.say(&["pay_heytea_36", "confirm_wrong_code"]));
        assert!(
            text.contains("Payment cancelled: the code was wrong."),
            "{text}"
        );
    }
    let text = said(&pair.say(&["pay_heytea_36"]));
    assert!(
        text.contains("After three wrong codes, payments that need a code are locked"),
        "{text}"
    );
    assert!(pair.final_ledger().is_empty());
}

/// A service manager's stop: SIGTERM while a payment waits for an answer
/// that does not come. The daemon exits cleanly and soon, and the payment
/// stays in the outbox for the next start.
#[test]
fn sigterm_stops_the_daemon_while_it_waits_for_an_answer_and_the_outbox_keeps_the_payment() {
    let mut pair = Pair::new();
    if let Some(mut gateway) = pair.gateway.take() {
        gateway.terminate();
    }
    // A gateway that says it is online and never answers.
    let (client, mut connection) = rumqttc::Client::new(
        rumqttc::MqttOptions::new("silent-gateway", "127.0.0.1", pair.port),
        10,
    );
    let status = voicepay_core::protocol::topics::gateway_status(protocol_prefix());
    let key =
        voicepay_core::keys::SigningKey::load_file(&pair.keys.gateway_dir.join("gateway.key"))
            .unwrap();
    let online =
        voicepay_core::protocol::GatewayStatus::new(true, voicepay_core::clock::now_ms(), 1)
            .seal(&key)
            .unwrap();
    client
        .publish(status, rumqttc::QoS::AtLeastOnce, true, online)
        .unwrap();
    client.disconnect().unwrap();
    for event in connection.iter() {
        if event.is_err() {
            break;
        }
    }
    pair.device(&["limits", "set", "--auto", "20.00"]);
    let (mut daemon, lines) = pair.keys.daemon(&pair.url(), "pay_alice_20");
    let sent = lines.iter().find(|line| line.contains(r#""step":"sent""#));
    assert!(sent.is_some(), "the payment was sent");
    let status = daemon.terminate_within(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let outbox = pair.device(&["outbox", "--json"]);
    assert_eq!(outbox.lines().count(), 1, "{outbox}");
    assert!(outbox.contains("Alice"), "{outbox}");
}

/// Regression: the console's println! panicked on a closed stdout (a log
/// collector gone), taking the daemon down mid-payment.
#[test]
fn a_daemon_whose_stdout_is_closed_still_pays() {
    let pair = Pair::new();
    pair.device(&["limits", "set", "--auto", "20.00"]);
    let mut daemon = pair.spawn_daemon("pay_alice_20", &[]);
    drop(daemon.stdout());
    // A bound on a hang, generous: on a starved machine hearing the clip
    // alone took over a minute.
    let status = daemon.wait_within(Duration::from_secs(300));
    assert!(status.success(), "{status:?}");
    let history = pair.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["event"]["kind"], "paid");
    assert_eq!(pair.final_ledger().len(), 1);
}
