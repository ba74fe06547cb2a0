//! A whole installation in one process: fresh keys, a broker, the reference gateway and a paired daemon fed through its transcriber stage; what the demo and the latency benchmark run on.

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
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::{Event, Feedback, Status};
use voicepay_device::identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{self, Recognizer};
use voicepay_device::store::{Store, StoreConfig};
use voicepay_gateway::{Gateway, GatewayConfig};

pub struct Rig {
    pub device_id: String,
    pub device_public: PublicKey,
    pub gateway_public: PublicKey,
    pub broker: BrokerUrl,
    prefix: String,
    /// The daemon's status, updated as it changes.
    pub status: watch::Receiver<Status>,
    device_dir: PathBuf,
    inputs: Option<mpsc::Sender<Input>>,
    /// Utterances handed to the daemon so far.
    sent: u64,
    shutdown: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
    gateway_config: GatewayConfig,
    gateway: Option<GatewayTask>,
    _work: tempfile::TempDir,
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
        let work = tempfile::tempdir().context("temporary data directory")?;
        let broker = match broker {
            Some(url) => url,
            None => super::broker::start_embedded()?,
        };
        // Fresh keys for both sides, paired as an integrator would.
        let gateway_dir = work.path().join("gateway");
        let device_dir = work.path().join("device");
        std::fs::create_dir_all(&gateway_dir)?;
        let gateway_key = SigningKey::create_file(&gateway_dir.join("gateway.key"))?;
        let gateway_public = gateway_key.public_key();
        let device_key = identity::init_device_key(&device_dir)?;
        let device_public = device_key.public_key();
        let device_id = protocol::device_id_for(&device_public);
        identity::trust_gateway(&device_dir, &gateway_public)?;
        let mut gateway_config = GatewayConfig::new(gateway_dir);
        gateway_config.prefix = profile.mqtt.prefix.clone();
        Gateway::open(gateway_config.clone(), gateway_key)?.enroll(&device_id, &device_public)?;
        // Set before the daemon opens the store (sled locks it).
        let store = Store::open(&StoreConfig::new(device_dir.join("store")))
            .context("opening the device store to set its limits")?;
        store.set_limits(limits)?;
        for agent in agents {
            voicepay_device::agents::add(&store, agent.clone())?;
        }
        drop(store);
        let gateway = GatewayTask::start(&gateway_config, &broker)?;

        let (status_tx, status) = watch::channel(Status::default());
        let feedback = Box::new(Watched {
            inner: feedback,
            status: status_tx,
        });
        let prefix = profile.mqtt.prefix.clone();
        let config = DaemonConfig::new(profile, device_dir.clone(), broker.clone());
        let (inputs, audio) = mpsc::channel(8);
        let source = recognizer::spawn(
            recognizer
                .with_payees(config.payees.clone())
                .with_listening(config.listening.clone()),
            audio,
        );
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(daemon::run(config, source, feedback, shutdown.clone()));
        Ok(Rig {
            device_id,
            device_public,
            gateway_public,
            broker,
            prefix,
            status,
            device_dir,
            inputs: Some(inputs),
            sent: 0,
            shutdown,
            daemon,
            gateway_config,
            gateway: Some(gateway),
            _work: work,
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
        let topic = protocol::topics::tasks(&self.prefix, &self.device_id);
        let client_id = format!("rig-agent-{}", uuid::Uuid::now_v7().simple());
        // MQTT 5, as the daemon and the gateway: the embedded broker speaks it.
        let (client, mut eventloop) =
            rumqttc::v5::AsyncClient::new(self.broker.options_v5(&client_id), 8);
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
        tokio::time::timeout(limit, self.status.wait_for(|s| done(s)))
            .await
            .is_ok_and(|r| r.is_ok())
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

    pub async fn stop_gateway(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.stop().await;
        }
    }

    pub fn start_gateway(&mut self) -> Result<()> {
        self.gateway = Some(GatewayTask::start(&self.gateway_config, &self.broker)?);
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
        self.stop_gateway().await;
        match finished {
            Ok(Ok(result)) => result.context("the daemon")?,
            Ok(Err(error)) => anyhow::bail!("the daemon task failed: {error}"),
            Err(_) => anyhow::bail!("the daemon did not finish in 30 s"),
        }
        let store = Store::open(&StoreConfig::new(self.device_dir.join("store")))
            .context("reopening the device store")?;
        Ok(store)
    }
}

/// The reference gateway serving in this process.
struct GatewayTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayTask {
    fn start(config: &GatewayConfig, broker: &BrokerUrl) -> Result<Self> {
        let key = voicepay_gateway::load_key(config)?;
        let gateway = Gateway::open(config.clone(), key)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let broker = broker.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = voicepay_gateway::run(gateway, &broker, shutdown).await {
                tracing::error!(%error, "gateway stopped");
            }
        });
        Ok(Self {
            stop: Some(stop),
            task,
        })
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
