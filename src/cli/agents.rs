//! `voicepay agents add|keygen|list|remove|spending`: the AI agents that may ask the device to pay, and their mandates.

use std::process::ExitCode;

use anyhow::{Context, Result};
use voicepay_core::agent::{self, Agent};
use voicepay_core::control;
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Mandate;
use voicepay_device::profile::DeviceProfile;

use super::args::{AgentsCommand, MandateArgs};
use super::store::device_command;

pub fn run(command: AgentsCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let registered = |name: String, public_key: &PublicKey, mandate: &MandateArgs| -> Result<_> {
        agent::validate_name(&name)?;
        let mandate = mandate.mandate(profile.default_currency)?;
        if let Some(warning) = mandate.warning() {
            eprintln!("warning: agent {name}: {warning}");
        }
        Ok(Agent {
            name,
            public_key: public_key.to_base64url(),
            mandate,
            added_at: voicepay_core::clock::now_ms(),
            revoked_at: None,
        })
    };
    let (data_dir, request) = match command {
        AgentsCommand::Add {
            name,
            public_key,
            mandate,
            data_dir,
        } => {
            let key = PublicKey::from_base64url(public_key.trim())
                .context("--public-key is not a base64url Ed25519 public key")?;
            let agent = registered(name, &key, &mandate)?;
            (data_dir, control::Request::AgentsAdd { agent })
        }
        AgentsCommand::Keygen {
            name,
            mandate,
            data_dir,
        } => {
            agent::validate_name(&name)?;
            let data_dir = super::data_dir_or_default(data_dir);
            let dir = data_dir.join("agents");
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            let path = dir.join(format!("{name}.key"));
            let key =
                SigningKey::create_file(&path).with_context(|| format!("{}", path.display()))?;
            println!("agent key {} in {}", key.public_key(), path.display());
            let agent = registered(name, &key.public_key(), &mandate)?;
            (Some(data_dir), control::Request::AgentsAdd { agent })
        }
        AgentsCommand::List { data_dir, json } => (data_dir, control::Request::AgentsList { json }),
        AgentsCommand::Remove { name, data_dir } => {
            (data_dir, control::Request::AgentsRemove { name })
        }
        AgentsCommand::Spending { name, data_dir } => {
            (data_dir, control::Request::AgentSpending { name })
        }
    };
    device_command(data_dir, profile, request)
}

impl MandateArgs {
    fn mandate(&self, currency: Currency) -> Result<Mandate> {
        let amount = |text: &Option<String>| -> Result<Option<Money>> {
            text.as_deref()
                .map(|t| Money::parse_decimal(t, currency).with_context(|| format!("amount {t:?}")))
                .transpose()
        };
        Ok(Mandate {
            currency,
            per_task: amount(&self.per_task)?,
            daily: amount(&self.daily_budget)?,
            total: amount(&self.total_budget)?,
            auto_under: amount(&self.auto_under)?,
            payees: self.payees.clone(),
            auto_any_payee: self.auto_pay_any_payee,
            expires_at: self.expires_in_hours.map(|h| {
                voicepay_core::clock::now_ms().saturating_add(h.saturating_mul(3_600_000))
            }),
        })
    }
}
