//! Control while it runs: the CLI's store and ledger commands work while the daemon or the gateway holds the database, through its local socket, and the same commands work on the files when nothing runs.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::time::Duration;

use serde_json::Value;
use util::*;

#[test]
fn limits_outbox_and_history_work_while_the_daemon_runs_and_after_it_stops() {
    model();
    let keys = Keys::new();
    let dev = keys.dev();
    ok(&["limits", "set", "--auto", "20.00", "--data-dir", &dev]);
    // No gateway on the broker: the payment is made offline and waits.
    let broker = Broker::start();
    let (mut daemon, lines) = keys.daemon(&broker.url(), "pay_alice_20");
    let sent = lines.iter().find(|l| l.contains(r#""step":"sent""#));
    assert!(sent.is_some(), "the payment was made");

    // The daemon holds the store; every command still answers.
    let outbox = ok(&["outbox", "--json", "--data-dir", &dev]);
    assert_eq!(outbox.lines().count(), 1, "{outbox}");
    assert!(outbox.contains("Alice"), "{outbox}");
    ok(&["limits", "set", "--auto", "5.00", "--data-dir", &dev]);
    let limits: Value =
        serde_json::from_str(&ok(&["limits", "show", "--json", "--data-dir", &dev])).unwrap();
    assert_eq!(limits["auto_pay"]["minor"], 500, "{limits}");
    let out = run(voicepay(&["history", "--verify", "--data-dir", &dev]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("history chain intact"),
        "{}",
        stderr(&out)
    );
    let socket = keys.device_dir.join("control.sock");
    assert!(socket.exists());

    assert!(daemon.terminate_within(Duration::from_secs(5)).success());
    assert!(!socket.exists(), "the socket goes with the daemon");
    // Stopped: the same commands open the store themselves.
    let limits: Value =
        serde_json::from_str(&ok(&["limits", "show", "--json", "--data-dir", &dev])).unwrap();
    assert_eq!(
        limits["auto_pay"]["minor"], 500,
        "the change made while running stayed"
    );
    assert_eq!(keys.outbox().lines().count(), 1);
}

#[test]
fn a_device_enrolled_while_the_gateway_runs_pays_at_once_and_the_ledger_shows_it() {
    model();
    let keys = Keys::new();
    let gw = keys.gw();
    let broker = Broker::start();
    let mut gateway = keys.gateway(&broker.url());
    // A second device, paired while the gateway runs.
    let second = tempfile::tempdir().unwrap();
    let dev = dir(&second);
    // Enrolled through the running gateway: it holds its books.
    keys.pair_device(&dev);
    ok(&["limits", "set", "--auto", "20.00", "--data-dir", &dev]);
    let steps = run_fixture(&broker.url(), &dev, "pay_alice_20", None);
    let answer = steps
        .iter()
        .find(|s| s["step"] == "answer")
        .expect("an answer");
    assert_eq!(answer["status"], "approved", "known without a restart");

    let ledger = ok(&["gateway", "ledger", "--data-dir", &gw]);
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
    assert!(gateway.terminate_within(Duration::from_secs(5)).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &gw]);
    assert_eq!(
        ledger.lines().count(),
        1,
        "the same books when it is stopped"
    );
}
