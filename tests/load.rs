//! Holding under load: a burst of ten thousand signed requests at a gateway process, and an outbox of a thousand draining at once, on a real mosquitto, counted exactly.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use util::*;
use voicepay_core::clock::{Stopwatch, now_ms};
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{
    self, DEFAULT_PREFIX, Envelope, GatewayStatus, PaymentResponse, RequestBuilder, topics,
};
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::Quiet;
use voicepay_device::identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Source;
use voicepay_device::store::{Store, StoreConfig};
use voicepay_gateway::{Gateway, GatewayConfig};

const DEVICES: usize = 100;
const GENUINE: usize = 10_000;
/// The load generator keeps at most this many requests unanswered: a stock
/// mosquitto queues 1,000 QoS 1 messages per client and drops the rest (a
/// device sends again what is dropped; this generator does not, so it
/// stays under the broker's queue, as a client at full speed would in a
/// deployment with many devices).
const WINDOW: usize = 500;

fn ledger(gateway_dir: &str) -> Vec<Value> {
    ok(&["gateway", "ledger", "--data-dir", gateway_dir])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn gateway_key(dir: &Path) -> SigningKey {
    voicepay_gateway::load_key(&GatewayConfig::new(dir.to_owned())).unwrap()
}

/// One message to publish, and what it is.
struct Shot {
    topic: String,
    message: Vec<u8>,
    request_id: uuid::Uuid,
    genuine: bool,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn a_burst_of_ten_thousand_requests_from_a_hundred_devices_is_answered_once_each_and_forgeries_are_refused()
 {
    let broker = Broker::start();
    let gateway_dir = tempfile::tempdir().unwrap();
    let gw = gateway_dir.path().to_str().unwrap().to_owned();
    ok(&["gateway", "init", "--data-dir", &gw]);
    let gateway_public = gateway_key(gateway_dir.path()).public_key();
    let devices: Vec<(String, SigningKey)> = {
        let gateway = Gateway::open(
            GatewayConfig::new(gateway_dir.path().to_owned()),
            gateway_key(gateway_dir.path()),
        )
        .unwrap();
        (0..DEVICES)
            .map(|i| {
                let key = SigningKey::generate().unwrap();
                let id = format!("load-{i:03}");
                gateway.enroll(&id, &key.public_key()).unwrap();
                (id, key)
            })
            .collect()
    };

    // 10,000 genuine, 10% repeated byte for byte, 1% forged (half signed by a
    // stranger, half a genuine envelope with another payload), interleaved.
    let now = now_ms();
    let mut shots: Vec<Shot> = (0..GENUINE)
        .map(|i| {
            let (id, key) = &devices[i % DEVICES];
            let amount = Money::new(100 + (i % 7) as i64, Currency::CNY);
            let request = RequestBuilder::new(id, (i / DEVICES + 1) as u64, amount, "Load", now)
                .expires_in(10 * 60 * 1000)
                .build();
            Shot {
                topic: topics::requests(DEFAULT_PREFIX, id),
                message: Envelope::seal_json(&request, key).unwrap().0.to_bytes(),
                request_id: request.request_id,
                genuine: true,
            }
        })
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let stranger = SigningKey::generate().unwrap();
    let mut extra = Vec::new();
    for _ in 0..GENUINE / 10 {
        let s = &shots[next(GENUINE)];
        extra.push(Shot {
            topic: s.topic.clone(),
            message: s.message.clone(),
            request_id: s.request_id,
            genuine: true,
        });
    }
    for f in 0..GENUINE / 100 {
        let (id, key) = &devices[next(DEVICES)];
        let request =
            RequestBuilder::new(id, 1, Money::new(99_999, Currency::CNY), "Forger", now).build();
        let mut envelope = Envelope::seal_json(&request, if f % 2 == 0 { &stranger } else { key })
            .unwrap()
            .0;
        if f % 2 == 1 {
            // A genuine signature over other bytes.
            let other =
                RequestBuilder::new(id, 1, Money::new(1, Currency::CNY), "Load", now).build();
            envelope.payload = Envelope::seal_json(&other, key).unwrap().0.payload;
        }
        extra.push(Shot {
            topic: topics::requests(DEFAULT_PREFIX, id),
            message: envelope.to_bytes(),
            request_id: request.request_id,
            genuine: false,
        });
    }
    for shot in extra {
        let at = next(shots.len() + 1);
        shots.insert(at, shot);
    }
    let forged: HashSet<uuid::Uuid> = shots
        .iter()
        .filter(|s| !s.genuine)
        .map(|s| s.request_id)
        .collect();
    let genuine: HashSet<uuid::Uuid> = shots
        .iter()
        .filter(|s| s.genuine)
        .map(|s| s.request_id)
        .collect();
    assert_eq!(genuine.len(), GENUINE);

    let mut gateway_child = gateway_process(&broker.url(), &gw);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (rps, p50, p99, fresh_ms) = runtime.block_on(async {
        let mut options = MqttOptions::new("load-generator", "127.0.0.1", broker.port);
        options.set_max_packet_size(128 * 1024, 128 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        client
            .subscribe(topics::gateway_status(DEFAULT_PREFIX), QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .subscribe(
                format!("{DEFAULT_PREFIX}/devices/+/responses"),
                QoS::AtLeastOnce,
            )
            .await
            .unwrap();
        // Answers, by request id: (how many, when the first came).
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let (online_tx, online) = tokio::sync::oneshot::channel();
        // How many answers came, for the sender's window.
        let (answered_tx, answered_rx) = tokio::sync::watch::channel(0usize);
        tokio::spawn(async move {
            let mut online_tx = Some(online_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/status") => {
                        if GatewayStatus::open(&p.payload, &gateway_public)
                            .is_ok_and(|s| s.online())
                            && let Some(tx) = online_tx.take()
                        {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        answered_tx.send_modify(|n| *n += 1);
                        let _ = answers_tx.send(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(error) => panic!("the load generator lost the broker: {error}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), online)
            .await
            .expect("the gateway came online")
            .unwrap();

        let clock = Stopwatch::start();
        let mut sent_at: HashMap<uuid::Uuid, f64> = HashMap::new();
        let publisher = client.clone();
        let stamps: Vec<(uuid::Uuid, bool)> =
            shots.iter().map(|s| (s.request_id, s.genuine)).collect();
        let sender = tokio::spawn(async move {
            let mut times = Vec::with_capacity(GENUINE * 2);
            // Genuine requests and their repeats are answered; forgeries not.
            let mut answerable = 0usize;
            let mut answered = answered_rx;
            for shot in shots {
                if shot.genuine {
                    answered
                        .wait_for(|n| answerable < n + WINDOW)
                        .await
                        .unwrap();
                    answerable += 1;
                }
                times.push(clock.elapsed().as_secs_f64());
                publisher
                    .publish(shot.topic, QoS::AtLeastOnce, false, shot.message)
                    .await
                    .unwrap();
            }
            times
        });
        let mut counts: HashMap<uuid::Uuid, (usize, f64)> = HashMap::new();
        let deadline = Duration::from_secs(180);
        while counts.keys().filter(|id| genuine.contains(id)).count() < GENUINE {
            let remaining = deadline.saturating_sub(clock.elapsed());
            let Ok(Some(message)) = tokio::time::timeout(remaining, answers.recv()).await else {
                break;
            };
            let at = clock.elapsed().as_secs_f64();
            let response: PaymentResponse = verify(&message, gateway_public);
            let entry = counts.entry(response.request_id).or_insert((0, at));
            entry.0 += 1;
        }
        let times = sender.await.unwrap();
        for ((id, genuine), at) in stamps.iter().zip(times) {
            if *genuine {
                sent_at.entry(*id).or_insert(at);
            }
        }
        let answered: HashSet<&uuid::Uuid> =
            counts.keys().filter(|id| genuine.contains(id)).collect();
        assert_eq!(answered.len(), GENUINE, "every genuine request is answered");
        assert!(
            counts.keys().all(|id| !forged.contains(id)),
            "a forgery was answered"
        );
        let mut latencies: Vec<f64> = answered
            .iter()
            .map(|id| (counts[*id].1 - sent_at[*id]) * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let last = counts.values().map(|c| c.1).fold(0.0, f64::max);
        let rps = GENUINE as f64 / last;

        // Afterwards, a fresh request is answered at once.
        let (id, key) = &devices[0];
        let fresh =
            RequestBuilder::new(id, 999, Money::new(100, Currency::CNY), "Fresh", now_ms()).build();
        let message = Envelope::seal_json(&fresh, key).unwrap().0.to_bytes();
        let asked = Stopwatch::start();
        client
            .publish(
                topics::requests(DEFAULT_PREFIX, id),
                QoS::AtLeastOnce,
                false,
                message,
            )
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(1), answers.recv())
                .await
                .expect("a fresh request is answered within a second after the burst")
                .unwrap();
            if verify(&message, gateway_public).request_id == fresh.request_id {
                break;
            }
        }
        let fresh_ms = asked.elapsed().as_secs_f64() * 1000.0;
        (
            rps,
            percentile(&latencies, 50),
            percentile(&latencies, 99),
            fresh_ms,
        )
    });
    let status = gateway_child.terminate_within(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");

    let entries = ledger(&gw);
    let ids: Vec<uuid::Uuid> = entries
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().parse().unwrap())
        .collect();
    let unique: HashSet<&uuid::Uuid> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a request was charged twice");
    assert_eq!(
        ids.len(),
        GENUINE + 1,
        "one ledger entry per genuine request"
    );
    assert!(ids.iter().all(|id| !forged.contains(id)));
    eprintln!(
        "load: {GENUINE} genuine requests from {DEVICES} devices (+{} repeats, +{} forged): \
         {rps:.0} requests/s answered, latency p50 {p50:.0} ms, p99 {p99:.0} ms; \
         a fresh request afterwards {fresh_ms:.1} ms",
        GENUINE / 10,
        GENUINE / 100
    );
}

fn verify(message: &[u8], gateway: PublicKey) -> PaymentResponse {
    protocol::open(message, |kid| (kid == gateway.key_id()).then_some(gateway))
        .and_then(|o| o.parse())
        .expect("every answer is signed by the gateway")
}

#[test]
fn an_outbox_of_a_thousand_payments_drains_when_the_gateway_returns() {
    const PAYMENTS: usize = 1_000;
    let broker = Broker::start();
    let gateway_dir = tempfile::tempdir().unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    let gw = gateway_dir.path().to_str().unwrap().to_owned();
    ok(&["gateway", "init", "--data-dir", &gw]);
    let gateway_public = gateway_key(gateway_dir.path()).public_key();
    let device_key = identity::init_device_key(device_dir.path()).unwrap();
    identity::trust_gateway(device_dir.path(), &gateway_public).unwrap();
    let device_id = protocol::device_id_for(&device_key.public_key());
    Gateway::open(
        GatewayConfig::new(gateway_dir.path().to_owned()),
        gateway_key(gateway_dir.path()),
    )
    .unwrap()
    .enroll(&device_id, &device_key.public_key())
    .unwrap();
    // A thousand signed payments, durable, never sent.
    fill_outbox(device_dir.path(), gateway_public, PAYMENTS, "Backlog");
    let mut gateway_child = gateway_process(&broker.url(), &gw);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config = DaemonConfig::new(
            DeviceProfile::embedded().unwrap(),
            device_dir.path().to_owned(),
            broker.url().parse().unwrap(),
        );
        config.connect_wait = Duration::from_secs(20);
        config.drain_wait = Duration::from_secs(120);
        // No input: the daemon connects, republishes its outbox and waits for
        // the answers.
        let (intake, source) = Source::channel(1);
        drop(intake);
        daemon::run(config, source, Box::new(Quiet), CancellationToken::new())
            .await
            .unwrap();
    });
    let status = gateway_child.terminate_within(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");

    let store = Store::open(&StoreConfig::new(device_dir.path().join("store"))).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 0, "the outbox drained");
    let paid = store
        .history()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, voicepay_device::store::HistoryEvent::Paid { .. }))
        .count();
    assert_eq!(paid, PAYMENTS);
    let entries = ledger(&gw);
    assert_eq!(entries.len(), PAYMENTS, "each payment charged once");
}
