//! The trust line at the broker, on a stock mosquitto at its default limits: nothing secret crosses it, push-to-talk is only the button's, the gateway's presence cannot be erased or frozen, no message takes a side down, and nothing is lost when the broker drops messages.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;

use tokio_util::sync::CancellationToken;
use util::*;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Limits;
use voicepay_core::protocol::ptt::PushToTalk;
use voicepay_core::protocol::{self, ResponseStatus, topics};
use voicepay_core::transport::{BrokerUrl, DeviceLink};
use voicepay_device::audio::gate::{Gate, Listen};
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::Event;
use voicepay_device::identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Source;

use voicepay_gateway::Gateway;
use voicepay_tools::rig::{Installation, Typed};

/// A device enrolled with a gateway: an installation (`voicepay_tools::rig`)
/// whose gateway serves with the heartbeat each test chooses.
struct Pair(Installation);

impl std::ops::Deref for Pair {
    type Target = Installation;
    fn deref(&self) -> &Installation {
        &self.0
    }
}

impl Pair {
    fn new(url: &BrokerUrl, limits: &Limits) -> Pair {
        let home = Installation::new(url.clone(), protocol::DEFAULT_PREFIX).unwrap();
        home.set_limits(limits).unwrap();
        Pair(home)
    }

    /// The gateway serving on `url` until the returned token is cancelled.
    fn serve_gateway(&self, url: &BrokerUrl) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        self.serve_gateway_beating(url, Duration::from_secs(10))
    }

    fn open_gateway_beating(&self, heartbeat: Duration) -> Gateway {
        let mut config = self.gateway_config();
        config.heartbeat = heartbeat;
        self.open_gateway(config).unwrap()
    }

    /// With its "online" said every `heartbeat`.
    fn serve_gateway_beating(
        &self,
        url: &BrokerUrl,
        heartbeat: Duration,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let gateway = self.open_gateway_beating(heartbeat);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let url = url.clone();
        let task = tokio::spawn(async move {
            voicepay_gateway::run(gateway, &url, stopped.cancelled_owned())
                .await
                .unwrap();
        });
        (stop, task)
    }

    fn ledger(&self) -> Vec<voicepay_gateway::LedgerEntry> {
        self.0.ledger().unwrap()
    }
}

/// A running daemon fed typed utterances, behind `gate`.
fn device(pair: &Pair, profile: DeviceProfile, gate: Arc<Gate>) -> Typed {
    let mut config = pair.daemon_config(profile);
    config.gate = gate;
    pair.typed(config)
}

/// Everything published on the broker, as a client subscribed to `#` saw it.
#[derive(Clone, Default)]
struct Spy(Arc<Mutex<Vec<Message>>>);

/// A topic and what was published on it.
type Message = (String, Vec<u8>);

impl Spy {
    async fn start(port: u16) -> Spy {
        let spy = Spy::default();
        let seen = spy.clone();
        let mut options = MqttOptions::new("spy", "127.0.0.1", port);
        options.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        client.subscribe("#", QoS::AtLeastOnce).await.unwrap();
        tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                match event {
                    MqttEvent::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    MqttEvent::Incoming(Packet::Publish(p)) => {
                        seen.0.lock().unwrap().push((p.topic, p.payload.to_vec()));
                    }
                    _ => {}
                }
            }
        });
        subscribed.await.unwrap();
        spy
    }

    fn messages(&self) -> Vec<Message> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a message satisfies `found`.
    async fn wait_for(&self, what: &str, found: impl Fn(&str, &[u8]) -> bool) {
        let carried = format!("the broker carries {what}");
        wait_for_async(&carried, Duration::from_secs(60), || {
            self.messages().iter().any(|(t, p)| found(t, p))
        })
        .await;
    }
}

/// The texts a message carries: its bytes, and for an envelope its
/// decoded payload too (a signed payload is base64url on the wire).
fn readable(payload: &[u8]) -> Vec<String> {
    let mut texts = vec![String::from_utf8_lossy(payload).into_owned()];
    if let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(payload)
        && let Some(Value::String(inner)) = envelope.get("payload")
        && let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(inner)
    {
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    // An event carrying an envelope (`sent`, `answer`): its payload too.
    if let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(payload)
        && let Some(envelope) = event.get("envelope")
    {
        texts.extend(
            readable(envelope.to_string().as_bytes())
                .into_iter()
                .skip(1),
        );
    }
    texts
}

/// Every JSON string value in `text` (when it is JSON), recursively.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn embedded_profile() -> DeviceProfile {
    DeviceProfile::embedded().unwrap()
}

/// A payment above the code limit, confirmed with the code, while a spy
/// watches the broker; returns what it saw and the code.
async fn a_payment_with_its_code(transcripts: bool) -> (Vec<Message>, String) {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let spy = Spy::start(broker.port).await;
    let pair = Pair::new(
        &url,
        &Limits {
            auto_pay: Money::zero(Currency::CNY),
            daily: None,
            payment_code_above: Some(Money::new(10_000, Currency::CNY)),
        },
    );
    let (stop_gateway, gateway) = pair.serve_gateway(&url);
    let mut profile = embedded_profile();
    profile.mqtt.transcripts = transcripts;
    let mut device = device(&pair, profile, Arc::new(Gate::open()));

    device.say("Pay 500 yuan to Heytea.").await;
    let code: String = device
        .next(|event| match event {
            Event::Say { text } if text.contains("the code") => Some(
                text.split("the code")
                    .nth(1)
                    .unwrap()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect(),
            ),
            _ => None,
        })
        .await;
    assert_eq!(code.len(), 3, "a three-digit code was read out");
    let spaced: Vec<String> = code.chars().map(String::from).collect();
    device.say(&format!("Confirm, {}.", spaced.join(" "))).await;
    let status = device
        .next(|event| match event {
            Event::Answer { status, .. } => Some(*status),
            _ => None,
        })
        .await;
    assert_eq!(status, ResponseStatus::Approved, "the code paid");
    // The answer's event is the last thing the device publishes here.
    spy.wait_for("the answer's event", |topic, payload| {
        topic.ends_with("/events") && String::from_utf8_lossy(payload).contains("\"answer\"")
    })
    .await;
    device.stop_within(Duration::from_secs(5)).await;
    stop_gateway.cancel();
    gateway.await.unwrap();
    assert_eq!(pair.ledger().len(), 1, "charged once");
    (spy.messages(), code)
}

/// No message carries the code, as digits or as the words of the answer.
fn assert_no_code(seen: &[Message], code: &str) {
    let spaced: Vec<String> = code.chars().map(String::from).collect();
    let spaced = spaced.join(" ");
    for (topic, payload) in seen {
        for text in readable(payload) {
            assert!(!text.contains(&spaced), "{topic} carries the code: {text}");
            assert!(
                !text.contains("Confirm,"),
                "{topic} carries the code's answer: {text}"
            );
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let mut all = Vec::new();
                strings(&value, &mut all);
                assert!(
                    all.iter().all(|s| s != code && !s.contains(&spaced)),
                    "{topic} carries the code: {text}"
                );
            }
        }
    }
}

fn carried(seen: &[Message], what: &str) -> bool {
    seen.iter()
        .any(|(_, payload)| readable(payload).iter().any(|t| t.contains(what)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_neither_the_payment_code_nor_what_was_said_crosses_the_broker() {
    let (seen, code) = a_payment_with_its_code(false).await;
    assert_no_code(&seen, &code);
    // (The device's own words, "Paid 500 yuan to Heytea.", may go.)
    assert!(
        !carried(&seen, "Pay 500 yuan to Heytea."),
        "the transcript stayed on the device"
    );
    // Not vacuous: the request crossed, with the hash of what was heard,
    // and the events told of the question with the code masked.
    let hash = hex_sha256(b"Pay 500 yuan to Heytea.");
    assert!(
        carried(&seen, &hash),
        "the request carries the transcript's hash"
    );
    assert!(carried(&seen, "the code * * *"), "the read-back, masked");
    assert!(
        carried(&seen, "\"heard\""),
        "a heard event, without its words"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_profile_asks_what_was_said_crosses_the_broker_but_never_the_payment_code() {
    let (seen, code) = a_payment_with_its_code(true).await;
    assert_no_code(&seen, &code);
    assert!(
        carried(&seen, "\"transcript\":\"Pay 500 yuan to Heytea.\""),
        "the transcript is in the events and the request's evidence"
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A raw MQTT client for the test's own messages.
async fn client(port: u16, id: &str) -> AsyncClient {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    // An attacker's client sends (and a spy reads) whatever it likes.
    options.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

fn now_ms() -> u64 {
    voicepay_core::clock::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_unsigned_forged_stale_or_played_back_push_to_talk_start_never_opens_the_microphone()
 {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let button = SigningKey::generate().unwrap();
    let stranger = SigningKey::generate().unwrap();
    let gateway = SigningKey::generate().unwrap();
    let device_id = "dev-ptt";
    let topic = topics::push_to_talk(protocol::DEFAULT_PREFIX, device_id);
    let press = |held: bool, at: u64, key: &SigningKey, device: &str| {
        PushToTalk::new(held, device, at).seal(key).unwrap()
    };
    let attacker = client(broker.port, "attacker").await;
    // A genuine start, captured and left retained before the device connects.
    attacker
        .publish(
            &topic,
            QoS::AtLeastOnce,
            true,
            press(true, now_ms(), &button, device_id),
        )
        .await
        .unwrap();
    let mut link = DeviceLink::start(
        &url,
        protocol::DEFAULT_PREFIX,
        device_id,
        gateway.public_key(),
        Some(button.public_key()),
        Vec::new,
    );
    let mut state = link.state.clone();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| s.broker))
        .await
        .unwrap()
        .unwrap();
    // Connected is not yet subscribed: a live press sent before the
    // subscription is in place is lost, which a loaded machine makes likely.
    // So the button says "stop" (fresh, but older than every press below)
    // until the device hears one. Had the retained start been taken, the
    // device would refuse these stops as older and hear that start instead.
    let probe_at = now_ms() - 20_000;
    let mut probes = 0;
    let first = loop {
        attacker
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                press(false, probe_at + probes, &button, device_id),
            )
            .await
            .unwrap();
        probes += 1;
        match tokio::time::timeout(Duration::from_millis(500), link.push_to_talk.recv()).await {
            Ok(held) => break held.unwrap(),
            Err(_) if probes < 240 => {}
            Err(_) => panic!("the device never heard the button's live presses"),
        }
    };
    assert!(!first, "the retained start was never taken");
    // Then, live:
    let now = now_ms();
    let genuine_start = press(true, now + 10, &button, device_id);
    for message in [
        b"start".to_vec(),
        press(true, now + 1, &stranger, device_id),
        press(true, now + 2, &button, "dev-other"),
        press(true, now - 60_000, &button, device_id),
        genuine_start.clone(),
        press(false, now + 11, &button, device_id),
        // The genuine start played back.
        genuine_start,
        // The last word, so the test knows everything before was read.
        press(false, now + 12, &button, device_id),
    ] {
        attacker
            .publish(&topic, QoS::AtLeastOnce, false, message)
            .await
            .unwrap();
    }
    let mut taken = Vec::new();
    while taken.len() < 3 {
        let held = tokio::time::timeout(Duration::from_secs(10), link.push_to_talk.recv())
            .await
            .expect("the genuine presses came")
            .unwrap();
        // A probe still on its way is a stop before any start: every
        // press below that comes before the genuine start is a start.
        if taken.is_empty() && !held {
            continue;
        }
        taken.push(held);
    }
    assert_eq!(
        taken,
        [true, false, false],
        "only the genuine live presses were taken"
    );
    link.close(protocol::DEFAULT_PREFIX, device_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_talk_start_holds_the_microphone_no_longer_than_its_hold_time() {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let pair = Pair::new(&url, &Limits::default());
    let button = SigningKey::generate().unwrap();
    let mut profile = embedded_profile();
    profile.wake.mode = voicepay_device::wake::WakeMode::PushToTalk;
    profile.wake.ptt_key = Some(button.public_key().to_base64url());
    profile.wake.ptt_hold_s = 1;
    let gate = Arc::new(Gate::push_to_talk());
    let device = device(&pair, profile, gate.clone());
    let topic = topics::push_to_talk(protocol::DEFAULT_PREFIX, &pair.device_id);
    let button_side = client(broker.port, "button").await;
    // Pressed until the device takes it (it may still be subscribing).
    let mut opened = false;
    for _ in 0..100 {
        let start = PushToTalk::new(true, &pair.device_id, now_ms());
        button_side
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                start.seal(&button).unwrap(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if gate.listen() == Listen::Open {
            opened = true;
            break;
        }
    }
    assert!(opened, "a signed start opens the microphone");
    // No stop comes (lost, or never sent): the start lapses by itself.
    wait_for_async(
        "the microphone released within its hold time",
        Duration::from_secs(5),
        || gate.listen() != Listen::Open,
    )
    .await;
    assert_eq!(gate.listen(), Listen::Released);
    device.stop_within(Duration::from_secs(5)).await;
}

/// The device's own link (no daemon): what it believes of the gateway.
fn device_link(pair: &Pair, url: &BrokerUrl) -> DeviceLink {
    DeviceLink::start(
        url,
        protocol::DEFAULT_PREFIX,
        &pair.device_id,
        pair.gateway_public,
        None,
        Vec::new,
    )
}

/// Waits until the link believes `gateway` of the gateway, at most `limit`
/// after it reached the broker; returns how long that took.
async fn gateway_seen(link: &DeviceLink, gateway: bool, limit: Duration) -> Duration {
    let mut state = link.state.clone();
    tokio::time::timeout(Duration::from_secs(20), state.wait_for(|s| s.broker))
        .await
        .expect("the device reached the broker")
        .unwrap();
    let since = voicepay_core::clock::Stopwatch::start();
    tokio::time::timeout(limit, state.wait_for(|s| s.gateway == gateway))
        .await
        .unwrap_or_else(|_| panic!("the device did not see the gateway {gateway} within {limit:?}"))
        .unwrap();
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_gateway_status_replaced_by_junk_or_deleted_leaves_devices_seeing_an_online_gateway_within_one_heartbeat()
 {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let pair = Pair::new(&url, &Limits::default());
    let heartbeat = Duration::from_secs(2);
    let (stop_gateway, gateway) = pair.serve_gateway_beating(&url, heartbeat);
    let mut link = device_link(&pair, &url);
    gateway_seen(&link, true, Duration::from_secs(30)).await;
    link.close(protocol::DEFAULT_PREFIX, &pair.device_id).await;
    let topic = topics::gateway_status(protocol::DEFAULT_PREFIX);
    let attacker = client(broker.port, "attacker").await;
    // Junk in its place, then nothing at all (an empty retained message
    // deletes it): a device that connects then still sees the gateway.
    for replacement in [b"{\"status\":\"online\"}".to_vec(), Vec::new()] {
        attacker
            .publish(&topic, QoS::AtLeastOnce, true, replacement)
            .await
            .unwrap();
        let mut link = device_link(&pair, &url);
        let took = gateway_seen(&link, true, heartbeat + Duration::from_millis(1_500)).await;
        eprintln!("online seen {took:?} after connecting");
        link.close(protocol::DEFAULT_PREFIX, &pair.device_id).await;
    }
    stop_gateway.cancel();
    gateway.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_with_its_clock_an_hour_behind_is_seen_online_within_one_heartbeat() {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let pair = Pair::new(&url, &Limits::default());
    let hour = 3_600_000;
    let topic = topics::gateway_status(protocol::DEFAULT_PREFIX);
    let mut link = device_link(&pair, &url);
    // Its first run, an hour ahead of the clock it restarts with: its
    // session on its disk, its "online" and then its will on the broker.
    {
        let first = pair.open_gateway_beating(Duration::from_secs(10));
        let ahead = now_ms() + hour;
        let session = first.next_session(ahead).unwrap();
        let said = client(broker.port, "first-run").await;
        let online = first
            .seal_status(&voicepay_core::protocol::GatewayStatus::heartbeat(
                ahead, session, 1,
            ))
            .unwrap();
        said.publish(&topic, QoS::AtLeastOnce, true, online)
            .await
            .unwrap();
        gateway_seen(&link, true, Duration::from_secs(30)).await;
        let will = first
            .seal_status(&voicepay_core::protocol::GatewayStatus::new(
                false, ahead, session,
            ))
            .unwrap();
        said.publish(&topic, QoS::AtLeastOnce, true, will)
            .await
            .unwrap();
        gateway_seen(&link, false, Duration::from_secs(30)).await;
    }
    // Restarted, its clock an hour behind what it said.
    let heartbeat = Duration::from_secs(2);
    let (stop_gateway, gateway) = pair.serve_gateway_beating(&url, heartbeat);
    let took = gateway_seen(&link, true, Duration::from_secs(20) + heartbeat).await;
    eprintln!("the restarted gateway seen online after {took:?}");
    link.close(protocol::DEFAULT_PREFIX, &pair.device_id).await;
    stop_gateway.cancel();
    gateway.await.unwrap();
}

/// The next payment the daemon sends: whether it went offline, and the
/// gateway's answer.
async fn pay_one(device: &mut Typed, text: &str) -> (bool, ResponseStatus) {
    device.say(text).await;
    let offline = device
        .next(|event| match event {
            Event::Sent { offline, .. } => Some(*offline),
            _ => None,
        })
        .await;
    let status = device
        .next(|event| match event {
            Event::Answer { status, .. } => Some(*status),
            _ => None,
        })
        .await;
    (offline, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_message_retained_or_not_on_any_topic_either_side_reads_takes_neither_offline()
 {
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let pair = Pair::new(
        &url,
        &Limits {
            auto_pay: Money::new(1_000, Currency::CNY),
            ..Limits::default()
        },
    );
    let prefix = protocol::DEFAULT_PREFIX;
    let id = &pair.device_id;
    let every_topic_read = [
        topics::gateway_status(prefix),
        topics::requests(prefix, id),
        topics::requests(prefix, "stranger"),
        topics::responses(prefix, id),
        topics::tasks(prefix, id),
        topics::driving(prefix, id),
        topics::push_to_talk(prefix, id),
    ];
    let huge = vec![b'{'; 5 * 1024 * 1024];
    let attacker = client(broker.port, "attacker").await;
    for topic in &every_topic_read {
        attacker
            .publish(topic, QoS::AtLeastOnce, true, huge.clone())
            .await
            .unwrap();
    }
    // The broker holds them before either side connects.
    let spy = Spy::start(broker.port).await;
    spy.wait_for("the retained giants", |topic, payload| {
        topic.ends_with("/ptt") && payload.len() == huge.len()
    })
    .await;
    let (stop_gateway, gateway) = pair.serve_gateway(&url);
    let mut profile = embedded_profile();
    profile.wake.ptt_key = Some(SigningKey::generate().unwrap().public_key().to_base64url());
    let mut device = device(&pair, profile, Arc::new(Gate::open()));
    let (offline, status) = pay_one(&mut device, "Pay 1 yuan to Heytea.").await;
    assert!(
        !offline,
        "the device reached the gateway past the retained giants"
    );
    assert_eq!(status, ResponseStatus::Approved);
    // And live, while both are connected.
    for topic in &every_topic_read {
        attacker
            .publish(topic, QoS::AtLeastOnce, false, huge.clone())
            .await
            .unwrap();
    }
    spy.wait_for("the live giants", |topic, payload| {
        topic.ends_with("/ptt") && payload.len() == huge.len() && !topic.is_empty()
    })
    .await;
    let (offline, status) = pay_one(&mut device, "Pay 2 yuan to Heytea.").await;
    assert!(!offline, "the device still sees the gateway");
    assert_eq!(status, ResponseStatus::Approved);
    device.stop_within(Duration::from_secs(5)).await;
    stop_gateway.cancel();
    gateway.await.unwrap();
    assert_eq!(pair.ledger().len(), 2, "both paid, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_many_devices_on_a_default_mosquitto_is_answered_and_charged_once_each() {
    const DEVICES: usize = 10;
    const EACH: usize = 300;
    // The resends show in the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("voicepay_device::daemon=info")
        .with_test_writer()
        .try_init();
    let broker = Broker::start();
    let url: BrokerUrl = broker.url().parse().unwrap();
    let pairs: Vec<Pair> = (0..DEVICES)
        .map(|_| Pair::new(&url, &Limits::default()))
        .collect();
    // One gateway: every device enrolled with the first pair's.
    let gateway_home = &pairs[0];
    let gateway_key = gateway_home.gateway_public;
    {
        let gateway = gateway_home.open_gateway_beating(Duration::from_secs(10));
        for pair in &pairs[1..] {
            let key = identity::DeviceIdentity::load(&pair.device_dir)
                .unwrap()
                .key;
            gateway.enroll(&pair.device_id, &key.public_key()).unwrap();
            identity::trust_gateway(&pair.device_dir, &gateway_key).unwrap();
        }
    }
    // Each device's outbox: payments made offline, durable, never sent.
    for pair in &pairs {
        fill_outbox(&pair.device_dir, gateway_key, EACH, "Burst");
    }
    let (stop_gateway, gateway) = gateway_home.serve_gateway(&url);
    // All at once: each device sends its whole outbox when it sees the
    // gateway, far more than the 1,000 the broker queues for the gateway.
    let clock = voicepay_core::clock::Stopwatch::start();
    let daemons: Vec<_> = pairs
        .iter()
        .map(|pair| {
            let mut config =
                DaemonConfig::new(embedded_profile(), pair.device_dir.clone(), url.clone());
            config.connect_wait = Duration::from_secs(30);
            config.drain_wait = Duration::from_secs(600);
            // No input: it sends its outbox and waits for every answer.
            let (intake, source) = Source::channel(1);
            drop(intake);
            tokio::spawn(daemon::run(
                config,
                source,
                Box::new(voicepay_device::feedback::Quiet),
                CancellationToken::new(),
            ))
        })
        .collect();
    for daemon in daemons {
        tokio::time::timeout(Duration::from_secs(600), daemon)
            .await
            .expect("every device drained its outbox")
            .unwrap()
            .unwrap();
    }
    let took = clock.elapsed();
    stop_gateway.cancel();
    gateway.await.unwrap();
    for pair in &pairs {
        let store = pair.store().unwrap();
        assert!(store.outbox().unwrap().is_empty(), "every request answered");
        let paid = store
            .history()
            .unwrap()
            .iter()
            .filter(|e| matches!(e.event, voicepay_device::store::HistoryEvent::Paid { .. }))
            .count();
        assert_eq!(paid, EACH, "every payment settled on the device");
    }
    let ledger = gateway_home.ledger();
    let charged: std::collections::HashSet<_> = ledger.iter().map(|e| e.request_id).collect();
    assert_eq!(charged.len(), ledger.len(), "a request was charged twice");
    assert_eq!(ledger.len(), DEVICES * EACH, "every request charged once");
    eprintln!(
        "burst: {} requests from {DEVICES} devices at once on a default mosquitto, all answered and charged once in {took:?}",
        DEVICES * EACH
    );
}
