//! `voicepay demo`: the whole flow in one process on the bundled fixtures, with fresh keys, an embedded broker, the gateway and the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::audio::read_wav;
use crate::daemon::{Console, DaemonConfig, Device, Feedback};
use crate::gateway::{self, Gateway, GatewayConfig};
use crate::identity;
use crate::keys::PublicKey;
use crate::keys::SigningKey;
use crate::money::Money;
use crate::policy::Limits;
use crate::profile::DeviceProfile;
use crate::protocol;
use crate::recognizer::Recognizer;
use crate::transport::BrokerUrl;

/// The story the demo tells, one scene at a time: (what it shows, fixtures).
const SCENES: &[(&str, &[&str])] = &[
    (
        "a payment confirmed by voice",
        &["pay_heytea_36", "confirm_plain"],
    ),
    (
        "a small payment under the auto-pay limit",
        &["pay_heytea_9_noisy"],
    ),
    (
        "a payment cancelled",
        &["pay_starbucks_50_noisy", "cancel_plain"],
    ),
    ("a payment over the daily limit", &["pay_alice_3000"]),
];
const OFFLINE_SCENE: &[&str] = &["pay_luckin_12", "confirm_yes"];
const CLOSING: &[&str] = &["query_today"];

pub struct DemoOptions {
    pub broker: Option<BrokerUrl>,
    pub json: bool,
    pub fixtures: PathBuf,
}

/// Fresh keys, a broker, the gateway and a paired device: what the demo and
/// the latency benchmark run on.
pub struct Rig {
    pub device: Device,
    pub device_id: String,
    pub device_public: PublicKey,
    pub gateway_public: PublicKey,
    pub broker: BrokerUrl,
    gateway_config: GatewayConfig,
    gateway: Option<GatewayTask>,
    _work: tempfile::TempDir,
}

impl Rig {
    /// `broker`: a running one, or `None` to start the embedded one.
    pub fn start(
        profile: DeviceProfile,
        broker: Option<BrokerUrl>,
        feedback: Box<dyn Feedback>,
    ) -> Result<Rig> {
        let work = tempfile::tempdir().context("temporary data directory")?;
        let broker = match broker {
            Some(url) => url,
            None => crate::broker::start_embedded()?,
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
        let gateway_config = GatewayConfig::new(gateway_dir);
        Gateway::open(gateway_config.clone(), gateway_key)?.enroll(&device_id, &device_public)?;
        let gateway = GatewayTask::start(&gateway_config, &broker)?;
        let config = DaemonConfig {
            profile,
            data_dir: device_dir,
            broker: broker.clone(),
            prefix: protocol::DEFAULT_PREFIX.to_owned(),
            answer_wait: Duration::from_secs(10),
        };
        let device = Device::start(config, feedback)?;
        Ok(Rig {
            device,
            device_id,
            device_public,
            gateway_public,
            broker,
            gateway_config,
            gateway: Some(gateway),
            _work: work,
        })
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
}

pub async fn run(profile: DeviceProfile, options: DemoOptions) -> Result<()> {
    let note = |text: &str| {
        if options.json {
            println!("{}", json!({"step": "scene", "text": text}));
        } else {
            println!("\n== {text}");
        }
    };
    let currency = profile.default_currency;
    let mut recognizer = Recognizer::new(&profile).context("cannot start the transcriber")?;
    let feedback = Box::new(Console { json: options.json });
    let mut rig = Rig::start(profile, options.broker.clone(), feedback)?;
    if options.json {
        let keys_line = json!({
            "step": "keys",
            "device_id": rig.device_id,
            "device_public_key": rig.device_public.to_base64url(),
            "gateway_public_key": rig.gateway_public.to_base64url(),
            "broker": rig.broker.to_string(),
        });
        println!("{keys_line}");
    } else {
        println!(
            "device  {}  public key {}",
            rig.device_id, rig.device_public
        );
        println!("gateway public key {}", rig.gateway_public);
        println!("broker  {}", rig.broker);
    }
    let device = &mut rig.device;
    device.store().set_limits(&Limits {
        auto_pay: Money::new(1_000, currency),
        daily: Some(Money::new(50_000, currency)),
        payment_code_above: None,
    })?;
    note("limits: auto-pay 10, daily 500 (in the profile's currency)");
    if !device.wait_online(Duration::from_secs(10)).await {
        anyhow::bail!("the gateway did not come online at {}", rig.broker);
    }

    for (scene, fixtures) in SCENES {
        note(scene);
        hear_all(device, &mut recognizer, &options.fixtures, fixtures).await?;
    }

    note("the gateway goes away: a small payment is paid offline");
    rig.stop_gateway().await;
    wait_for(&rig.device, |online| !online).await;
    hear_all(
        &mut rig.device,
        &mut recognizer,
        &options.fixtures,
        OFFLINE_SCENE,
    )
    .await?;
    note("the gateway is back: the outbox drains");
    rig.start_gateway()?;
    let device = &mut rig.device;
    wait_for(device, |online| online).await;
    device.settle_answers(Duration::from_secs(10)).await;

    note("asking what was spent");
    hear_all(device, &mut recognizer, &options.fixtures, CLOSING).await?;

    let history = device.store().history()?;
    let chain = device.store().verify_history()?;
    if options.json {
        for entry in &history {
            println!("{}", json!({"step": "history", "entry": entry}));
        }
    } else {
        println!("\n== history ({chain} entries, hash chain intact)");
        for entry in &history {
            println!("{:>3} {}", entry.index, entry.event.summary());
        }
    }
    rig.device.close().await;
    Ok(())
}

async fn hear_all(
    device: &mut Device,
    recognizer: &mut Recognizer,
    dir: &Path,
    fixtures: &[&str],
) -> Result<()> {
    for name in fixtures {
        let file = dir.join(format!("{name}.wav"));
        let utterance = read_wav(&file)?;
        device
            .hear(recognizer, &file.display().to_string(), &utterance)
            .await;
    }
    Ok(())
}

async fn wait_for(device: &Device, online: impl Fn(bool) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !online(device.link_state().online()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reference gateway serving in this process.
struct GatewayTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayTask {
    fn start(config: &GatewayConfig, broker: &BrokerUrl) -> Result<Self> {
        let key = gateway::load_key(config)?;
        let gateway = Gateway::open(config.clone(), key)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let broker = broker.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = gateway::run(gateway, &broker, shutdown).await {
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
