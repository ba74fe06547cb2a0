//! `voicepay demo`: the whole flow in one process on the bundled fixtures, with fresh keys, an embedded broker, the gateway and the daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::rig::{Rig, WAIT};
use voicepay_core::agent::Agent;
use voicepay_core::clock::now_ms;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::Money;
use voicepay_core::policy::Limits;
use voicepay_core::policy::Mandate;
use voicepay_core::protocol::{AgentTask, Envelope, TaskKind};
use voicepay_core::transport::BrokerUrl;
use voicepay_device::feedback::Console;
use voicepay_device::phrasebook::Phrasebook;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Recognizer;

/// The story the demo tells, one scene at a time: (what it shows, fixtures).
const SCENES: &[(&str, &[&str])] = &[
    (
        "a payment confirmed by voice",
        &["pay_heytea_36", "confirm_plain"],
    ),
    (
        "a small payment under the auto-pay limit",
        &["pay_alice_20"],
    ),
    (
        "a payment cancelled",
        &["pay_starbucks_50_noisy", "cancel_plain"],
    ),
    ("a payment over the daily limit", &["pay_alice_3000"]),
];
const AGENT_ANSWER: &[&str] = &["approve_task"];
const OFFLINE_SCENE: &[&str] = &["pay_luckin_12", "confirm_yes"];
const CLOSING: &[&str] = &["query_today"];

pub struct DemoOptions {
    pub broker: Option<BrokerUrl>,
    pub json: bool,
    pub fixtures: PathBuf,
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
    let phrasebook = Phrasebook::new(profile.language);
    let recognizer = Recognizer::new(&profile).context("cannot start the transcriber")?;
    let feedback = Box::new(Console { json: options.json });
    let limits = Limits {
        auto_pay: Money::new(2_000, currency),
        daily: Some(Money::new(50_000, currency)),
        payment_code_above: None,
    };
    // An AI agent the user trusts with a budget, its key held by the agent.
    let agent_key = SigningKey::generate()?;
    let agent = Agent {
        name: "claude-code".into(),
        public_key: agent_key.public_key().to_base64url(),
        mandate: Mandate {
            daily: Some(Money::new(10_000, currency)),
            ..Mandate::new(currency)
        },
        added_at: now_ms(),
        revoked_at: None,
    };
    let mut rig = Rig::start(
        profile,
        options.broker.clone(),
        &limits,
        &[agent],
        recognizer,
        feedback,
    )?;
    if options.json {
        let keys_line = json!({
            "step": "keys",
            "device_id": rig.home.device_id,
            "device_public_key": rig.home.device_public.to_base64url(),
            "gateway_public_key": rig.home.gateway_public.to_base64url(),
            // The agent signs its task: its envelope ("step":"task") checks with this.
            "agent_id": "claude-code",
            "agent_public_key": agent_key.public_key().to_base64url(),
            "broker": rig.home.broker.to_string(),
        });
        println!("{keys_line}");
    } else {
        println!(
            "device  {}  public key {}",
            rig.home.device_id, rig.home.device_public
        );
        println!("gateway public key {}", rig.home.gateway_public);
        println!("agent   claude-code  public key {}", agent_key.public_key());
        println!("broker  {}", rig.home.broker);
    }
    note("limits: auto-pay 20, daily 500 (in the profile's currency)");
    if !rig.until(WAIT, |s| s.link.online()).await {
        anyhow::bail!("the gateway did not come online at {}", rig.home.broker);
    }

    for (scene, fixtures) in SCENES {
        note(scene);
        hear_all(&mut rig, &options.fixtures, fixtures).await?;
        // One scene at a time: its answers are told before the next begins.
        settle(&mut rig, scene).await?;
    }

    note("an AI agent asks to buy tokens: the user approves by voice");
    let task = AgentTask {
        task_id: "demo-1".into(),
        agent_id: "claude-code".into(),
        device_id: rig.home.device_id.clone(),
        description: "one million tokens for the coding session".into(),
        payee: "Claude".into(),
        // The profile's price of a million Claude tokens: a top-up at another
        // price is refused.
        amount: Money::new(9_000, currency),
        kind: TaskKind::TokenTopUp,
        tokens: Some(1_000_000),
        period: None,
        created_at: now_ms(),
        expires_at: now_ms() + 600_000,
    };
    let sealed = Envelope::seal_json(&task, &agent_key)?.0.to_bytes();
    if options.json {
        // As it goes on the wire, like the device's and the gateway's envelopes.
        let envelope: serde_json::Value = serde_json::from_slice(&sealed)?;
        println!("{}", json!({"step": "task", "envelope": envelope}));
    }
    rig.send_task(sealed).await?;
    if !rig.until(WAIT, |s| s.asking).await {
        anyhow::bail!("the agent's task was not put to the user");
    }
    hear_all(&mut rig, &options.fixtures, AGENT_ANSWER).await?;
    settle(&mut rig, "the agent's task").await?;

    note("the gateway goes away: a small payment is paid offline");
    rig.stop_gateway().await?;
    // Noticed on a live connection, from the gateway's signed "offline" (or
    // its will): the device's own link down for a moment says nothing of it.
    if !rig.until(WAIT, |s| s.link.broker && !s.link.gateway).await {
        anyhow::bail!("the device did not notice the gateway going away");
    }
    hear_all(&mut rig, &options.fixtures, OFFLINE_SCENE).await?;
    if !rig.heard_all(WAIT).await {
        anyhow::bail!("the offline payment was not heard");
    }
    // What the next step drains.
    if !rig.until(WAIT, |s| s.outbox > 0).await {
        anyhow::bail!("the offline payment was not queued");
    }
    note("the gateway is back: the outbox drains");
    rig.start_gateway()?;
    if !rig.until(WAIT, |s| s.link.online() && s.outbox == 0).await {
        anyhow::bail!("the outbox did not drain when the gateway came back");
    }

    note("asking what was spent");
    hear_all(&mut rig, &options.fixtures, CLOSING).await?;
    settle(&mut rig, "the question").await?;

    let gateway_public = rig.home.gateway_public;
    let store = rig.stop().await?;
    let history = store.history()?;
    let chain = store.verify_history(Some(&gateway_public))?;
    if options.json {
        for entry in &history {
            println!("{}", json!({"step": "history", "entry": entry}));
        }
    } else {
        println!(
            "\n== history ({} entries, chain intact, {} gateway answers checked)",
            chain.entries, chain.gateway_answers
        );
        for entry in &history {
            println!("{}", phrasebook.history_line(entry));
        }
    }
    Ok(())
}

/// Waits until every clip handed over was heard and answered; a step that
/// does not settle ends the demo rather than letting the story run on
/// out of order.
async fn settle(rig: &mut Rig, step: &str) -> Result<()> {
    if rig.settled(WAIT).await {
        Ok(())
    } else {
        anyhow::bail!("{step} did not settle in {} s", WAIT.as_secs())
    }
}

async fn hear_all(rig: &mut Rig, dir: &Path, fixtures: &[&str]) -> Result<()> {
    for name in fixtures {
        rig.hear(&dir.join(format!("{name}.wav"))).await?;
    }
    Ok(())
}
