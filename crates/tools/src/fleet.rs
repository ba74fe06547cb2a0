//! The gateway as a fleet runs it, for `voicepay bench`: `voicepay gateway run --share` processes on one PostgreSQL ledger behind a stock mosquitto, and how many requests a second they answer together.
//!
//! Everything is real and on this machine: the server and the broker from
//! Debian's packages, the workers as separate processes of this binary, and
//! a load of signed requests from thirty devices kept at most a window
//! ahead of the answers (a stock mosquitto queues 1,000 messages a client).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use super::postgres::TempPostgres;
use voicepay_core::clock::Stopwatch;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{
    self, ApprovalMethod, Envelope, Evidence, GatewayStatus, PaymentResponse, RequestBuilder,
    topics,
};
use voicepay_gateway::{Admin, GatewayConfig};

const DEVICES: usize = 30;
/// Requests in each round, whatever the number of workers.
const REQUESTS: usize = 3_000;
/// Unanswered at most at once.
const WINDOW: usize = 300;
/// How long a round may take before the figure is given up.
const ROUND_LIMIT: Duration = Duration::from_secs(300);
const GROUP: &str = "bench";

/// Requests answered a second, end to end, by 1, 2 and 3 worker processes.
pub fn answered_per_second(voicepay: &Path) -> Result<Vec<f64>> {
    let db = TempPostgres::start()?;
    let broker = Mosquitto::start()?;
    let keys = tempfile::tempdir()?;
    let key_file = keys.path().join("gateway.key");
    let gateway_key = SigningKey::create_file(&key_file)?.public_key();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut figures = Vec::new();
    for workers in 1..=3 {
        let devices = enroll(&db, workers)?;
        let homes = (0..workers)
            .map(|_| worker_home(&key_file))
            .collect::<Result<Vec<_>>>()?;
        let mut running = Workers(Vec::new());
        for home in &homes {
            running
                .0
                .push(spawn_worker(voicepay, home.path(), &broker, &db)?);
        }
        let rate = runtime.block_on(round(&broker, workers, &devices, gateway_key));
        running.stop();
        figures.push(rate?);
    }
    Ok(figures)
}

/// Thirty devices of this round, enrolled in the shared books.
fn enroll(db: &TempPostgres, round: usize) -> Result<Vec<(String, SigningKey)>> {
    let scratch = tempfile::tempdir()?;
    let mut config = GatewayConfig::new(scratch.path().to_owned());
    config.ledger = db.url().parse().map_err(anyhow::Error::msg)?;
    let books = Admin::open(&config)?;
    (0..DEVICES)
        .map(|i| {
            let id = format!("fleet-{round}-{i:02}");
            let key = SigningKey::generate()?;
            books.enroll(&id, &key.public_key())?;
            Ok((id, key))
        })
        .collect()
}

/// A worker's data directory, holding the one gateway key.
fn worker_home(key_file: &Path) -> Result<tempfile::TempDir> {
    let home = tempfile::tempdir()?;
    let key = std::fs::read(key_file)?;
    voicepay_core::durable::write_file(
        &home.path().join("gateway.key"),
        &key,
        0o600,
        voicepay_core::durable::Existing::Keep,
    )?;
    Ok(home)
}

fn spawn_worker(
    voicepay: &Path,
    home: &Path,
    broker: &Mosquitto,
    db: &TempPostgres,
) -> Result<Child> {
    Command::new(voicepay)
        .args([
            "gateway",
            "run",
            "--share",
            GROUP,
            "--broker",
            &broker.url(),
        ])
        .args(["--ledger", &db.url(), "--data-dir"])
        .arg(home)
        .env("VOICEPAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start a gateway worker ({})", voicepay.display()))
}

/// The workers of a round, stopped as a service manager does (SIGTERM),
/// and killed if they do not go.
struct Workers(Vec<Child>);

impl Workers {
    fn stop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for mut child in self.0.drain(..) {
            let stopped = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One round: wait until every worker says it is online, then send every
/// request (sent again if unanswered after a while) until each is answered.
async fn round(
    broker: &Mosquitto,
    workers: usize,
    devices: &[(String, SigningKey)],
    gateway_key: voicepay_core::keys::PublicKey,
) -> Result<f64> {
    let prefix = protocol::DEFAULT_PREFIX;
    let (client, mut incoming) = connect(broker.port).await?;
    client
        .subscribe(topics::gateway_statuses_filter(prefix), QoS::AtLeastOnce)
        .await?;
    client
        .subscribe(format!("{prefix}/devices/+/responses"), QoS::AtLeastOnce)
        .await?;
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    let mut online = HashSet::new();
    while online.len() < workers {
        let (topic, payload) = next(&mut incoming, deadline).await?;
        if topics::status_worker(prefix, &topic).is_some()
            && let Ok(status) = GatewayStatus::open(&payload, &gateway_key)
            && status.online()
        {
            online.insert(status.worker);
        }
    }
    let mut requests = Vec::with_capacity(REQUESTS);
    for seq in 1..=(REQUESTS / DEVICES) as u64 {
        for (id, key) in devices {
            let request = RequestBuilder::new(
                id,
                seq,
                Money::new(100, Currency::CNY),
                "Heytea",
                voicepay_core::clock::now_ms(),
            )
            .evidence(Evidence::new("pay Heytea", b"pcm", 0.9, "en"))
            .approved(ApprovalMethod::VoiceConfirm, Some("confirm".into()))
            .build();
            let sealed = Envelope::seal_json(&request, key)?.0.to_bytes();
            requests.push((request.request_id, topics::requests(prefix, id), sealed));
        }
    }
    let resend_after = Duration::from_secs(5);
    let mut sent_at = std::collections::HashMap::new();
    let mut answered = HashSet::new();
    let mut next_up = 0;
    let clock = Stopwatch::start();
    while answered.len() < requests.len() {
        let now = tokio::time::Instant::now();
        for (id, topic, sealed) in &requests[..next_up] {
            let overdue = sent_at.get(id).is_some_and(|at| now - *at > resend_after);
            if overdue && !answered.contains(id) {
                sent_at.insert(*id, now);
                client
                    .publish(topic, QoS::AtLeastOnce, false, sealed.clone())
                    .await?;
            }
        }
        while next_up < requests.len() && next_up - answered.len() < WINDOW {
            let (id, topic, sealed) = &requests[next_up];
            sent_at.insert(*id, now);
            client
                .publish(topic, QoS::AtLeastOnce, false, sealed.clone())
                .await?;
            next_up += 1;
        }
        let (topic, payload) = next(&mut incoming, deadline).await?;
        if !topic.ends_with("/responses") {
            continue;
        }
        let response: PaymentResponse = protocol::open(&payload, |kid| {
            (kid == gateway_key.key_id()).then_some(gateway_key)
        })?
        .parse()?;
        answered.insert(response.request_id);
    }
    let took = clock.elapsed().as_secs_f64();
    let _ = client.disconnect().await;
    Ok(requests.len() as f64 / took)
}

/// A client whose incoming publishes arrive on a channel (never full, so
/// its loop never stalls its own publishing).
async fn connect(port: u16) -> Result<(AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>)> {
    let id = format!("fleet-load-{}", uuid::Uuid::now_v7().simple());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, WINDOW);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event
                && tx.send((p.topic, p.payload.to_vec())).is_err()
            {
                return;
            }
        }
    });
    Ok((client, rx))
}

async fn next(
    incoming: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    deadline: tokio::time::Instant,
) -> Result<(String, Vec<u8>)> {
    match tokio::time::timeout_at(deadline, incoming.recv()).await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => bail!("the bench's MQTT client lost the broker"),
        Err(_) => bail!("the workers did not finish within {ROUND_LIMIT:?}"),
    }
}

/// A stock mosquitto (Debian's package) on a free loopback port, stopped on drop.
struct Mosquitto {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Result<Mosquitto> {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .context("no mosquitto (scripts/setup.sh installs it)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start mosquitto")?;
        let broker = Mosquitto {
            port,
            child,
            _dir: dir,
        };
        let listening = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !listening {
            bail!("mosquitto is not listening on port {port}");
        }
        Ok(broker)
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
