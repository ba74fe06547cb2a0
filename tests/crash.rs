//! A crash test in sled's style: a child daemon paying in a loop is killed with SIGKILL at random points; every payment it committed is in the gateway's ledger exactly once.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use util::*;
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Limits;
use voicepay_core::protocol::ResponseStatus;
use voicepay_core::transport::BrokerUrl;
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::{Event, Feedback};
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{Heard, Source};
use voicepay_device::store::{Store, StoreConfig};

/// Set in the child: `DATA_DIR|BROKER_URL|LOG|MODE` (MODE: pay or drain).
const CHILD: &str = "VOICEPAY_CRASH_CHILD";
const TEST_NAME: &str = "payments_survive_sigkill_at_random_points";

fn kill_points() -> u32 {
    std::env::var("VOICEPAY_CRASH_POINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

#[test]
fn payments_survive_sigkill_at_random_points() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let broker = Broker::start();
    let keys = Keys::new();
    let dev = &keys.dev();
    let mut gateway_child = keys.gateway(&broker.url());

    let log = keys.device_dir.join("settled.log");
    let spec = |mode: &str| format!("{dev}|{}|{}|{mode}", broker.url(), log.display());
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..kill_points() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD, spec("pay"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // xorshift: a spread of kill points, the same every run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(40 + rng % 360));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // Restarted once more, uninterrupted: it drains what the kills left.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, spec("drain"))
        .status()
        .unwrap();
    assert!(status.success());
    gateway_child.terminate();

    let outbox = ok(&["outbox", "--json", "--data-dir", dev]);
    assert!(outbox.is_empty(), "the outbox drained: {outbox}");
    let ledger = keys.ledger();
    let ledger_ids: Vec<String> = ledger
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = ledger_ids.iter().collect();
    assert_eq!(
        unique.len(),
        ledger_ids.len(),
        "a payment was charged twice"
    );

    let history: Vec<Value> = ok(&["history", "--json", "--verify", "--data-dir", dev])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paid: HashSet<String> = history
        .iter()
        .filter(|h| h["event"]["kind"] == "paid")
        .map(|h| h["event"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    let charged: HashSet<String> = ledger_ids.into_iter().collect();
    assert_eq!(
        paid, charged,
        "every committed payment paid once, none lost"
    );
    assert!(
        paid.len() >= 10,
        "the kills left time to pay: {}",
        paid.len()
    );
    eprintln!(
        "{} kill points: {} payments in the ledger, each once; {} seen answered",
        kill_points(),
        paid.len(),
        std::fs::read_to_string(&log).map_or(0, |s| s.lines().count())
    );
    // Every payment a child saw answered is among them.
    let settled = std::fs::read_to_string(&log).unwrap_or_default();
    for id in settled.lines() {
        assert!(
            charged.contains(id),
            "{id} was answered but is not in the ledger"
        );
    }
}

/// Writes each approved request id to the log, durably, and wakes the payer.
struct Answers {
    log: std::fs::File,
    answered: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Feedback for Answers {
    fn event(&mut self, event: &Event) {
        if let Event::Answer {
            request_id,
            status: ResponseStatus::Approved,
            ..
        } = event
        {
            // One write: a kill between an id and its newline would glue
            // two ids together in the next child's line.
            self.log
                .write_all(format!("{request_id}\n").as_bytes())
                .unwrap();
            self.log.sync_data().unwrap();
        }
        if matches!(event, Event::Answer { .. }) {
            let _ = self.answered.send(());
        }
    }
}

/// The child: the real daemon, told again and again "pay 1 yuan" (under its
/// auto-pay limit), one payment per answer, until killed; or, in drain mode,
/// no input at all: it sends what the outbox holds and exits once answered.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [data_dir, broker, log, mode] = parts[..] else {
        panic!("bad child spec {spec}");
    };
    let profile = DeviceProfile::embedded().unwrap();
    let store = Store::open(&StoreConfig::new(PathBuf::from(data_dir).join("store"))).unwrap();
    store
        .set_limits(&Limits {
            auto_pay: Money::new(1_000, Currency::CNY),
            ..Limits::default()
        })
        .unwrap();
    drop(store);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let context = profile.parse_context();
        let mut config = DaemonConfig::new(
            profile,
            PathBuf::from(data_dir),
            broker.parse::<BrokerUrl>().unwrap(),
        );
        config.connect_wait = Duration::from_secs(10);
        config.drain_wait = Duration::from_secs(20);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let feedback = Box::new(Answers { log, answered });
        let (intake, source) = Source::channel(1);
        let daemon = tokio::spawn(daemon::run(
            config,
            source,
            feedback,
            CancellationToken::new(),
        ));
        if mode == "drain" {
            drop(intake);
            daemon.await.unwrap().unwrap();
            return;
        }
        loop {
            intake.arriving();
            let heard = Heard::typed("crash", "Pay 1 yuan to Heytea.", &context);
            assert!(intake.send(heard).await, "the daemon stopped");
            let _ = tokio::time::timeout(Duration::from_secs(5), answers.recv()).await;
        }
    });
}
