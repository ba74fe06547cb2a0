//! The daemon as a pipeline, in-process: a real mosquitto, the real gateway, sled and signatures, fed typed utterances through its source.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;
use util::*;
use uuid::Uuid;
use voicepay_core::control;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Limits;
use voicepay_core::protocol::{self, GatewayStatus, ResponseStatus, topics};
use voicepay_device::daemon::DaemonConfig;
use voicepay_device::feedback::Event;
use voicepay_device::identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Heard;
use voicepay_device::store::Store;
use voicepay_tools::rig::{Installation, RunningGateway, Typed, WAIT, until};

/// A real mosquitto and an installation on it (`voicepay_tools::rig`), nothing running yet.
struct Setup {
    home: Installation,
    broker: Broker,
    /// The device's data, when on a disk of the test's own.
    _device_dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Setup {
    type Target = Installation;
    fn deref(&self) -> &Installation {
        &self.home
    }
}

impl Setup {
    fn new(prefix: &str) -> Setup {
        let broker = Broker::start();
        let home = Installation::new(broker.url().parse().unwrap(), prefix).unwrap();
        Setup {
            home,
            broker,
            _device_dir: None,
        }
    }

    /// With the device's data (keys, store) in `device_dir`.
    fn with_device_dir(prefix: &str, device_dir: tempfile::TempDir) -> Setup {
        let broker = Broker::start();
        let url = broker.url().parse().unwrap();
        let home = Installation::with_device_dir(url, prefix, device_dir.path()).unwrap();
        Setup {
            home,
            broker,
            _device_dir: Some(device_dir),
        }
    }

    fn auto_pay(&self, minor: i64) {
        self.home
            .set_limits(&Limits {
                auto_pay: Money::new(minor, Currency::CNY),
                ..Limits::default()
            })
            .unwrap();
    }

    fn store(&self) -> Store {
        self.home.store().unwrap()
    }

    fn start_gateway(&self) -> RunningGateway {
        self.home.start_gateway().unwrap()
    }

    /// The gateway's books, once `gateway` has stopped and let go of them.
    async fn ledger_after(&self, gateway: RunningGateway) -> Vec<voicepay_gateway::LedgerEntry> {
        gateway.stop().await.unwrap();
        self.home.ledger().unwrap()
    }

    /// A client of the test's broker that anyone could run: no key, and
    /// packets up to 1 MiB.
    fn attacker(&self) -> Attacker {
        let mut options = rumqttc::MqttOptions::new("attacker", "127.0.0.1", self.broker.port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (acked, acks) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = event {
                    let _ = acked.send(());
                }
            }
        });
        Attacker { client, acks }
    }

    /// Plays a gateway that says it is online and never answers.
    async fn fake_a_silent_gateway(&self) {
        let online = GatewayStatus::new(true, voicepay_core::clock::now_ms(), 1)
            .seal(&self.gateway_key().unwrap())
            .unwrap();
        let topic = topics::gateway_status(&self.prefix);
        self.attacker().publish(&topic, true, online).await;
    }

    /// The daemon on this installation, fed typed text.
    fn start_daemon(&self, profile: DeviceProfile) -> Typed {
        self.start_daemon_waiting(profile, Duration::from_secs(10))
    }

    /// The daemon, waiting at most `connect_wait` for the gateway first.
    fn start_daemon_waiting(&self, profile: DeviceProfile, connect_wait: Duration) -> Typed {
        self.start_daemon_with(profile, connect_wait, |_| {})
    }

    /// The daemon, its config adjusted by `adjust` (the microphone's gate, say).
    fn start_daemon_with(
        &self,
        profile: DeviceProfile,
        connect_wait: Duration,
        adjust: impl FnOnce(&mut DaemonConfig),
    ) -> Typed {
        let mut config = self.daemon_config(profile);
        config.connect_wait = connect_wait;
        adjust(&mut config);
        self.typed(config)
    }
}

/// A client of the broker publishing what the test chooses.
struct Attacker {
    client: rumqttc::AsyncClient,
    acks: mpsc::UnboundedReceiver<()>,
}

impl Attacker {
    /// Publishes at least once and waits until the broker has taken it (a
    /// retained message is then there for whoever subscribes next).
    async fn publish(&mut self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
        timeout(Duration::from_secs(20), self.acks.recv())
            .await
            .expect("the broker took the message within 20 s")
            .expect("the attacker's connection is up");
    }
}

/// Whether the next payment sent went out offline.
async fn sent_offline(d: &mut Typed) -> bool {
    d.next(|e| match e {
        Event::Sent { offline, .. } => Some(*offline),
        _ => None,
    })
    .await
}

/// The status of the next verified answer.
async fn answer_status(d: &mut Typed) -> ResponseStatus {
    d.next(|e| match e {
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
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    setup.fake_a_silent_gateway().await;
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());

    d.say("Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    assert!(!offline, "sent to a gateway that says it is online");
    // The gateway never answers; the next question is answered anyway.
    d.say("How much did I spend today?").await;
    let text = d.next(|e| said(e).filter(|t| t.starts_with("You"))).await;
    assert_eq!(text, "You have spent nothing today.");

    // Shutdown with the payment unanswered: the daemon stops at once...
    d.stop_within(Duration::from_secs(10)).await;
    // ...and the payment waits in the outbox for the next start.
    let outbox = setup.store().outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].payee, "Heytea");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_waits_for_an_answer_still_being_transcribed_and_closes_on_silence() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    let _gateway = setup.start_gateway();
    let mut profile = DeviceProfile::embedded().unwrap();
    profile.payments.confirm_window = Duration::from_millis(800);
    let mut d = setup.start_daemon(profile);

    d.say("Pay 50 yuan to Heytea.").await;
    let question = d.next(said).await;
    assert_eq!(question, "Pay 50 yuan to Heytea? Say confirm or cancel.");
    // "Confirm" was spoken in time, but its transcription outlasts the window.
    let confirm = Heard::typed("typed", "Confirm.", &d.context);
    d.intake.arriving();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(d.intake.send(confirm).await);
    let status = d
        .next(|e| match e {
            Event::Answer { status, .. } => Some(*status),
            Event::Say { text } if text.starts_with("Payment cancelled") => {
                panic!("dropped while the answer was on its way: {text}")
            }
            _ => None,
        })
        .await;
    assert_eq!(status, ResponseStatus::Approved);

    // Silence past the window drops the payment; a late "confirm" pays nothing.
    d.say("Pay 50 yuan to Heytea.").await;
    d.next(|e| said(e).filter(|t| t.ends_with("confirm or cancel.")))
        .await;
    let dropped = d.next(said).await;
    assert_eq!(dropped, "Payment cancelled: no answer in time.");
    d.say("Confirm.").await;
    let late = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("a late confirm paid"),
            other => said(other),
        })
        .await;
    assert_eq!(late, "There is nothing to confirm.");
    d.stop_within(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_counts_from_the_end_of_the_spoken_question_not_from_when_it_was_worded() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    let _gateway = setup.start_gateway();
    let mut profile = DeviceProfile::embedded().unwrap();
    profile.payments.confirm_window = Duration::from_millis(800);
    let gate = std::sync::Arc::new(voicepay_device::audio::gate::Gate::open());
    let shared = gate.clone();
    let mut d = setup.start_daemon_with(profile, Duration::from_secs(10), move |config| {
        config.gate = shared
    });

    d.say("Pay 50 yuan to Heytea.").await;
    let question = d.next(said).await;
    assert_eq!(question, "Pay 50 yuan to Heytea? Say confirm or cancel.");
    // The voice takes twice the window to say it (as the speaker would,
    // the gate shut meanwhile); the user answers just after it ends.
    let speaking = gate.speak();
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    drop(speaking);
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.say("Confirm.").await;
    let status = d
        .next(|e| match e {
            Event::Answer { status, .. } => Some(*status),
            Event::Say { text } if text.starts_with("Payment cancelled") => {
                panic!("the window closed while the question was still being said: {text}")
            }
            _ => None,
        })
        .await;
    assert_eq!(status, ResponseStatus::Approved);
    d.stop_within(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_prefix_comes_from_the_profile_and_the_gateway_flag() {
    let setup = Setup::new("acme/pay");
    setup.auto_pay(1_000);
    let _gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    d.say("Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    let status = answer_status(&mut d).await;
    assert!(!offline, "the gateway on acme/pay was seen online");
    assert_eq!(status, ResponseStatus::Approved);
    drop(d.intake);
    d.task.await.unwrap().unwrap();
    drop(d.shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_in_another_currency_than_the_limits_asks_for_the_code() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000); // auto-pay 10 yuan
    let _gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    d.say("Pay 5 dollars to Heytea.").await;
    let question = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("paid without the code"),
            other => said(other),
        })
        .await;
    assert!(
        question.starts_with("Pay 5 dollars to Heytea? Say confirm and the code"),
        "{question}"
    );
    d.say("Confirm.").await;
    let again = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("a bare confirm paid"),
            other => said(other),
        })
        .await;
    assert!(again.starts_with("Sorry?"), "{again}");
    d.stop_within(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_age_counts_from_the_last_contact_with_the_gateway() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    let gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    // Seen online (a payment answered), then the gateway goes away.
    d.say("Pay 1 yuan to Heytea.").await;
    d.next(|e| matches!(e, Event::Answer { .. }).then_some(()))
        .await;
    let before = voicepay_core::clock::now_ms();
    gateway.stop().await.unwrap();
    let noticed = until(&mut d.status, WAIT, |s| s.link.broker && !s.link.gateway).await;
    assert!(noticed, "the device noticed the gateway leave");
    // Time is the subject: a second on the wall clock the store counts in.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    d.say("Pay 2 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    assert!(offline);
    d.stop_within(WAIT).await;
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
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    // An attacker says "online" in plain text, then signed by another key
    // (retained), then floods the topic.
    let topic = topics::gateway_status(&setup.prefix);
    let mut client = setup.attacker();
    let stranger = SigningKey::generate().unwrap();
    let forged = GatewayStatus::new(true, u64::MAX, 1)
        .seal(&stranger)
        .unwrap();
    client.publish(&topic, true, "online").await;
    client.publish(&topic, true, forged).await;
    let mut d =
        setup.start_daemon_waiting(DeviceProfile::embedded().unwrap(), Duration::from_secs(2));
    for i in 0..5_000u32 {
        let junk = if i % 2 == 0 {
            i.to_be_bytes().to_vec()
        } else {
            b"online".to_vec()
        };
        client
            .client
            .publish(&topic, rumqttc::QoS::AtMostOnce, false, junk)
            .await
            .unwrap();
    }
    d.say("Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    assert!(offline, "the device did not believe the forged statuses");
    // The real gateway appears: its signed status is believed and the
    // payment made offline is paid.
    let _gateway = setup.start_gateway();
    let status = answer_status(&mut d).await;
    assert_eq!(status, ResponseStatus::Approved);
    d.stop_within(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_retained_messages_on_every_topic_we_read_break_no_connection() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    let mut client = setup.attacker();
    let huge = vec![b'{'; 300 * 1024];
    let device_id = &setup.device_id;
    for topic in [
        topics::gateway_status(&setup.prefix),
        topics::requests(&setup.prefix, device_id),
        topics::requests(&setup.prefix, "stranger"),
        topics::responses(&setup.prefix, device_id),
        topics::driving(&setup.prefix, device_id),
    ] {
        client.publish(&topic, true, huge.clone()).await;
    }
    // Both sides read past them and pay as usual, online.
    let _gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    d.say("Pay 1 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    assert!(!offline, "the device reached the gateway");
    let status = answer_status(&mut d).await;
    assert_eq!(status, ResponseStatus::Approved);
    d.stop_within(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_statuses_played_back_again_and_again_republish_nothing() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    let key = setup.gateway_key().unwrap();
    let online = GatewayStatus::new(true, voicepay_core::clock::now_ms(), 1)
        .seal(&key)
        .unwrap();
    let status_topic = topics::gateway_status(&setup.prefix);
    // An observer counts what the device publishes on its requests topic.
    let (observer, mut observed) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("observer", "127.0.0.1", setup.broker.port),
        100,
    );
    observer
        .subscribe(
            topics::requests(&setup.prefix, &setup.device_id),
            rumqttc::QoS::AtMostOnce,
        )
        .await
        .unwrap();
    let (count_tx, mut counts) = mpsc::unbounded_channel::<()>();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(event) = observed.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) => {
                    let _ = count_tx.send(());
                }
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    subscribed_tx.take().map(|tx| tx.send(()));
                }
                _ => {}
            }
        }
    });
    // Counting before the device says anything.
    timeout(Duration::from_secs(20), subscribed)
        .await
        .expect("the observer subscribed within 20 s")
        .unwrap();
    observer
        .publish(
            &status_topic,
            rumqttc::QoS::AtLeastOnce,
            true,
            online.clone(),
        )
        .await
        .unwrap();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    d.say("Pay 1 yuan to Heytea.").await;
    d.next(|e| matches!(e, Event::Sent { .. }).then_some(()))
        .await;
    // The captured "online", played back 200 times; then it and the same
    // session's "offline" (its will, once said) in turn, 100 times.
    let will = GatewayStatus::new(false, voicepay_core::clock::now_ms(), 1)
        .seal(&key)
        .unwrap();
    let replays = std::iter::repeat_n(&online, 200)
        .chain(std::iter::repeat_n([&will, &online], 100).flatten());
    for message in replays {
        observer
            .publish(
                &status_topic,
                rumqttc::QoS::AtMostOnce,
                false,
                message.clone(),
            )
            .await
            .unwrap();
    }
    // A count of what did not happen needs a while to watch: 1.5 s after
    // the last replay, whose republishing would take milliseconds.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut seen = 0;
    while counts.try_recv().is_ok() {
        seen += 1;
    }
    assert!(
        (1..=3).contains(&seen),
        "the request went out {seen} times for 400 replays"
    );
    d.stop_within(WAIT).await;
}

/// The daemon with daily limits counted in `zone`.
fn in_zone(zone: &str) -> DeviceProfile {
    let mut profile = DeviceProfile::embedded().unwrap();
    profile.payments.calendar = voicepay_core::clock::Calendar::named(zone).unwrap();
    profile
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_resets_at_midnight_in_the_profiles_time_zone() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup
        .store()
        .set_limits(&Limits {
            auto_pay: Money::new(2_000, Currency::CNY),
            daily: Some(Money::new(1_000, Currency::CNY)),
            payment_code_above: None,
        })
        .unwrap();
    let _gateway = setup.start_gateway();
    // UTC-12 and UTC+14 are 26 hours apart: at every instant their local
    // dates differ, so "today" is another day in each.
    let (west, east) = ("Etc/GMT+12", "Pacific/Kiritimati");
    for (zone, amount, expect_paid) in [(west, 10, true), (east, 10, true), (west, 1, false)] {
        let mut d = setup.start_daemon(in_zone(zone));
        d.say(&format!("Pay {amount} yuan to Heytea.")).await;
        let paid = d
            .next(|e| match e {
                Event::Answer { status, .. } => Some(*status == ResponseStatus::Approved),
                Event::Say { text } if text.contains("daily limit") => Some(false),
                _ => None,
            })
            .await;
        assert_eq!(paid, expect_paid, "{amount} yuan on today's date in {zone}");
        d.stop_within(WAIT).await;
    }
}

/// A real filesystem small enough to fill: a tmpfs mounted for the test
/// (the tests run as root, like the service), unmounted on drop.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let mount = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(mount.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { mount }
    }

    fn dir(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(self.mount.path()).unwrap()
    }

    /// Writes a filler file until the disk says it is full.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.mount.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.mount.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

/// What one payment came to on a failing disk.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Sent to a gateway that is not expected to answer.
    Sent,
    Paid,
    /// Committed, but the disk did not take it: held, not sent.
    Held,
    /// Refused before anything was written.
    NotTaken,
    /// The bank approved it, and the user heard that it could not be recorded.
    AnswerNotRecorded,
    /// Any other error the daemon reported.
    Failed,
}

/// Pays 2 yuan on a disk that may fail; with `answered`, waits for the
/// bank's answer once it is sent, else returns [`Outcome::Sent`].
async fn pay_on_a_failing_disk(d: &mut Typed, sent: &mut usize, answered: bool) -> Outcome {
    d.say("Pay 2 yuan to Heytea.").await;
    d.next(|e| match e {
        Event::Sent { .. } => {
            *sent += 1;
            (!answered).then_some(Outcome::Sent)
        }
        Event::Error { .. } => Some(Outcome::Failed),
        Event::Say { text } if text.starts_with("Paid 2 yuan") => Some(Outcome::Paid),
        Event::Say { text } if text.starts_with("The bank approved 2 yuan to Heytea, but") => {
            Some(Outcome::AnswerNotRecorded)
        }
        Event::Say { text } if text.starts_with("I couldn't save 2 yuan to Heytea") => {
            Some(Outcome::Held)
        }
        Event::Say { text }
            if text.starts_with("Storage is failing") || text.starts_with("I couldn't record") =>
        {
            Some(Outcome::NotTaken)
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_disk_fails_the_user_hears_the_truth_and_a_repeat_cannot_pay_twice() {
    let disk = SmallDisk::mount(16);
    let setup = Setup::with_device_dir(protocol::DEFAULT_PREFIX, disk.dir());
    setup.auto_pay(1_000);
    let gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    let mut sent = 0;
    let first = pay_on_a_failing_disk(&mut d, &mut sent, true).await;
    assert_eq!(first, Outcome::Paid);

    disk.fill();
    // sled first fills the space its files already hold: pay until the
    // disk refuses (a few dozen payments), as a user on a bad day would.
    let mut attempts = 0;
    let failure = loop {
        attempts += 1;
        assert!(attempts < 1_000, "the full disk never refused a write");
        match pay_on_a_failing_disk(&mut d, &mut sent, true).await {
            Outcome::Paid => {}
            other => break other,
        }
    };
    let sent_before = sent;
    eprintln!("the disk refused after {attempts} payments: {failure:?}");
    assert_ne!(failure, Outcome::Failed, "the user was told what happened");
    // The user repeats the payment: nothing more goes out while the disk fails.
    for _ in 0..3 {
        let repeat = pay_on_a_failing_disk(&mut d, &mut sent, true).await;
        assert_eq!(repeat, Outcome::NotTaken, "a repeat on a failed disk");
    }
    assert_eq!(sent, sent_before, "sent a payment the disk did not take");
    d.stop_within(Duration::from_secs(10)).await;

    // The disk is replaced; the daemon starts again and drains its outbox.
    disk.free();
    let d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    drop(d.intake);
    d.task.await.unwrap().unwrap();
    let ledger = setup.ledger_after(gateway).await;

    let store = setup.store();
    let paid_on_device = store
        .history()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, voicepay_device::store::HistoryEvent::Paid { .. }))
        .count();
    assert!(store.outbox().unwrap().is_empty(), "the outbox drained");
    // Each payment sent is charged once; the held one at most once more
    // (if the disk had taken it after all); the repeats never.
    let charged = ledger.len();
    assert!(
        charged == sent_before || charged == sent_before + 1,
        "{charged} charged, {sent_before} sent"
    );
    assert_eq!(
        paid_on_device, charged,
        "the device's history agrees with the ledger"
    );
    let mut ids: Vec<_> = ledger.iter().map(|e| e.request_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), charged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_hostile_message_on_every_topic_is_dropped_and_payments_still_go_through() {
    use voicepay_core::protocol::{Envelope, RequestBuilder};
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(1_000);
    let gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    // One genuine payment, whose request and answer the attacker records.
    d.say("Pay 1 yuan to Heytea.").await;
    let request = d
        .next(|e| match e {
            Event::Sent { envelope, .. } => Some(serde_json::to_vec(envelope).unwrap()),
            _ => None,
        })
        .await;
    let answer = d
        .next(|e| match e {
            Event::Answer { envelope, .. } => Some(serde_json::to_vec(envelope).unwrap()),
            _ => None,
        })
        .await;

    let device_key = identity::load_device_key(&setup.device_dir).unwrap();
    let device_id = protocol::device_id_for(&device_key.public_key());
    let stranger = SigningKey::generate().unwrap();
    let now = voicepay_core::clock::now_ms();
    let yuan = Money::new(100, Currency::CNY);
    let sealed = |request: &voicepay_core::protocol::PaymentRequest, key: &SigningKey| {
        Envelope::seal_json(request, key).unwrap().0.to_bytes()
    };
    // Signed by the device itself, but long expired.
    let expired = sealed(
        &RequestBuilder::new(&device_id, 9_999, yuan, "Heytea", now - 3_600_000)
            .expires_in(60_000)
            .build(),
        &device_key,
    );
    let forged = sealed(
        &RequestBuilder::new(&device_id, 10_000, yuan, "Heytea", now).build(),
        &stranger,
    );
    let unknown_device = sealed(
        &RequestBuilder::new("stranger-1", 1, yuan, "Heytea", now).build(),
        &stranger,
    );
    let forged_answer = {
        let to = voicepay_core::protocol::AnswerTo {
            request_id: Uuid::now_v7(),
            device_id: device_id.clone(),
            request_sha256: "00".repeat(32),
        };
        let response = voicepay_core::protocol::PaymentResponse::approved(&to, "txn".into(), now);
        Envelope::seal_json(&response, &stranger)
            .unwrap()
            .0
            .to_bytes()
    };
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", vec![b'{'; protocol::MAX_MESSAGE_BYTES + 1]),
        ("not UTF-8", b"\xff\xfe\xfd not text".to_vec()),
        ("malformed", b"{\"v\":1,\"kid\":".to_vec()),
        ("deeply nested", nested),
        ("forged", forged),
        ("expired", expired),
        ("forged answer", forged_answer),
        ("replayed request", request),
        ("replayed answer", answer),
    ];
    let mut client = setup.attacker();
    let every_topic_read = [
        topics::requests(&setup.prefix, &device_id),
        topics::requests(&setup.prefix, "stranger-1"),
        topics::responses(&setup.prefix, &device_id),
        topics::gateway_status(&setup.prefix),
    ];
    for topic in &every_topic_read {
        for (_kind, message) in &garbage {
            for retain in [false, true] {
                client.publish(topic, retain, message.clone()).await;
            }
        }
    }
    client
        .publish(
            &topics::requests(&setup.prefix, "stranger-1"),
            false,
            unknown_device,
        )
        .await;
    // The broker took each before the genuine payment below: both sides
    // meet them first.
    // Both sides are still there, online, and pay as usual.
    d.say("Pay 2 yuan to Heytea.").await;
    let offline = sent_offline(&mut d).await;
    assert!(!offline, "the device still sees the gateway");
    let status = answer_status(&mut d).await;
    assert_eq!(status, ResponseStatus::Approved);
    d.stop_within(WAIT).await;
    let ledger = setup.ledger_after(gateway).await;
    let amounts: Vec<i64> = ledger.iter().map(|e| e.amount.minor).collect();
    assert_eq!(amounts, [100, 200], "nothing hostile was charged");
    assert!(setup.store().outbox().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_disk_does_not_take_is_held_unsent_and_no_new_payment_is_taken() {
    let disk = SmallDisk::mount(16);
    let setup = Setup::with_device_dir(protocol::DEFAULT_PREFIX, disk.dir());
    setup.auto_pay(1_000);
    // Online but never answering: only commits write to the disk.
    setup.fake_a_silent_gateway().await;
    // Which of a payment's two durable writes (its number, then the commit)
    // meets the full disk first depends on the request's size; this test is
    // about the commit's, which the larger requests (with their transcripts)
    // meet first. The number's failing first is "I couldn't record" (nothing
    // taken): tested with the rest in the test above.
    let mut profile = DeviceProfile::embedded().unwrap();
    profile.mqtt.transcripts = true;
    let mut d = setup.start_daemon(profile);
    let mut sent = 0;
    // Running (its store open) before the disk fills.
    let first = pay_on_a_failing_disk(&mut d, &mut sent, false).await;
    assert_eq!(first, Outcome::Sent);
    disk.fill();
    let first_failure = loop {
        match pay_on_a_failing_disk(&mut d, &mut sent, false).await {
            Outcome::Sent => assert!(sent < 1_000, "the full disk never refused a write"),
            failure => break failure,
        }
    };
    assert_eq!(first_failure, Outcome::Held, "after {sent} payments");
    for _ in 0..3 {
        let repeat = pay_on_a_failing_disk(&mut d, &mut sent, false).await;
        assert_eq!(repeat, Outcome::NotTaken, "a repeat while it is held");
    }
    d.stop_within(WAIT).await;
    disk.free();
    // What the disk kept: the payments sent, and the held one at most.
    let waiting = setup.store().outbox().unwrap().len();
    assert!(
        waiting == sent || waiting == sent + 1,
        "{waiting} waiting, {sent} sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_outside_the_book_is_asked_about_and_one_added_while_the_daemon_runs_is_paid() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(5_000); // auto-pay 50 yuan
    let gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    // Walmart is in no book: asked about, never paid, however small.
    d.say("Pay 20 yuan to Walmart.").await;
    let question = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("paid a payee outside the book"),
            other => said(other),
        })
        .await;
    assert_eq!(
        question,
        "I don't know Walmart. Who should I pay? Say the name, or cancel."
    );
    // Naming a book entry starts the payment again, read back under the
    // auto-pay limit because the name came from an answer.
    d.say("To Shell, please.").await;
    let read_back = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("paid without a read-back"),
            other => said(other),
        })
        .await;
    assert_eq!(read_back, "Pay 20 yuan to Shell? Say confirm or cancel.");
    d.say("Confirm.").await;
    assert_eq!(answer_status(&mut d).await, ResponseStatus::Approved);

    // Added through the control socket while the daemon runs: heard at once.
    let data_dir = setup.device_dir.clone();
    let add = control::Request::PayeesAdd {
        name: "Walmart".into(),
        aliases: vec!["Wally World".into()],
    };
    let reply = tokio::task::spawn_blocking(move || control::call(&data_dir, &add))
        .await
        .unwrap()
        .unwrap()
        .expect("the daemon answers on its control socket");
    assert!(reply.ok, "{reply:?}");
    d.say("Pay 20 yuan to Wally World.").await;
    let paying = d
        .next(|e| said(e).filter(|s| s.starts_with("Paying")))
        .await;
    assert_eq!(
        paying,
        "Paying 20 yuan to Walmart: it is within your auto-pay limit."
    );
    assert_eq!(answer_status(&mut d).await, ResponseStatus::Approved);
    d.stop_within(WAIT).await;
    let payees: Vec<String> = setup
        .ledger_after(gateway)
        .await
        .iter()
        .map(|e| e.payee.clone())
        .collect();
    assert_eq!(payees, ["Shell", "Walmart"]);
}

/// What the device says next; nothing may be sent before it.
async fn next_said(d: &mut Typed) -> String {
    d.next(|e| match e {
        Event::Sent { .. } => panic!("paid before a read-back"),
        other => said(other),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_said_without_its_amount_is_asked_for_it_read_back_and_paid() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    setup.auto_pay(5_000); // auto-pay 50 yuan: still read back, it took two utterances
    let gateway = setup.start_gateway();
    let mut d = setup.start_daemon(DeviceProfile::embedded().unwrap());
    d.say("Pay Heytea.").await;
    assert_eq!(next_said(&mut d).await, "How much to Heytea?");
    d.say("Thirty six yuan.").await;
    assert_eq!(
        next_said(&mut d).await,
        "Pay 36 yuan to Heytea? Say confirm or cancel."
    );
    d.say("Confirm.").await;
    assert_eq!(answer_status(&mut d).await, ResponseStatus::Approved);
    assert_eq!(next_said(&mut d).await, "Paid 36 yuan to Heytea.");

    // Chatter gets no answer; a command tried but not made out gets a short one.
    d.say("Pay attention to the road.").await;
    d.say("Pay 20 yuan to Bob and Alice.").await;
    assert_eq!(next_said(&mut d).await, "Sorry, I didn't catch that.");
    // A payee never guessed: a name outside the book drops the payment.
    d.say("Pay thirty six yuan.").await;
    assert_eq!(next_said(&mut d).await, "Who should I pay 36 yuan to?");
    d.say("Walmart.").await;
    assert_eq!(
        next_said(&mut d).await,
        "Sorry, I did not catch that; nothing was paid."
    );

    d.stop_within(WAIT).await;
    let ledger = setup.ledger_after(gateway).await;
    let paid: Vec<(&str, i64)> = ledger
        .iter()
        .map(|e| (e.payee.as_str(), e.amount.minor))
        .collect();
    assert_eq!(paid, [("Heytea", 3_600)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driving_car_refuses_a_coffee_and_reads_back_a_toll_under_the_auto_limit() {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    // The car profile's [limits] give a new store 50 yuan auto-pay: parked,
    // both payments would go through unasked.
    let gateway = setup.start_gateway();
    let mut car = DeviceProfile::load(Some(&root().join("devices/car-cockpit.toml"))).unwrap();
    // Driving because the vehicle says so, not because nothing was said.
    car.driving.assume_driving = false;
    // The vehicle's retained state, there before the device connects.
    let mut vehicle = setup.attacker();
    let driving = topics::driving(&setup.prefix, &setup.device_id);
    vehicle.publish(&driving, true, "true").await;
    let mut d = setup.start_daemon(car);

    d.say("Pay 12 yuan to Luckin Coffee.").await;
    let refused = d.next(said).await;
    assert_eq!(
        refused,
        "I can't pay 12 yuan to Luckin Coffee. \
         While you drive, I can only pay for tolls, parking, fuel and charging."
    );
    // Garbage on the driving topic is ignored: the car still drives.
    vehicle.publish(&driving, false, "vroom").await;

    d.say("Pay 15 yuan to Expressway Toll.").await;
    let question = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("a toll was paid without a confirmation while driving"),
            other => said(other),
        })
        .await;
    assert_eq!(
        question,
        "Pay 15 yuan to Expressway Toll? Say confirm or cancel."
    );
    d.say("Confirm.").await;
    assert_eq!(answer_status(&mut d).await, ResponseStatus::Approved);

    d.stop_within(WAIT).await;
    let ledger = setup.ledger_after(gateway).await;
    let paid: Vec<(&str, i64)> = ledger
        .iter()
        .map(|e| (e.payee.as_str(), e.amount.minor))
        .collect();
    assert_eq!(
        paid,
        [("Expressway Toll", 1_500)],
        "the coffee was never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandarin_car_refuses_a_coffee_while_driving_reads_a_toll_back_in_mandarin_and_pays_it_on_queren()
 {
    let setup = Setup::new(protocol::DEFAULT_PREFIX);
    let gateway = setup.start_gateway();
    let car = DeviceProfile::load(Some(&root().join("devices/car-cockpit-zh.toml"))).unwrap();
    assert!(
        car.driving.assume_driving,
        "no word from the vehicle: it drives"
    );
    let mut d = setup.start_daemon(car);

    d.say("给瑞幸付十二元。").await;
    let refused = d.next(said).await;
    assert!(
        refused.starts_with("无法") && refused.contains("瑞幸") && refused.contains("十二元"),
        "{refused}"
    );

    // A homophone of the book's toll (收废 for 收费) is the toll.
    d.say("给高速收废付十五块。").await;
    let question = d
        .next(|e| match e {
            Event::Sent { .. } => panic!("a toll was paid without a confirmation while driving"),
            other => said(other),
        })
        .await;
    assert!(
        question.contains("十五元")
            && question.contains("高速收费")
            && question.ends_with("请说确认或取消。"),
        "{question}"
    );
    d.say("好的。").await;
    assert_eq!(answer_status(&mut d).await, ResponseStatus::Approved);

    d.stop_within(WAIT).await;
    let ledger = setup.ledger_after(gateway).await;
    let paid: Vec<(&str, i64)> = ledger
        .iter()
        .map(|e| (e.payee.as_str(), e.amount.minor))
        .collect();
    assert_eq!(paid, [("高速收费", 1_500)], "the coffee was never sent");
}
