//! A small harness for the integration tests: the binary, the fixtures and the model.

#![allow(dead_code)]

use std::borrow::BorrowMut;
use std::path::PathBuf;
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The real converted model. Tests that need it fail loudly without it:
/// `scripts/test.sh` installs it first.
pub fn model() -> PathBuf {
    let path = root().join("models/ggml-tiny.en.bin");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (or `voicepay model install`) first",
        path.display()
    );
    path
}

/// `voicepay ARGS` run from the repository root.
pub fn voicepay(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voicepay"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("VOICEPAY_MODEL");
    cmd
}

pub fn run(mut cmd: impl BorrowMut<Command>) -> Output {
    cmd.borrow_mut().output().expect("the voicepay binary runs")
}

pub fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
