//! One installation in one process, what the demo, the latency benchmark and the end-to-end tests all stand on: fresh keys for a device and its gateway paired as an integrator would, the reference gateway serving as a task, and daemons started on it (fed audio through the transcriber, or typed text).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::policy::Limits;
use voicepay_core::protocol;
use voicepay_core::transport::BrokerUrl;
use voicepay_device::audio::read_wav;
use voicepay_device::audio::source::Input;
use voicepay_device::daemon::{self, DaemonConfig, DaemonError};
use voicepay_device::feedback::{Event, Feedback, Status};
use voicepay_device::identity;
use voicepay_device::intent::ParseContext;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{self, Heard, Intake, Recognizer, Source};
use voicepay_device::store::{Store, StoreConfig};
use voicepay_gateway::{Gateway, GatewayConfig, LedgerEntry};

/// How long a wait for a state may take before it fails: it only catches a
/// hang, so it is generous (on a loaded 2-core machine hearing one clip has
/// taken over 10 s).
pub const WAIT: Duration = Duration::from_secs(120);

/// A device and its gateway, keys on disk and paired, on one broker;
/// nothing running until asked.
pub struct Installation {
    pub device_id: String,
    pub device_public: PublicKey,
    pub gateway_public: PublicKey,
    pub broker: BrokerUrl,
    /// The topics' prefix, the gateway's and every daemon's started here.
    pub prefix: String,
    /// The device's data: its key, its trust in the gateway, its store.
    pub device_dir: PathBuf,
    pub gateway_dir: PathBuf,
    _work: tempfile::TempDir,
}

impl Installation {
    /// Both sides' data in a temporary directory.
    pub fn new(broker: BrokerUrl, prefix: &str) -> Result<Installation> {
        Installation::build(broker, prefix, None)
    }

    /// With the device's data in `device_dir` (a disk of the caller's own).
    pub fn with_device_dir(broker: BrokerUrl, prefix: &str, device_dir: &Path) -> Result<Self> {
        Installation::build(broker, prefix, Some(device_dir.to_owned()))
    }

    fn build(broker: BrokerUrl, prefix: &str, device_dir: Option<PathBuf>) -> Result<Self> {
        let work = tempfile::tempdir().context("temporary data directory")?;
        let gateway_dir = work.path().join("gateway");
        let device_dir = device_dir.unwrap_or_else(|| work.path().join("device"));
        std::fs::create_dir_all(&gateway_dir)?;
        // Paired as an integrator would: the gateway enrols the device's
        // public key, the device trusts the gateway's.
        let gateway_key = SigningKey::create_file(&gateway_dir.join("gateway.key"))?;
        let gateway_public = gateway_key.public_key();
        let device_public = identity::init_device_key(&device_dir)?.public_key();
        let device_id = protocol::device_id_for(&device_public);
        identity::trust_gateway(&device_dir, &gateway_public)?;
        let home = Installation {
            device_id,
            device_public,
            gateway_public,
            broker,
            prefix: prefix.to_owned(),
            device_dir,
            gateway_dir,
            _work: work,
        };
        Gateway::open(home.gateway_config(), gateway_key)?
            .enroll(&home.device_id, &home.device_public)?;
        Ok(home)
    }

    /// The gateway's configuration as its own process would have it.
    pub fn gateway_config(&self) -> GatewayConfig {
        let mut config = GatewayConfig::new(self.gateway_dir.clone());
        config.prefix = self.prefix.clone();
        config
    }

    pub fn gateway_key(&self) -> Result<SigningKey> {
        Ok(voicepay_gateway::load_key(&self.gateway_config())?)
    }

    /// The gateway's books (free only while no gateway serves).
    pub fn open_gateway(&self, config: GatewayConfig) -> Result<Gateway> {
        Ok(Gateway::open(config, self.gateway_key()?)?)
    }

    /// What the gateway charged (free only while no gateway serves).
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>> {
        Ok(self.open_gateway(self.gateway_config())?.ledger()?)
    }

    /// The reference gateway serving on the installation's broker.
    pub fn start_gateway(&self) -> Result<RunningGateway> {
        self.start_gateway_with(self.gateway_config())
    }

    pub fn start_gateway_with(&self, config: GatewayConfig) -> Result<RunningGateway> {
        let gateway = self.open_gateway(config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let broker = self.broker.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            voicepay_gateway::run(gateway, &broker, shutdown)
                .await
                .map_err(anyhow::Error::from)
        });
        Ok(RunningGateway { _stop: stop, task })
    }

    /// The device's store (free only while no daemon runs: sled locks it).
    pub fn store(&self) -> Result<Store> {
        Store::open(&StoreConfig::new(self.device_dir.join("store")))
            .context("opening the device store")
    }

    pub fn set_limits(&self, limits: &Limits) -> Result<()> {
        Ok(self.store()?.set_limits(limits)?)
    }

    /// A daemon's configuration on this installation, its prefix the
    /// installation's.
    pub fn daemon_config(&self, mut profile: DeviceProfile) -> DaemonConfig {
        profile.mqtt.prefix = self.prefix.clone();
        DaemonConfig::new(profile, self.device_dir.clone(), self.broker.clone())
    }

    /// The daemon on `source`, its status watched as it changes.
    pub fn start_daemon(
        &self,
        config: DaemonConfig,
        source: Source,
        feedback: Box<dyn Feedback>,
    ) -> RunningDaemon {
        let (status_tx, status) = watch::channel(Status::default());
        let feedback = Box::new(Watched {
            inner: feedback,
            status: status_tx,
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(daemon::run(config, source, feedback, shutdown.clone()));
        RunningDaemon {
            status,
            shutdown,
            task,
        }
    }

    /// The daemon fed typed text, every event recorded.
    pub fn typed(&self, config: DaemonConfig) -> Typed {
        let context = config.profile.parse_context();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (intake, source) = Source::channel(4);
        let RunningDaemon {
            status,
            shutdown,
            task,
        } = self.start_daemon(config, source, Box::new(Recorder(events_tx)));
        Typed {
            intake,
            events,
            context,
            status,
            shutdown,
            task,
        }
    }
}

/// A gateway task; dropping the handle asks it to stop.
pub struct RunningGateway {
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningGateway {
    /// Asks it to stop and waits until it has said so and let go of its books.
    pub async fn stop(self) -> Result<()> {
        let RunningGateway { _stop, task } = self;
        drop(_stop);
        task.await.context("the gateway task")?
    }
}

/// A daemon task and its status as it changes.
pub struct RunningDaemon {
    pub status: watch::Receiver<Status>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

/// A daemon fed typed text through `intake`, its events in `events`.
pub struct Typed {
    pub intake: Intake,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub context: ParseContext,
    pub status: watch::Receiver<Status>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl Typed {
    /// Hands `text` over as heard. A test's harness: it fails loudly, here
    /// when the daemon has gone.
    pub async fn say(&self, text: &str) {
        self.intake.arriving();
        let heard = Heard::typed("typed", text, &self.context);
        assert!(self.intake.send(heard).await, "the daemon took {text:?}");
    }

    /// The next event that `pick` accepts, skipping the others; fails if
    /// none comes within [`WAIT`].
    pub async fn next<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(event) = self.events.recv().await {
                if let Some(found) = pick(&event) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => found,
            Ok(None) => panic!("the daemon stopped before the awaited event"),
            Err(_) => panic!("the awaited event did not come within {WAIT:?}"),
        }
    }

    /// Cancels the daemon; fails unless it stops cleanly within `limit`.
    pub async fn stop_within(self, limit: Duration) {
        self.shutdown.cancel();
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => panic!("the daemon failed: {error}"),
            Ok(Err(error)) => panic!("the daemon task failed: {error}"),
            Err(_) => panic!("the daemon did not stop within {limit:?}"),
        }
    }
}

/// Waits until `done` holds for the daemon's status, at most `limit`.
pub async fn until(
    status: &mut watch::Receiver<Status>,
    limit: Duration,
    done: impl Fn(&Status) -> bool,
) -> bool {
    tokio::time::timeout(limit, status.wait_for(|s| done(s)))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Hands every event on.
pub struct Recorder(pub mpsc::UnboundedSender<Event>);

impl Feedback for Recorder {
    fn event(&mut self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}

/// Forwards events and keeps the status watch current.
struct Watched {
    inner: Box<dyn Feedback>,
    status: watch::Sender<Status>,
}

impl Feedback for Watched {
    fn event(&mut self, event: &Event) {
        self.inner.event(event);
    }

    fn status(&mut self, status: &Status) {
        self.inner.status(status);
        self.status.send_replace(*status);
    }
}

/// An installation running: its gateway, and a daemon fed audio through
/// the transcriber.
pub struct Rig {
    pub home: Installation,
    /// The daemon's status, updated as it changes.
    pub status: watch::Receiver<Status>,
    inputs: Option<mpsc::Sender<Input>>,
    /// Utterances handed to the daemon so far.
    sent: u64,
    shutdown: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), DaemonError>>,
    gateway: Option<RunningGateway>,
}

impl Rig {
    /// `broker`: a running one, or `None` to start the embedded one. The
    /// device starts with `limits` and `agents` registered.
    pub fn start(
        profile: DeviceProfile,
        broker: Option<BrokerUrl>,
        limits: &Limits,
        agents: &[voicepay_core::agent::Agent],
        recognizer: Recognizer,
        feedback: Box<dyn Feedback>,
    ) -> Result<Rig> {
        let broker = match broker {
            Some(url) => url,
            None => super::broker::start_embedded()?,
        };
        let home = Installation::new(broker, &profile.mqtt.prefix)?;
        // Set before the daemon opens the store (sled locks it).
        let store = home
            .store()
            .context("opening the device store to set its limits")?;
        store.set_limits(limits)?;
        for agent in agents {
            voicepay_device::agents::add(&store, agent.clone())?;
        }
        drop(store);
        let gateway = home.start_gateway()?;
        let config = home.daemon_config(profile);
        let (inputs, audio) = mpsc::channel(8);
        let source = recognizer::spawn(
            recognizer
                .with_payees(config.payees.clone())
                .with_listening(config.listening.clone()),
            audio,
        );
        let RunningDaemon {
            status,
            shutdown,
            task,
        } = home.start_daemon(config, source, feedback);
        Ok(Rig {
            home,
            status,
            inputs: Some(inputs),
            sent: 0,
            shutdown,
            daemon: task,
            gateway: Some(gateway),
        })
    }

    /// Hands the WAV file to the daemon as the next utterance.
    pub async fn hear(&mut self, file: &Path) -> Result<()> {
        let utterance = read_wav(file)?;
        self.hear_utterance(file, utterance).await
    }

    /// An utterance already read (the bench times from the hand-over).
    pub async fn hear_utterance(
        &mut self,
        file: &Path,
        utterance: voicepay_device::audio::Utterance,
    ) -> Result<()> {
        let input = Input::Utterance {
            name: file.display().to_string(),
            utterance,
            arrived: tokio::time::Instant::now(),
        };
        let inputs = self.inputs.as_ref().context("the rig's input is closed")?;
        inputs
            .send(input)
            .await
            .map_err(|_| anyhow::anyhow!("the daemon stopped"))?;
        self.sent += 1;
        Ok(())
    }

    /// Publishes a signed agent task to the device, as its agent would.
    pub async fn send_task(&self, message: Vec<u8>) -> Result<()> {
        use rumqttc::v5::Event;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::Packet;
        let home = &self.home;
        let topic = protocol::topics::tasks(&home.prefix, &home.device_id);
        let client_id = format!("rig-agent-{}", uuid::Uuid::now_v7().simple());
        // MQTT 5, as the daemon and the gateway: the embedded broker speaks it.
        let (client, mut eventloop) =
            rumqttc::v5::AsyncClient::new(home.broker.options_v5(&client_id), 8);
        client
            .publish(topic, QoS::AtLeastOnce, false, message)
            .await?;
        // Until the broker has taken it.
        let delivered = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        let _ = client.disconnect().await;
        match delivered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => anyhow::bail!("the broker did not take the task in 10 s"),
        }
    }

    /// Waits until `done` holds for the daemon's status, at most `limit`.
    pub async fn until(&mut self, limit: Duration, done: impl Fn(&Status) -> bool) -> bool {
        until(&mut self.status, limit, done).await
    }

    /// Waits until everything handed over was heard and nothing waits for an answer.
    pub async fn settled(&mut self, limit: Duration) -> bool {
        let sent = self.sent;
        self.until(limit, |s| s.heard >= sent && s.outbox == 0)
            .await
    }

    /// Waits until everything handed over was heard.
    pub async fn heard_all(&mut self, limit: Duration) -> bool {
        let sent = self.sent;
        self.until(limit, |s| s.heard >= sent).await
    }

    pub async fn stop_gateway(&mut self) -> Result<()> {
        match self.gateway.take() {
            Some(gateway) => gateway.stop().await,
            None => Ok(()),
        }
    }

    pub fn start_gateway(&mut self) -> Result<()> {
        self.gateway = Some(self.home.start_gateway()?);
        Ok(())
    }

    /// Ends the input, lets the daemon finish and stop, then the gateway;
    /// returns the device's store, free to open now.
    pub async fn stop(mut self) -> Result<Store> {
        self.inputs = None;
        let finished = tokio::time::timeout(Duration::from_secs(30), &mut self.daemon).await;
        if finished.is_err() {
            self.shutdown.cancel();
            let _ = (&mut self.daemon).await;
        }
        if let Err(error) = self.stop_gateway().await {
            tracing::error!(%error, "gateway stopped");
        }
        match finished {
            Ok(Ok(result)) => result.context("the daemon")?,
            Ok(Err(error)) => anyhow::bail!("the daemon task failed: {error}"),
            Err(_) => anyhow::bail!("the daemon did not finish in 30 s"),
        }
        self.home.store().context("reopening the device store")
    }
}
