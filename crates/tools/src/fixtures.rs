//! The bundled fixtures: WAV files and, in `expected.jsonl`, what each must be understood as.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use voicepay_device::intent::Intent;

/// One recorded utterance and what it must be understood as.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub file: String,
    /// The words that were spoken.
    pub text: String,
    pub intent: Intent,
}

/// Reads `dir/expected.jsonl`: one [`Fixture`] per line.
pub fn load_fixtures(dir: &Path) -> Result<Vec<Fixture>> {
    let path = dir.join("expected.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), n + 1))
        })
        .collect()
}
