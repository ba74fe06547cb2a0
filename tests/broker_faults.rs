//! A broker that dies again and again: mosquitto is killed and restarted at random while payments flow, and every payment the daemon committed ends in the gateway's ledger exactly once.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use util::*;
use uuid::Uuid;
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Limits;
use voicepay_core::protocol::ResponseStatus;
use voicepay_device::feedback::{Event, Feedback};
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{Heard, Source};
use voicepay_device::store::HistoryEvent;
use voicepay_tools::rig::{Installation, WAIT};

/// 50 in CI; more in a nightly-style run.
fn restarts() -> u32 {
    std::env::var("VOICEPAY_BROKER_RESTARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

/// What the daemon committed and what the gateway approved, by request id.
struct Tally(mpsc::UnboundedSender<(Uuid, bool)>);

impl Feedback for Tally {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Sent { request_id, .. } => {
                let _ = self.0.send((*request_id, false));
            }
            Event::Answer {
                request_id,
                status: ResponseStatus::Approved,
                ..
            } => {
                let _ = self.0.send((*request_id, true));
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_payment_is_charged_once_while_the_broker_is_killed_and_restarted_at_random()
 {
    let port = free_port();
    let mut broker = Some(Broker::start_on(port));
    let url = format!("mqtt://127.0.0.1:{port}").parse().unwrap();
    let home = Installation::new(url, voicepay_core::protocol::DEFAULT_PREFIX).unwrap();
    home.set_limits(&Limits {
        auto_pay: Money::new(1_000, Currency::CNY),
        ..Limits::default()
    })
    .unwrap();
    let gateway = home.start_gateway().unwrap();

    let profile = DeviceProfile::embedded().unwrap();
    let context = profile.parse_context();
    let mut config = home.daemon_config(profile);
    config.drain_wait = Duration::from_secs(120);
    let (tally_tx, mut tally) = mpsc::unbounded_channel();
    let (intake, source) = Source::channel(4);
    let daemon = home.start_daemon(config, source, Box::new(Tally(tally_tx)));

    // A user paying a yuan every 150 ms, whatever the broker is doing.
    let paying = CancellationToken::new();
    let payer = {
        let paying = paying.clone();
        tokio::spawn(async move {
            while !paying.is_cancelled() {
                intake.arriving();
                let heard = Heard::typed("typed", "Pay 1 yuan to Heytea.", &context);
                if !intake.send(heard).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            // Dropping the intake ends the input: the daemon drains.
        })
    };

    // xorshift: the same spread of faults every run.
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move |range: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % range
    };
    let (mut committed, mut approved) = (HashSet::new(), HashSet::new());
    let mut record = |(id, is_answer): (Uuid, bool)| {
        if is_answer {
            approved.insert(id)
        } else {
            committed.insert(id)
        }
    };
    for _ in 0..restarts() {
        // Payments flow between faults: one more committed first, however
        // slow the machine; then a fault at a random point.
        loop {
            let tallied = tokio::time::timeout(WAIT, tally.recv()).await;
            let (id, is_answer) = tallied
                .expect("a payment was committed between faults")
                .unwrap();
            if record((id, is_answer)) && !is_answer {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200 + next(700))).await;
        drop(broker.take()); // SIGKILL: no will, no goodbye
        tokio::time::sleep(Duration::from_millis(50 + next(250))).await;
        broker = Some(Broker::start_on(port));
    }
    paying.cancel();
    payer.await.unwrap();
    tokio::time::timeout(Duration::from_secs(180), daemon.task)
        .await
        .expect("the daemon drained its outbox")
        .unwrap()
        .unwrap();
    gateway.stop().await.unwrap();

    while let Ok(tallied) = tally.try_recv() {
        record(tallied);
    }
    let store = home.store().unwrap();
    assert!(store.outbox().unwrap().is_empty(), "the outbox drained");
    let ledger = home.ledger().unwrap();
    let charged: Vec<Uuid> = ledger.iter().map(|e| e.request_id).collect();
    let charged_once: HashSet<Uuid> = charged.iter().copied().collect();
    assert_eq!(
        charged_once.len(),
        charged.len(),
        "a payment was charged twice"
    );
    assert_eq!(
        charged_once, committed,
        "every committed payment charged, once"
    );
    assert_eq!(approved, committed, "and the device heard every answer");
    let paid: HashSet<Uuid> = store
        .history()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.event {
            HistoryEvent::Paid { request_id, .. } => Some(*request_id),
            _ => None,
        })
        .collect();
    assert_eq!(paid, committed, "the history agrees with the ledger");
    assert!(
        committed.len() >= 50,
        "payments flowed: {}",
        committed.len()
    );
    eprintln!(
        "{} broker restarts: {} payments committed, each charged once",
        restarts(),
        committed.len()
    );
}

/// Regression (CI, 2026-12-06): while the daemon waited for answers after
/// its input ended, a broker that died went unnoticed, and `voicepay
/// status` said "gateway away" for as long as the daemon drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_dies_while_the_daemon_drains_shows_as_offline() {
    let broker = Broker::start();
    let url = broker.url().parse().unwrap();
    let home = Installation::new(url, voicepay_core::protocol::DEFAULT_PREFIX).unwrap();
    // One payment waits for an answer; no gateway runs to give it.
    fill_outbox(&home.device_dir, home.gateway_public, 1, "Alice");
    let mut config = home.daemon_config(DeviceProfile::embedded().unwrap());
    config.drain_wait = Duration::from_secs(600);
    // No input at all: the daemon goes straight to draining its outbox.
    let (intake, source) = Source::channel(1);
    drop(intake);
    let mut daemon = home.start_daemon(config, source, Box::new(voicepay_device::feedback::Quiet));
    let connected = tokio::time::timeout(WAIT, daemon.status.wait_for(|s| s.link.broker))
        .await
        .map(|seen| seen.map(|status| *status));
    let connected = connected
        .expect("the draining daemon reached the broker")
        .unwrap();
    assert!(!connected.link.gateway, "no gateway runs");

    drop(broker);
    let offline = tokio::time::timeout(WAIT, daemon.status.wait_for(|s| !s.link.broker))
        .await
        .map(|seen| seen.map(|status| *status));
    let offline = offline
        .expect("the daemon still says it has a broker")
        .unwrap();
    assert_eq!(offline.outbox, 1, "the payment still waits");
    daemon.shutdown.cancel();
    daemon.task.await.unwrap().unwrap();
}
