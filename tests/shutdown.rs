//! A service manager's stop: SIGTERM ends the gateway and the daemon within five seconds in every state they can be in, with nothing lost.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use util::*;

// systemd's default stop timeout is far longer; the issue asks for five
// seconds (util's STOP_LIMIT).

/// A loopback port with nothing listening on it.
fn nobody() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("mqtt://127.0.0.1:{port}")
}

/// `voicepay gateway run` telling its state on standard error, and those lines.
fn gateway_telling(keys: &Keys, broker_url: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = gateway_command(broker_url, &keys.gw());
    cmd.env("VOICEPAY_LOG", "warn,voicepay_gateway=debug")
        .stderr(std::process::Stdio::piped());
    let mut gateway = Child::spawn(cmd);
    let told = lines(gateway.stderr().unwrap());
    (gateway, told)
}

/// Waits for the gateway to say `what`.
fn told(told: &std::sync::mpsc::Receiver<String>, what: &str) {
    wait_line(told, &mut Vec::new(), START_LIMIT, |line| {
        line.contains(what)
    });
}

#[test]
fn sigterm_stops_the_gateway_within_five_seconds_in_every_state() {
    let keys = Keys::new();

    // Never reached its broker: retrying.
    let (mut gateway, said) = gateway_telling(&keys, &nobody());
    told(&said, "gateway still cannot reach the broker");
    assert!(gateway.terminate_within(STOP_LIMIT).success());

    // Connected and idle.
    let broker = Broker::start();
    let (mut gateway, said) = gateway_telling(&keys, &broker.url());
    told(&said, "gateway connected");
    assert!(gateway.terminate_within(STOP_LIMIT).success());

    // Its broker died under it: it says offline to nobody and goes.
    let (mut gateway, said) = gateway_telling(&keys, &broker.url());
    told(&said, "gateway connected");
    drop(broker);
    told(&said, "gateway lost the broker");
    assert!(gateway.terminate_within(STOP_LIMIT).success());
}

/// Waits until `voicepay status` says the daemon on `dev` runs with this
/// connection ("offline": no broker).
fn daemon_running(dev: &str, connection: &str) {
    wait_daemon(
        dev,
        START_LIMIT,
        &format!("the daemon runs, {connection}"),
        |status| status["daemon"] == "running" && status["connection"] == connection,
    );
}

#[test]
fn sigterm_stops_the_daemon_within_five_seconds_in_every_state_and_loses_no_payment() {
    model();
    let keys = Keys::new();
    keys.set_limits(&["--auto", "20.00"]);

    // Still looking for a broker that is not there.
    let (mut daemon, _) = keys.daemon(&nobody(), "pay_alice_20");
    daemon_running(&keys.dev(), "offline");
    assert!(daemon.terminate_within(STOP_LIMIT).success());

    // Paid offline (no gateway on the broker) and draining, waiting for
    // answers that cannot come: the payment stays in the outbox.
    let broker = Broker::start();
    let (mut daemon, lines) = keys.daemon(&broker.url(), "pay_alice_20");
    let sent = lines
        .iter()
        .find(|line| line.contains(r#""step":"sent""#))
        .unwrap();
    assert!(sent.contains(r#""offline":true"#), "{sent}");
    assert!(daemon.terminate_within(STOP_LIMIT).success());
    let outbox = keys.outbox();
    assert_eq!(outbox.lines().count(), 1, "{outbox}");

    // Its broker died under it while it drained.
    let (mut daemon, lines) = keys.daemon(&broker.url(), "none_hello");
    let heard = lines.iter().find(|line| line.contains(r#""step":"heard""#));
    assert!(heard.is_some(), "the daemon ran");
    drop(broker);
    daemon_running(&keys.dev(), "offline");
    assert!(daemon.terminate_within(STOP_LIMIT).success());
    let outbox = keys.outbox();
    assert!(outbox.contains("Alice"), "{outbox}");

    // The gateway comes back: what waited is paid, once.
    let broker = Broker::start();
    let mut gateway = keys.gateway(&broker.url());
    let dev = keys.dev();
    let url = broker.url();
    let hello = fixture("none_hello.wav");
    let drained = run(voicepay(&[
        "run",
        "--broker",
        &url,
        "--data-dir",
        &dev,
        "--answer-wait",
        "20",
        "--input",
        hello.to_str().unwrap(),
    ]));
    assert!(drained.status.success(), "{}", stderr(&drained));
    assert!(gateway.terminate_within(STOP_LIMIT).success());
    assert_eq!(keys.outbox().lines().count(), 0, "{}", keys.outbox());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &keys.gw()]);
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
}
