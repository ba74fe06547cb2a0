//! A crash test in sled's style: a child paying in a loop is killed with SIGKILL at random points; every payment it committed is in the gateway's ledger exactly once.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use util::*;
use voicepay::daemon::{DaemonConfig, Device, Event, Feedback};
use voicepay::money::{Currency, Money};
use voicepay::order::{Approval, PaymentOrder, Purchase};
use voicepay::profile::DeviceProfile;
use voicepay::protocol::{self, Evidence};
use voicepay::transport::BrokerUrl;

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
    let gateway_dir = tempfile::tempdir().unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    let (gw, dev) = (
        gateway_dir.path().to_str().unwrap(),
        device_dir.path().to_str().unwrap(),
    );
    let cli = |args: &[&str]| {
        let out = run(voicepay(args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["gateway", "init", "--data-dir", gw]);
    cli(&["keys", "init", "--data-dir", dev]);
    let device: Value =
        serde_json::from_str(&cli(&["keys", "show", "--json", "--data-dir", dev])).unwrap();
    let gateway: Value =
        serde_json::from_str(&cli(&["gateway", "show-key", "--json", "--data-dir", gw])).unwrap();
    let device_id = device["device_id"].as_str().unwrap();
    let device_key = device["public_key"].as_str().unwrap();
    cli(&[
        "gateway",
        "enroll",
        "--device-id",
        device_id,
        "--public-key",
        device_key,
        "--data-dir",
        gw,
    ]);
    cli(&[
        "trust-gateway",
        "--public-key",
        gateway["public_key"].as_str().unwrap(),
        "--data-dir",
        dev,
    ]);
    let mut gateway_process = Child::spawn(voicepay(&[
        "gateway",
        "run",
        "--broker",
        &broker.url(),
        "--data-dir",
        gw,
    ]));

    let log = device_dir.path().join("settled.log");
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
    gateway_process.terminate();

    let outbox = cli(&["outbox", "--json", "--data-dir", dev]);
    assert!(outbox.is_empty(), "the outbox drained: {outbox}");
    let ledger: Vec<Value> = cli(&["gateway", "ledger", "--data-dir", gw])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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

    let history: Vec<Value> = cli(&["history", "--json", "--verify", "--data-dir", dev])
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

struct Quiet;
impl Feedback for Quiet {
    fn event(&mut self, _: &Event) {}
}

/// The child: pays 1 yuan again and again until killed (or drains and exits).
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [data_dir, broker, log, mode] = parts[..] else {
        panic!("bad child spec {spec}");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = DaemonConfig {
            profile: DeviceProfile::embedded().unwrap(),
            data_dir: PathBuf::from(data_dir),
            broker: broker.parse::<BrokerUrl>().unwrap(),
            prefix: protocol::DEFAULT_PREFIX.to_owned(),
            answer_wait: Duration::from_secs(5),
        };
        let mut device = Device::start(config, Box::new(Quiet)).unwrap();
        assert!(device.wait_online(Duration::from_secs(10)).await);
        if mode == "drain" {
            device.settle_answers(Duration::from_secs(20)).await;
            device.close().await;
            return;
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        loop {
            let before: HashSet<_> = paid_ids(&device);
            let order = PaymentOrder {
                amount: Money::new(100, Currency::CNY),
                purchase: Purchase::Pay {
                    payee: "Crash Test".into(),
                },
                evidence: Evidence::new("Pay 1 yuan to Crash Test.", b"pcm", 0.9, "en"),
            };
            device.pay(order, Approval::AutoLimit).await;
            for id in paid_ids(&device).difference(&before) {
                writeln!(log, "{id}").unwrap();
                log.sync_data().unwrap();
            }
        }
    });
}

fn paid_ids(device: &Device) -> HashSet<String> {
    device
        .store()
        .history()
        .unwrap()
        .into_iter()
        .filter_map(|h| match h.event {
            voicepay::store::HistoryEvent::Paid { request_id, .. } => Some(request_id.to_string()),
            _ => None,
        })
        .collect()
}
