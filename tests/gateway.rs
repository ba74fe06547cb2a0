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
) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    let options = MqttOptions::new(id, "127.0.0.1", broker.port);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    // Unbounded: a test that publishes a burst before it reads the answers
    // must not stall this loop, and with it its own publishing.
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = mpsc::channel(1);
    client.subscribe(subscribe, QoS::AtLeastOnce).await.unwrap();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = subscribed_tx.try_send(());
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(p.payload.to_vec());
                }
                _ => {}
            }
        }
    });
    subscribed.recv().await.unwrap();
    (client, rx)
}

/// The gateway's signed answer, opened with its key.
fn opened(answer: &[u8], gateway_key: PublicKey) -> PaymentResponse {
    protocol::open(answer, |kid| {
        (kid == gateway_key.key_id()).then_some(gateway_key)
    })
    .expect("signed by the gateway")
    .parse()
    .expect("a payment response")
}

async fn next_answer(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Option<Vec<u8>> {
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
    let response = opened(&first, gateway_key);
    assert_eq!(response.request_id, req.request_id);
    assert_eq!(response.status, ResponseStatus::Approved);

    // MQTT may deliver twice; the device republishes its outbox on reconnect.
    client
        .publish(&requests, QoS::AtLeastOnce, false, good)
        .await
        .unwrap();
    let second = next_answer(&mut answers).await.expect("a repeated answer");
    assert_eq!(second, first, "the first answer again, byte for byte");

    let exit = gateway.terminate_within(STOP_LIMIT);
    assert!(exit.success(), "graceful stop: {exit:?}");
    assert!(!said(next_answer(&mut status).await), "offline");
    let ledger = ok(&["gateway", "ledger", "--data-dir", dir]);
    assert_eq!(ledger.lines().count(), 1, "charged once: {ledger}");
}

/// Gateway hosts with one key and one PostgreSQL ledger, a broker, and
/// device `glasses-1` enrolled in the database.
struct SharedLedger {
    broker: Broker,
    db: voicepay_tools::postgres::TempPostgres,
    hosts: Vec<tempfile::TempDir>,
    gateway_key: PublicKey,
    device: SigningKey,
}

impl SharedLedger {
    fn new() -> SharedLedger {
        SharedLedger::with_hosts(2)
    }

    fn with_hosts(count: usize) -> SharedLedger {
        let broker = Broker::start();
        let db = voicepay_tools::postgres::TempPostgres::start().unwrap();
        let hosts: Vec<_> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let dir = |i: usize| hosts[i].path().to_str().unwrap().to_owned();
        // One gateway key, on every host.
        ok(&["gateway", "init", "--data-dir", &dir(0)]);
        let key = std::fs::read(hosts[0].path().join("gateway.key")).unwrap();
        for host in &hosts[1..] {
            voicepay_core::durable::write_file(
                &host.path().join("gateway.key"),
                &key,
                0o600,
                voicepay_core::durable::Existing::Keep,
            )
            .unwrap();
        }
        let shown: serde_json::Value = serde_json::from_str(&ok(&[
            "gateway",
            "show-key",
            "--json",
            "--data-dir",
            &dir(0),
        ]))
        .unwrap();
        let gateway_key = PublicKey::from_base64url(shown["public_key"].as_str().unwrap()).unwrap();
        let device = SigningKey::generate().unwrap();
        let enrolled = ok(&[
            "gateway",
            "enroll",
            "--device-id",
            "glasses-1",
            "--public-key",
            &device.public_key().to_base64url(),
            "--ledger",
            &db.url(),
            "--data-dir",
            &dir(1),
        ]);
        assert!(enrolled.starts_with("enrolled glasses-1"), "{enrolled}");
        SharedLedger {
            broker,
            db,
            hosts,
            gateway_key,
            device,
        }
    }

    fn dir(&self, host: usize) -> &str {
        self.hosts[host].path().to_str().unwrap()
    }

    /// `gateway run` on `host` with the shared ledger, its log (debug: one
    /// "answered" line per answer) on a channel.
    fn run(&self, host: usize, extra: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut command = gateway_command(&self.broker.url(), self.dir(host));
        command
            .args(["--ledger", &self.db.url()])
            .args(extra)
            .env("VOICEPAY_LOG", "warn,voicepay_gateway=debug")
            .stderr(std::process::Stdio::piped());
        let mut child = Child::spawn(command);
        let log = lines(child.stderr().unwrap());
        (child, log)
    }

    /// A client that sees every gateway worker's status as it is said.
    async fn watch_statuses(&self) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
        let statuses = topics::gateway_statuses_filter(protocol::DEFAULT_PREFIX);
        device_client(&self.broker, "watcher", &statuses).await
    }

    /// Waits until `count` gateway sessions have said they are online.
    async fn wait_online(&self, status: &mut mpsc::UnboundedReceiver<Vec<u8>>, count: usize) {
        let mut sessions = std::collections::BTreeSet::new();
        while sessions.len() < count {
            let said = next_answer(status).await.expect("a status");
            let said =
                GatewayStatus::open(&said, &self.gateway_key).expect("signed by the gateway");
            if said.online() {
                sessions.insert(said.session);
            }
        }
    }

    fn ledger(&self) -> String {
        ok(&[
            "gateway",
            "ledger",
            "--ledger",
            &self.db.url(),
            "--data-dir",
            self.dir(0),
        ])
    }
}

fn answered(log: std::sync::mpsc::Receiver<String>) -> usize {
    log.iter().filter(|line| line.contains("answered")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_one_postgres_ledger_give_a_request_the_same_signed_answer_and_charge_it_once()
 {
    let s = SharedLedger::new();
    let prefix = protocol::DEFAULT_PREFIX;
    let (_watch, mut status) = s.watch_statuses().await;
    let (mut first_gateway, _) = s.run(0, &[]);
    let (mut second_gateway, _) = s.run(1, &[]);
    s.wait_online(&mut status, 2).await;
    let (client, mut answers) =
        device_client(&s.broker, "device", &topics::responses(prefix, "glasses-1")).await;
    let req = request("glasses-1", 3600);
    let good = Envelope::seal_json(&req, &s.device).unwrap().0.to_bytes();
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
    let gateway_key = s.gateway_key;
    let response = opened(&one, gateway_key);
    assert_eq!(response.status, ResponseStatus::Approved);

    assert!(first_gateway.terminate_within(STOP_LIMIT).success());
    assert!(second_gateway.terminate_within(STOP_LIMIT).success());
    let ledger = s.ledger();
    assert_eq!(ledger.lines().count(), 1, "charged once: {ledger}");
    assert!(ledger.contains(&req.request_id.to_string()), "{ledger}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_workers_sharing_a_subscription_split_the_requests_and_answer_each_once() {
    let s = SharedLedger::new();
    let prefix = protocol::DEFAULT_PREFIX;
    let (_watch, mut status) = s.watch_statuses().await;
    let (mut first_gateway, first_log) = s.run(0, &["--share", "gateways"]);
    let (mut second_gateway, second_log) = s.run(1, &["--share", "gateways"]);
    s.wait_online(&mut status, 2).await;
    let (client, mut answers) =
        device_client(&s.broker, "device", &topics::responses(prefix, "glasses-1")).await;
    let requests: Vec<PaymentRequest> = (1..=20)
        .map(|seq| {
            let mut req = request("glasses-1", 100);
            req.seq = seq;
            req
        })
        .collect();
    for req in &requests {
        let sealed = Envelope::seal_json(req, &s.device).unwrap().0.to_bytes();
        client
            .publish(
                topics::requests(prefix, "glasses-1"),
                QoS::AtLeastOnce,
                false,
                sealed,
            )
            .await
            .unwrap();
    }
    let gateway_key = s.gateway_key;
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < requests.len() {
        let answer = next_answer(&mut answers)
            .await
            .expect("every request is answered");
        let response = opened(&answer, gateway_key);
        assert_eq!(response.status, ResponseStatus::Approved);
        heard.insert(response.request_id);
    }
    assert!(first_gateway.terminate_within(STOP_LIMIT).success());
    assert!(second_gateway.terminate_within(STOP_LIMIT).success());
    let (first, second) = (answered(first_log), answered(second_log));
    assert_eq!(
        first + second,
        20,
        "each request answered once: {first} + {second}"
    );
    assert!(
        first > 0 && second > 0,
        "both workers took requests: {first} + {second}"
    );
    assert_eq!(s.ledger().lines().count(), 20);
}

#[test]
fn a_share_group_that_is_not_a_plain_name_is_refused_and_sharing_needs_a_shared_ledger() {
    let out = run(voicepay(&[
        "gateway",
        "run",
        "--ledger",
        "postgres://gw@db/v",
        "--share",
        "a/b",
    ]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a group is 1-64 of"),
        "{}",
        stderr(&out)
    );
    let out = run(voicepay(&["gateway", "run", "--share", "gateways"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--ledger"), "{}", stderr(&out));
}

/// Waits until the device's link believes the gateway is `online`.
async fn device_sees(link: &mut voicepay_core::transport::DeviceLink, online: bool) {
    let seen = tokio::time::timeout(
        Duration::from_secs(60),
        link.state.wait_for(|s| s.broker && s.gateway == online),
    )
    .await;
    assert!(
        seen.is_ok(),
        "the device never saw the gateway online={online}"
    );
}

/// Regression (issue 24): workers with one key shared one retained status,
/// and a killed worker's will took the whole deployment offline while the
/// others still served.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_takes_no_other_offline_and_the_last_one_stopping_does() {
    let s = SharedLedger::new();
    let prefix = protocol::DEFAULT_PREFIX;
    let url = s.broker.url().parse().unwrap();
    let (_watch, mut statuses) = s.watch_statuses().await;
    let mut link = voicepay_core::transport::DeviceLink::start(
        &url,
        prefix,
        "glasses-1",
        s.gateway_key,
        None,
        Vec::new,
    );
    let (doomed, _) = s.run(0, &["--share", "workers"]);
    let (mut survivor, _) = s.run(1, &["--share", "workers"]);
    s.wait_online(&mut statuses, 2).await;
    device_sees(&mut link, true).await;

    doomed.signal("KILL");
    // The broker says the killed worker's will...
    loop {
        let said = next_answer(&mut statuses)
            .await
            .expect("the killed worker's will");
        let said = GatewayStatus::open(&said, &s.gateway_key).unwrap();
        if !said.online() {
            assert!(said.worker.is_some(), "a worker's will names it");
            break;
        }
    }
    // ...and then carries a marker to the device, which therefore has read
    // the will by the time it reads the marker (one subscriber's messages
    // arrive in order).
    let (marker, _) = device_client(&s.broker, "marker", "unused/topic").await;
    marker
        .publish(
            topics::responses(prefix, "glasses-1"),
            QoS::AtLeastOnce,
            false,
            b"marker".to_vec(),
        )
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(60), link.answers.recv()).await;
    assert_eq!(read.unwrap().unwrap(), b"marker");
    assert!(
        link.state.borrow().gateway,
        "a killed worker took the gateway offline while another served"
    );

    // The last worker stops: nobody serves, and the device knows it.
    assert!(survivor.terminate_within(STOP_LIMIT).success());
    device_sees(&mut link, false).await;
    drop(doomed);
}

/// Requests in the fault test, and how many devices send them.
const FAULT_DEVICES: usize = 30;
const FAULT_REQUESTS: usize = 3_000;
/// At most this many unanswered at once (a stock mosquitto queues 1,000 per
/// client); an unanswered one is sent again after `RESEND`, as a device's
/// outbox does.
const FAULT_WINDOW: usize = 300;
const RESEND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_answer_three_thousand_requests_once_each_through_a_killed_worker_and_a_postgres_restart()
 {
    let mut s = SharedLedger::with_hosts(3);
    let prefix = protocol::DEFAULT_PREFIX;
    // Thirty devices, enrolled in the shared books.
    let devices: Vec<(String, SigningKey)> = (0..FAULT_DEVICES)
        .map(|i| {
            let id = format!("car-{i:02}");
            let key = SigningKey::generate().unwrap();
            ok(&[
                "gateway",
                "enroll",
                "--device-id",
                &id,
                "--public-key",
                &key.public_key().to_base64url(),
                "--ledger",
                &s.db.url(),
                "--data-dir",
                s.dir(0),
            ]);
            (id, key)
        })
        .collect();
    let (_watch, mut status) = s.watch_statuses().await;
    let mut workers: Vec<Child> = (0..3)
        .map(|host| s.run(host, &["--share", "workers"]).0)
        .collect();
    s.wait_online(&mut status, 3).await;

    // Every request, sealed once: a resend is the same bytes.
    let mut requests = Vec::with_capacity(FAULT_REQUESTS);
    for seq in 1..=(FAULT_REQUESTS / FAULT_DEVICES) as u64 {
        for (id, key) in &devices {
            let mut req = request(id, 100);
            req.seq = seq;
            let sealed = Envelope::seal_json(&req, key).unwrap().0.to_bytes();
            requests.push((req.request_id, topics::requests(prefix, id), sealed));
        }
    }
    let (client, mut answers) = device_client(
        &s.broker,
        "devices",
        &format!("{prefix}/devices/+/responses"),
    )
    .await;
    let gateway_key = s.gateway_key;
    let mut answered: std::collections::HashMap<uuid::Uuid, Vec<u8>> = Default::default();
    let mut sent_at: std::collections::HashMap<uuid::Uuid, tokio::time::Instant> =
        Default::default();
    let (mut next, mut killed, mut restarted, mut resent) = (0, false, false, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while answered.len() < requests.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} answered",
            answered.len(),
            requests.len()
        );
        // New requests within the window, and resends of the overdue.
        let now = tokio::time::Instant::now();
        let mut to_send = Vec::new();
        for (id, topic, sealed) in &requests[..next] {
            if !answered.contains_key(id) && sent_at.get(id).is_some_and(|at| now - *at > RESEND) {
                to_send.push((*id, topic, sealed));
                resent += 1;
            }
        }
        while next < requests.len() && sent_at.len() - answered.len() < FAULT_WINDOW {
            let (id, topic, sealed) = &requests[next];
            to_send.push((*id, topic, sealed));
            sent_at.insert(*id, now);
            next += 1;
        }
        for (id, topic, sealed) in to_send {
            sent_at.insert(id, now);
            client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, sealed.clone())
                .await
                .unwrap();
        }
        // Answers as they come, for a while.
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(answer)) = tokio::time::timeout_at(until, answers.recv()).await {
            let response: PaymentResponse = protocol::open(&answer, |kid| {
                (kid == gateway_key.key_id()).then_some(gateway_key)
            })
            .expect("signed by the gateway")
            .parse()
            .unwrap();
            assert_eq!(response.status, ResponseStatus::Approved, "{response:?}");
            match answered.get(&response.request_id) {
                Some(first) => assert_eq!(first, &answer, "a repeat gets the identical decision"),
                None => {
                    answered.insert(response.request_id, answer);
                }
            }
        }
        if !killed && answered.len() >= FAULT_REQUESTS / 3 {
            workers[0].signal("KILL");
            killed = true;
        }
        if !restarted && answered.len() >= 2 * FAULT_REQUESTS / 3 {
            // With up to a window of requests in the workers' hands.
            tokio::task::block_in_place(|| {
                s.db.stop().unwrap();
                s.db.start_again().unwrap();
            });
            restarted = true;
        }
    }
    // Every tenth request delivered again, to whichever worker: each gets
    // its first signed decision again, byte for byte.
    let again: Vec<_> = requests.iter().step_by(10).collect();
    for (_, topic, sealed) in &again {
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, sealed.clone())
            .await
            .unwrap();
    }
    let mut repeated = std::collections::HashSet::new();
    while repeated.len() < again.len() {
        let answer = next_answer(&mut answers)
            .await
            .expect("a repeat is answered");
        let response: PaymentResponse = protocol::open(&answer, |kid| {
            (kid == gateway_key.key_id()).then_some(gateway_key)
        })
        .unwrap()
        .parse()
        .unwrap();
        assert_eq!(
            answered[&response.request_id], answer,
            "the identical signed decision"
        );
        repeated.insert(response.request_id);
    }
    for worker in &mut workers[1..] {
        assert!(worker.terminate_within(STOP_LIMIT).success());
    }
    let ledger = s.ledger();
    let charged: std::collections::HashSet<String> = ledger
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["request_id"].to_string()
        })
        .collect();
    assert_eq!(ledger.lines().count(), FAULT_REQUESTS, "each charged once");
    assert_eq!(charged.len(), FAULT_REQUESTS);
    println!("{resent} requests sent again after the faults");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_without_the_gateway_key_enrolls_a_device_and_limits_its_day_while_workers_run()
{
    let s = SharedLedger::new();
    let prefix = protocol::DEFAULT_PREFIX;
    let (_watch, mut status) = s.watch_statuses().await;
    let mut workers: Vec<Child> = (0..2)
        .map(|host| s.run(host, &["--share", "workers"]).0)
        .collect();
    s.wait_online(&mut status, 2).await;

    // The operator's host: the database's URL, and no gateway key.
    let operator = tempfile::tempdir().unwrap();
    let url = s.db.url();
    let on_books = |args: &[&str]| {
        let mut all = vec!["gateway"];
        all.extend(args);
        all.extend(["--ledger", &url, "--data-dir"]);
        all.push(operator.path().to_str().unwrap());
        ok(&all)
    };
    let device = SigningKey::generate().unwrap();
    let key = device.public_key().to_base64url();
    let enrolled = on_books(&["enroll", "--device-id", "glasses-2", "--public-key", &key]);
    assert!(enrolled.starts_with("enrolled glasses-2"), "{enrolled}");
    let set = on_books(&["limits", "--daily", "50.00 CNY"]);
    assert_eq!(
        set,
        "{\"daily_limit\":{\"minor\":5000,\"currency\":\"CNY\"}}\n"
    );
    assert_eq!(on_books(&["limits"]), set, "shown as set");
    assert!(
        !operator.path().join("gateway.key").exists(),
        "no key was needed or made"
    );

    // Served at once, and judged by the new limit, by whichever worker.
    let (client, mut answers) = device_client(
        &s.broker,
        "glasses-2",
        &topics::responses(prefix, "glasses-2"),
    )
    .await;
    let mut statuses = Vec::new();
    for (seq, minor) in [(1, 3_000), (2, 3_000), (3, 2_000)] {
        let mut req = request("glasses-2", minor);
        req.seq = seq;
        let sealed = Envelope::seal_json(&req, &device).unwrap().0.to_bytes();
        client
            .publish(
                topics::requests(prefix, "glasses-2"),
                QoS::AtLeastOnce,
                false,
                sealed,
            )
            .await
            .unwrap();
        let answer = next_answer(&mut answers).await.expect("an answer");
        statuses.push(opened(&answer, s.gateway_key).status);
    }
    use ResponseStatus::{Approved, Declined};
    assert_eq!(
        statuses,
        [Approved, Declined, Approved],
        "30 + 20 fit in 50"
    );
    for worker in &mut workers {
        assert!(worker.terminate_within(STOP_LIMIT).success());
    }
}

#[test]
fn the_daily_limit_is_set_through_a_running_embedded_gateway_and_kept_in_its_books() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    ok(&["gateway", "init", "--data-dir", dir]);
    let mut gateway = Child::spawn(gateway_command(&broker.url(), dir));
    let socket = data.path().join("control.sock");
    wait_for("the gateway's control socket", START_LIMIT, || {
        socket.exists()
    });
    let set = ok(&[
        "gateway",
        "limits",
        "--daily",
        "12.00 CNY",
        "--data-dir",
        dir,
    ]);
    assert_eq!(
        set,
        "{\"daily_limit\":{\"minor\":1200,\"currency\":\"CNY\"}}\n"
    );
    let out = run(voicepay(&[
        "gateway",
        "limits",
        "--daily=-1.00 CNY",
        "--data-dir",
        dir,
    ]));
    assert!(!out.status.success(), "a limit below zero is refused");
    let removed = ok(&["gateway", "limits", "--no-daily", "--data-dir", dir]);
    assert_eq!(removed, "{\"daily_limit\":null}\n");
    assert!(gateway.terminate_within(STOP_LIMIT).success());
    // Kept in its books: read again with the gateway stopped.
    ok(&[
        "gateway",
        "limits",
        "--daily",
        "12.00 CNY",
        "--data-dir",
        dir,
    ]);
    let shown = ok(&["gateway", "limits", "--data-dir", dir]);
    assert!(shown.contains("1200"), "{shown}");
}
