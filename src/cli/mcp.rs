//! `voicepay mcp`: the agent's Model Context Protocol server on stdio, with the agent's key and the device's public identity only.

use std::process::ExitCode;

use anyhow::{Context, Result};
use voicepay_core::identity;
use voicepay_core::keys::SigningKey;

use super::args::McpArgs;

pub fn run(args: McpArgs) -> Result<ExitCode> {
    let McpArgs {
        agent,
        key_file,
        identity: identity_file,
        broker,
        access,
        data_dir,
    } = args;
    voicepay_core::agent::validate_name(&agent)?;
    let data_dir = super::data_dir_or_default(data_dir);
    let key_file = key_file.unwrap_or_else(|| data_dir.join("agents").join(format!("{agent}.key")));
    let key = SigningKey::load_file(&key_file)
        .with_context(|| format!("the agent's key {}", key_file.display()))?;
    let identity_file = identity_file.unwrap_or_else(|| data_dir.join(identity::PUBLIC_IDENTITY));
    let (device, device_key) =
        identity::PublicIdentity::load(&identity_file).context("the device's public identity")?;
    let config = voicepay_agent::McpConfig {
        agent,
        key,
        device_id: device.device_id,
        device_key,
        broker: broker
            .with_access(&access.into())
            .context("the broker access flags")?,
        prefix: device.prefix,
        currency: device.currency,
    };
    tokio::runtime::Runtime::new()?.block_on(voicepay_agent::serve_stdio(config))?;
    Ok(ExitCode::SUCCESS)
}
