//! The gateway's PostgreSQL ledger against a real PostgreSQL (Debian's, started for each test): the same decisions as the embedded ledger, kept once, shared by several gateways at once.

use std::sync::Arc;

use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{
    self, ApprovalMethod, Envelope, Evidence, PaymentRequest, RequestBuilder, ResponseStatus,
    topics,
};
use voicepay_gateway::{Gateway, GatewayConfig};
use voicepay_tools::postgres::TempPostgres;

const DEVICE: &str = "car-7";

struct Worker {
    gateway: Gateway,
    _dir: tempfile::TempDir,
}

/// A gateway process's books: its own data directory (for its key), the
/// shared database for everything else.
fn worker(db: &TempPostgres, key_file: &std::path::Path, limit: Option<Money>) -> Worker {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = GatewayConfig::new(dir.path().to_owned());
    config.ledger = db.url().parse().expect("a PostgreSQL URL");
    config.daily_limit = limit;
    let key = SigningKey::load_file(key_file).expect("gateway key");
    Worker {
        gateway: Gateway::open(config, key).expect("the books open on PostgreSQL"),
        _dir: dir,
    }
}

fn request(device: &SigningKey, seq: u64, minor: i64) -> Vec<u8> {
    let request: PaymentRequest = RequestBuilder::new(
        DEVICE,
        seq,
        Money::new(minor, Currency::CNY),
        "Heytea",
        voicepay_core::clock::now_ms(),
    )
    .evidence(Evidence::new("pay Heytea", b"pcm", 0.9, "en"))
    .approved(ApprovalMethod::VoiceConfirm, Some("confirm".into()))
    .build();
    Envelope::seal_json(&request, device)
        .expect("seal")
        .0
        .to_bytes()
}

struct Setup {
    db: TempPostgres,
    keys: tempfile::TempDir,
    device: SigningKey,
    topic: String,
}

impl Setup {
    fn new() -> Setup {
        let db = TempPostgres::start().expect("PostgreSQL starts (scripts/setup.sh installs it)");
        let keys = tempfile::tempdir().expect("tempdir");
        SigningKey::create_file(&keys.path().join("gateway.key")).expect("key");
        Setup {
            db,
            keys,
            device: SigningKey::generate().expect("device key"),
            topic: topics::requests(protocol::DEFAULT_PREFIX, DEVICE),
        }
    }

    fn worker(&self, limit: Option<Money>) -> Worker {
        worker(&self.db, &self.keys.path().join("gateway.key"), limit)
    }
}

#[test]
fn a_request_is_charged_once_in_postgres_and_its_repeat_gets_the_identical_signed_answer() {
    let s = Setup::new();
    let w = s.worker(None);
    w.gateway
        .enroll(DEVICE, &s.device.public_key())
        .expect("enroll");
    let message = request(&s.device, 1, 3_600);
    let first = w
        .gateway
        .handle(&s.topic, &message, voicepay_core::clock::now_ms());
    let first = first.expect("answered");
    assert_eq!(first.response.status, ResponseStatus::Approved);
    let again = w
        .gateway
        .handle(&s.topic, &message, voicepay_core::clock::now_ms())
        .expect("answered again");
    assert!(again.repeated);
    assert_eq!(again.message, first.message);
    let ledger = w.gateway.ledger().expect("ledger");
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].amount, Money::new(3_600, Currency::CNY));
    // What an operator sees in the database is the same.
    let rows =
        s.db.psql("SELECT count(*) FROM ledger; SELECT count(*) FROM answers")
            .expect("psql");
    assert_eq!(rows, "1\n1\n");
}

#[test]
fn a_device_enrolled_through_one_gateway_is_served_by_another_and_sees_its_answers() {
    let s = Setup::new();
    let (a, b) = (s.worker(None), s.worker(None));
    a.gateway
        .enroll(DEVICE, &s.device.public_key())
        .expect("enroll");
    let message = request(&s.device, 1, 500);
    let now = voicepay_core::clock::now_ms();
    let first = b
        .gateway
        .handle(&s.topic, &message, now)
        .expect("b answers");
    assert_eq!(first.response.status, ResponseStatus::Approved);
    // The same request delivered again, to the other worker.
    let again = a
        .gateway
        .handle(&s.topic, &message, now)
        .expect("a answers");
    assert!(again.repeated);
    assert_eq!(again.message, first.message);
    assert_eq!(a.gateway.ledger().expect("ledger").len(), 1);
}

#[test]
fn two_workers_deciding_for_one_device_at_once_cannot_overspend_its_day() {
    let s = Setup::new();
    let limit = Money::new(10_000, Currency::CNY);
    let workers: Vec<_> = (0..2).map(|_| Arc::new(s.worker(Some(limit)))).collect();
    workers[0]
        .gateway
        .enroll(DEVICE, &s.device.public_key())
        .expect("enroll");
    // 40 requests of 10 yuan, 20 to each worker, all at once: 10 fit the day.
    let requests: Vec<_> = (1..=40).map(|seq| request(&s.device, seq, 1_000)).collect();
    let threads: Vec<_> = requests
        .chunks(20)
        .zip(&workers)
        .map(|(chunk, worker)| {
            let (chunk, worker, topic) = (chunk.to_vec(), worker.clone(), s.topic.clone());
            std::thread::spawn(move || {
                chunk
                    .iter()
                    .map(|m| {
                        let now = voicepay_core::clock::now_ms();
                        worker.gateway.handle(&topic, m, now).expect("answered")
                    })
                    .filter(|reply| reply.response.status == ResponseStatus::Approved)
                    .count()
            })
        })
        .collect();
    let approved: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(approved, 10, "exactly the day's limit was approved");
    let ledger = workers[0].gateway.ledger().expect("ledger");
    let charged: i64 = ledger.iter().map(|e| e.amount.minor).sum();
    assert_eq!(charged, limit.minor);
    assert_eq!(
        s.db.psql("SELECT spent FROM daily_spend").expect("psql"),
        "10000\n"
    );
}

#[test]
fn gateways_starting_at_once_on_an_empty_database_create_its_schema_once() {
    let s = Setup::new();
    let key_file = s.keys.path().join("gateway.key");
    let db_url = s.db.url();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (key_file, db_url) = (key_file.clone(), db_url.clone());
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut config = GatewayConfig::new(dir.path().to_owned());
                config.ledger = db_url.parse().expect("a PostgreSQL URL");
                let key = SigningKey::load_file(&key_file).expect("key");
                Gateway::open(config, key).map(|_| ())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .expect("thread")
            .expect("each opens the books");
    }
    assert_eq!(
        s.db.psql("SELECT version FROM voicepay_migrations ORDER BY version")
            .expect("psql"),
        "1\n2\n",
        "each step applied once"
    );
}

#[test]
fn status_sessions_from_several_gateways_only_grow() {
    let s = Setup::new();
    let (a, b) = (s.worker(None), s.worker(None));
    let now = voicepay_core::clock::now_ms();
    let first = a.gateway.next_session(now).expect("session");
    let second = b.gateway.next_session(now).expect("session");
    // A clock stepped back changes nothing.
    let third = a.gateway.next_session(now - 60_000).expect("session");
    assert!(first < second && second < third, "{first} {second} {third}");
}

#[test]
fn a_gateway_given_an_unreachable_database_says_so() {
    let s = Setup::new();
    let url = s.db.url();
    drop(s);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = GatewayConfig::new(dir.path().to_owned());
    config.ledger = url.parse().expect("a PostgreSQL URL");
    let error = Gateway::open(config, SigningKey::generate().expect("key"))
        .err()
        .expect("no database there");
    let said = error.to_string();
    assert!(said.contains("PostgreSQL"), "{said}");
}

#[test]
fn a_gateway_answers_again_after_its_postgres_restarts_and_charges_nothing_twice() {
    let mut s = Setup::new();
    let w = s.worker(None);
    w.gateway
        .enroll(DEVICE, &s.device.public_key())
        .expect("enroll");
    let now = voicepay_core::clock::now_ms;
    let before = request(&s.device, 1, 100);
    let first = w
        .gateway
        .handle(&s.topic, &before, now())
        .expect("answered");

    s.db.stop().expect("PostgreSQL stops");
    let during = request(&s.device, 2, 200);
    let refused = w.gateway.handle(&s.topic, &during, now());
    let said = refused.expect_err("no books, no answer").to_string();
    assert!(
        said.contains("PostgreSQL") || said.contains("connection"),
        "{said}"
    );

    s.db.start_again().expect("PostgreSQL starts again");
    // The device asks again; the gateway connects again and decides.
    let after = w
        .gateway
        .handle(&s.topic, &during, now())
        .expect("answered after the restart");
    assert_eq!(after.response.status, ResponseStatus::Approved);
    let again = w
        .gateway
        .handle(&s.topic, &before, now())
        .expect("answered");
    assert!(again.repeated);
    assert_eq!(again.message, first.message);
    assert_eq!(w.gateway.ledger().expect("ledger").len(), 2);
}

#[test]
fn a_daily_limit_set_in_the_database_binds_every_running_worker_at_its_next_decision() {
    let s = Setup::new();
    let (a, b) = (s.worker(None), s.worker(None));
    a.gateway
        .enroll(DEVICE, &s.device.public_key())
        .expect("enroll");
    let now = voicepay_core::clock::now_ms();
    let status = |w: &Worker, seq, minor| {
        let reply = w
            .gateway
            .handle(&s.topic, &request(&s.device, seq, minor), now);
        reply.expect("answered").response.status
    };
    assert_eq!(status(&a, 1, 3_000), ResponseStatus::Approved);
    // An operator sets the limit with the books alone: no gateway key.
    let mut config = GatewayConfig::new(tempfile::tempdir().unwrap().path().to_owned());
    config.ledger = s.db.url().parse().unwrap();
    let admin = voicepay_gateway::Admin::open(&config).expect("the books alone");
    assert_eq!(admin.daily_limit().unwrap(), None);
    let limit = Money::new(5_000, Currency::CNY);
    admin.set_daily_limit(Some(limit)).unwrap();
    assert_eq!(b.gateway.admin().daily_limit().unwrap(), Some(limit));
    // 30 spent: 30 more is over it on either worker, 20 fits.
    assert_eq!(status(&b, 2, 3_000), ResponseStatus::Declined);
    assert_eq!(status(&a, 3, 3_000), ResponseStatus::Declined);
    assert_eq!(status(&b, 4, 2_000), ResponseStatus::Approved);
    // Lifted, it binds nobody.
    admin.set_daily_limit(None).unwrap();
    assert_eq!(status(&a, 5, 3_000), ResponseStatus::Approved);
    assert_eq!(a.gateway.ledger().unwrap().len(), 3);
    assert!(
        admin
            .set_daily_limit(Some(Money::new(-1, Currency::CNY)))
            .is_err(),
        "a limit below zero"
    );
}

#[test]
fn a_ledger_made_by_the_first_schema_is_brought_up_to_date_and_keeps_its_books() {
    let s = Setup::new();
    // The books as the first release left them: schema step 1 only, one
    // device enrolled and one payment charged.
    let first = include_str!("../crates/gateway/migrations/0001_books.sql");
    s.db.psql(&format!(
        "CREATE TABLE voicepay_migrations (
           version INTEGER PRIMARY KEY,
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
         {first}
         INSERT INTO voicepay_migrations (version) VALUES (1);"
    ))
    .expect("the first schema");
    let key = s.device.public_key();
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    s.db.psql(&format!(
        "INSERT INTO devices (device_id, public_key) VALUES ('{DEVICE}', decode('{hex}', 'hex'))"
    ))
    .expect("a device enrolled then");

    let w = s.worker(None);
    let steps =
        s.db.psql("SELECT version FROM voicepay_migrations ORDER BY version");
    assert_eq!(
        steps.expect("psql"),
        "1\n2\n",
        "step 2 applied once, on top"
    );
    let now = voicepay_core::clock::now_ms();
    let paid = w
        .gateway
        .handle(&s.topic, &request(&s.device, 1, 3_000), now);
    assert_eq!(
        paid.expect("served").response.status,
        ResponseStatus::Approved
    );
    let limit = Money::new(4_000, Currency::CNY);
    w.gateway.admin().set_daily_limit(Some(limit)).unwrap();
    let over = w
        .gateway
        .handle(&s.topic, &request(&s.device, 2, 3_000), now);
    assert_eq!(
        over.expect("served").response.status,
        ResponseStatus::Declined
    );
}
