//! The daemon as a pipeline, in-process: a real mosquitto, the real gateway, sled and signatures, fed typed utterances through its source.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use util::*;
use voicepay::daemon::{self, DaemonConfig, DaemonError};
use voicepay::feedback::{Event, Feedback};
use voicepay::gateway::{self, Gateway, GatewayConfig};
use voicepay::identity;
use voicepay::keys::SigningKey;
use voicepay::money::{Currency, Money};
use voicepay::policy::Limits;
use voicepay::profile::DeviceProfile;
use voicepay::protocol::{self, GatewayStatus, ResponseStatus, topics};
use voicepay::recognizer::{Heard, Intake, Source};
use voicepay::store::{Store, StoreConfig};

/// Hands every event to the test.
struct Recorder(mpsc::UnboundedSender<Event>);

impl Feedback for Recorder {
    fn event(&mut self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}

/// A broker, a paired device and gateway (keys on disk), nothing running yet.
struct Installation {
    broker: Broker,
    device_dir: tempfile::TempDir,
    gateway_dir: tempfile::TempDir,
    prefix: String,
}

impl Installation {
    fn new(prefix: &str) -> Installation {
        let broker = Broker::start();
        let device_dir = tempfile::tempdir().unwrap();
        let gateway_dir = tempfile::tempdir().unwrap();
        let gateway_key = SigningKey::create_file(&gateway_dir.path().join("gateway.key")).unwrap();
        let device_key = identity::init_device_key(device_dir.path()).unwrap();
        identity::trust_gateway(device_dir.path(), &gateway_key.public_key()).unwrap();
        let device_public = device_key.public_key();
        let device_id = protocol::device_id_for(&device_public);
        Gateway::open(self_config(gateway_dir.path(), prefix), gateway_key)
            .unwrap()
            .enroll(&device_id, &device_public)
            .unwrap();
        Installation {
            broker,
            device_dir,
            gateway_dir,
            prefix: prefix.to_owned(),
        }
    }

    fn set_limits(&self, auto_pay_minor: i64) {
        let store = self.store();
        store
            .set_limits(&Limits {
                auto_pay: Money::new(auto_pay_minor, Currency::CNY),
                ..Limits::default()
            })
            .unwrap();
    }

    fn store(&self) -> Store {
        Store::open(&StoreConfig::new(self.device_dir.path().join("store"))).unwrap()
    }

    /// The reference gateway, serving until the returned sender is dropped.
    fn start_gateway(&self) -> tokio::sync::oneshot::Sender<()> {
        let config = self_config(self.gateway_dir.path(), &self.prefix);
        let key = gateway::load_key(&config).unwrap();
        let gateway = Gateway::open(config, key).unwrap();
        let broker = self.broker.url().parse().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            gateway::run(gateway, &broker, shutdown).await.unwrap();
        });
        stop
    }

    /// Plays a gateway that says it is online and never answers.
    async fn fake_a_silent_gateway(&self) {
        let topic = topics::gateway_status(&self.prefix);
        let options = rumqttc::MqttOptions::new("silent-gateway", "127.0.0.1", self.broker.port);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        let key = gateway::load_key(&self_config(self.gateway_dir.path(), &self.prefix)).unwrap();
        let online = GatewayStatus::new(true, voicepay::clock::now_ms())
            .seal(&key)
            .unwrap();
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, online)
            .await
            .unwrap();
        // Until the broker has taken it.
        while !matches!(
            eventloop.poll().await.unwrap(),
            rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))
        ) {}
        client.disconnect().await.unwrap();
    }

    /// The daemon on this installation, fed from the returned intake.
    fn start_daemon(
        &self,
        profile: DeviceProfile,
    ) -> (
        Intake,
        mpsc::UnboundedReceiver<Event>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), DaemonError>>,
    ) {
        self.start_daemon_waiting(profile, Duration::from_secs(10))
    }

    /// The daemon, waiting at most `connect_wait` for the gateway first.
    fn start_daemon_waiting(
        &self,
        profile: DeviceProfile,
        connect_wait: Duration,
    ) -> (
        Intake,
        mpsc::UnboundedReceiver<Event>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), DaemonError>>,
    ) {
        let mut profile = profile;
        profile.mqtt.prefix = self.prefix.clone();
        let broker = self.broker.url().parse().unwrap();
        let mut config = DaemonConfig::new(profile, self.device_dir.path().to_owned(), broker);
        config.connect_wait = connect_wait;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (intake, source) = Source::channel(4);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(daemon::run(
            config,
            source,
            Box::new(Recorder(events_tx)),
            shutdown.clone(),
        ));
        (intake, events, shutdown, task)
    }
}

fn self_config(dir: &std::path::Path, prefix: &str) -> GatewayConfig {
    let mut config = GatewayConfig::new(dir.to_owned());
    config.prefix = prefix.to_owned();
    config
}

async fn say(intake: &Intake, text: &str) {
    let context = DeviceProfile::embedded().unwrap().parse_context();
    intake.arriving();
    assert!(intake.send(Heard::typed("typed", text, &context)).await);
}

/// The next event that `pick` accepts, skipping the others; at most 20 s.
async fn next_where<T>(
    events: &mut mpsc::UnboundedReceiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = timeout(Duration::from_secs(20), async {
        while let Some(event) = events.recv().await {
            if let Some(found) = pick(&event) {
                return Some(found);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .expect("the awaited event came within 20 s")
}

/// Whether the next payment sent went out offline.
async fn sent_offline(events: &mut mpsc::UnboundedReceiver<Event>) -> bool {
    next_where(events, |e| match e {
        Event::Sent { offline, .. } => Some(*offline),
        _ => None,
    })
    .await
}

/// The status of the next verified answer.
async fn answer_status(events: &mut mpsc::UnboundedReceiver<Event>) -> ResponseStatus {
    next_where(events, |e| match e {
        Event::Answer { status, .. } => Some(*status),
        _ => None,
    })
    .await
}

fn said(event: &Event) -> Option<String> {
    match event {
        Event::Say { text } => Some(text.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_waiting_for_its_answer_does_not_hold_up_the_next_utterance() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000);
    setup.fake_a_silent_gateway().await;
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());

    say(&intake, "Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut events).await;
    assert!(!offline, "sent to a gateway that says it is online");
    // The gateway never answers; the next question is answered anyway.
    say(&intake, "How much did I spend today?").await;
    let text = next_where(&mut events, |e| said(e).filter(|t| t.starts_with("You"))).await;
    assert_eq!(text, "You have spent nothing today.");

    // Shutdown with the payment unanswered: the daemon stops at once...
    shutdown.cancel();
    timeout(Duration::from_secs(10), daemon)
        .await
        .expect("the daemon stops when cancelled")
        .unwrap()
        .unwrap();
    // ...and the payment waits in the outbox for the next start.
    let outbox = setup.store().outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].payee, "Heytea");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_waits_for_an_answer_still_being_transcribed_and_closes_on_silence() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    let _gateway = setup.start_gateway();
    let mut profile = DeviceProfile::embedded().unwrap();
    profile.payments.confirm_window = Duration::from_millis(800);
    let context = profile.parse_context();
    let (intake, mut events, shutdown, daemon) = setup.start_daemon(profile);

    say(&intake, "Pay 50 yuan to Heytea.").await;
    let question = next_where(&mut events, said).await;
    assert_eq!(question, "Pay 50 yuan to Heytea? Say confirm or cancel.");
    // "Confirm" was spoken in time, but its transcription outlasts the window.
    let confirm = Heard::typed("typed", "Confirm.", &context);
    intake.arriving();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(intake.send(confirm).await);
    let status = next_where(&mut events, |e| match e {
        Event::Answer { status, .. } => Some(*status),
        Event::Say { text } if text.starts_with("Payment cancelled") => {
            panic!("dropped while the answer was on its way: {text}")
        }
        _ => None,
    })
    .await;
    assert_eq!(status, ResponseStatus::Approved);

    // Silence past the window drops the payment; a late "confirm" pays nothing.
    say(&intake, "Pay 50 yuan to Heytea.").await;
    next_where(&mut events, |e| {
        said(e).filter(|t| t.ends_with("confirm or cancel."))
    })
    .await;
    let dropped = next_where(&mut events, said).await;
    assert_eq!(dropped, "Payment cancelled: no answer in time.");
    say(&intake, "Confirm.").await;
    let late = next_where(&mut events, |e| match e {
        Event::Sent { .. } => panic!("a late confirm paid"),
        other => said(other),
    })
    .await;
    assert_eq!(late, "There is nothing to confirm.");
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_prefix_comes_from_the_profile_and_the_gateway_flag() {
    let setup = Installation::new("acme/pay");
    setup.set_limits(1_000);
    let _gateway = setup.start_gateway();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());
    say(&intake, "Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut events).await;
    let status = answer_status(&mut events).await;
    assert!(!offline, "the gateway on acme/pay was seen online");
    assert_eq!(status, ResponseStatus::Approved);
    drop(intake);
    daemon.await.unwrap().unwrap();
    drop(shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_in_another_currency_than_the_limits_asks_for_the_code() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000); // auto-pay 10 yuan
    let _gateway = setup.start_gateway();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());
    say(&intake, "Pay 5 dollars to Heytea.").await;
    let question = next_where(&mut events, |e| match e {
        Event::Sent { .. } => panic!("paid without the code"),
        other => said(other),
    })
    .await;
    assert!(
        question.starts_with("Pay 5 dollars to Heytea? Say confirm and the code"),
        "{question}"
    );
    say(&intake, "Confirm.").await;
    let again = next_where(&mut events, |e| match e {
        Event::Sent { .. } => panic!("a bare confirm paid"),
        other => said(other),
    })
    .await;
    assert!(again.starts_with("Sorry?"), "{again}");
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_age_counts_from_the_last_contact_with_the_gateway() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000);
    let gateway = setup.start_gateway();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());
    // Seen online (a payment answered), then the gateway goes away.
    say(&intake, "Pay 1 yuan to Heytea.").await;
    next_where(&mut events, |e| {
        matches!(e, Event::Answer { .. }).then_some(())
    })
    .await;
    let before = voicepay::clock::now_ms();
    drop(gateway);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    say(&intake, "Pay 2 yuan to Heytea.").await;
    let offline = sent_offline(&mut events).await;
    assert!(offline);
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let since = setup.store().offline_counters().unwrap().since_ms.unwrap();
    let paid_at = setup.store().outbox().unwrap()[0].created_at;
    assert!(since >= before, "{since} {before}");
    assert!(
        since + 1_000 <= paid_at,
        "counted from the gateway going away ({since}), not the payment ({paid_at})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_status_not_signed_by_the_gateway_is_not_believed_and_a_flood_of_them_costs_nothing()
 {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000);
    // An attacker says "online" in plain text, then signed by another key
    // (retained), then floods the topic.
    let topic = topics::gateway_status(&setup.prefix);
    let options = rumqttc::MqttOptions::new("attacker", "127.0.0.1", setup.broker.port);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
    let stranger = SigningKey::generate().unwrap();
    let forged = GatewayStatus::new(true, u64::MAX).seal(&stranger).unwrap();
    let qos = rumqttc::QoS::AtLeastOnce;
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client.publish(&topic, qos, true, "online").await.unwrap();
    client.publish(&topic, qos, true, forged).await.unwrap();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon_waiting(DeviceProfile::embedded().unwrap(), Duration::from_secs(2));
    for i in 0..5_000u32 {
        let junk = if i % 2 == 0 {
            i.to_be_bytes().to_vec()
        } else {
            b"online".to_vec()
        };
        client
            .publish(&topic, rumqttc::QoS::AtMostOnce, false, junk)
            .await
            .unwrap();
    }
    say(&intake, "Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut events).await;
    assert!(offline, "the device did not believe the forged statuses");
    // The real gateway appears: its signed status is believed and the
    // payment made offline is paid.
    let _gateway = setup.start_gateway();
    let status = answer_status(&mut events).await;
    assert_eq!(status, ResponseStatus::Approved);
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_retained_messages_on_every_topic_we_read_break_no_connection() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000);
    let mut options = rumqttc::MqttOptions::new("attacker", "127.0.0.1", setup.broker.port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let huge = vec![b'{'; 300 * 1024];
    let device_id = {
        let key = identity::load_device_key(setup.device_dir.path()).unwrap();
        protocol::device_id_for(&key.public_key())
    };
    for topic in [
        topics::gateway_status(&setup.prefix),
        topics::requests(&setup.prefix, &device_id),
        topics::requests(&setup.prefix, "stranger"),
        topics::responses(&setup.prefix, &device_id),
    ] {
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, huge.clone())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both sides read past them and pay as usual, online.
    let _gateway = setup.start_gateway();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());
    say(&intake, "Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut events).await;
    assert!(!offline, "the device reached the gateway");
    let status = answer_status(&mut events).await;
    assert_eq!(status, ResponseStatus::Approved);
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_online_played_back_again_and_again_republishes_nothing() {
    let setup = Installation::new(protocol::DEFAULT_PREFIX);
    setup.set_limits(1_000);
    let key = gateway::load_key(&self_config(setup.gateway_dir.path(), &setup.prefix)).unwrap();
    let online = GatewayStatus::new(true, voicepay::clock::now_ms())
        .seal(&key)
        .unwrap();
    let status_topic = topics::gateway_status(&setup.prefix);
    // An observer counts what the device publishes on its requests topic.
    let (observer, mut observed) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("observer", "127.0.0.1", setup.broker.port),
        100,
    );
    let device_id = {
        let key = identity::load_device_key(setup.device_dir.path()).unwrap();
        protocol::device_id_for(&key.public_key())
    };
    observer
        .subscribe(
            topics::requests(&setup.prefix, &device_id),
            rumqttc::QoS::AtMostOnce,
        )
        .await
        .unwrap();
    let (count_tx, mut counts) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while let Ok(event) = observed.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) = event {
                let _ = count_tx.send(());
            }
        }
    });
    observer
        .publish(
            &status_topic,
            rumqttc::QoS::AtLeastOnce,
            true,
            online.clone(),
        )
        .await
        .unwrap();
    let (intake, mut events, shutdown, daemon) =
        setup.start_daemon(DeviceProfile::embedded().unwrap());
    say(&intake, "Pay 1 yuan to Heytea.").await;
    next_where(&mut events, |e| {
        matches!(e, Event::Sent { .. }).then_some(())
    })
    .await;
    // The captured "online", played back 200 times.
    for _ in 0..200 {
        observer
            .publish(
                &status_topic,
                rumqttc::QoS::AtMostOnce,
                false,
                online.clone(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut seen = 0;
    while counts.try_recv().is_ok() {
        seen += 1;
    }
    assert!(
        (1..=3).contains(&seen),
        "the request went out {seen} times for 200 replays"
    );
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}
