//! The microphone path for real, without hardware: ALSA's `file` plugin plays a fixture into cpal's capture as a 48 kHz stereo device, and the daemon pays it through mosquitto and the gateway.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use util::*;

/// A home whose `.asoundrc` makes ALSA's default capture device read `raw`
/// through the `file` plugin, as 48 kHz two-channel signed 16-bit (not
/// what Whisper eats), with `plug` in front offering whatever cpal asks
/// for. The `null` slave is not paced: the whole file arrives in one burst,
/// then silence, so the profile's ring must hold the burst.
fn alsa_home(dir: &Path, raw: &Path) -> std::path::PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.fixture {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n\
             pcm.!default {{\n  type plug\n  slave {{ pcm \"fixture\"; format S16_LE; rate 48000; channels 2 }}\n}}\n",
            raw.display()
        ),
    )
    .unwrap();
    home
}

/// The fixture with a second of silence either side, as the raw stream the
/// device gives: 48 kHz stereo s16, the command on the left channel only
/// and the right one silent (a cockpit's driver microphone beside a quiet
/// one: the profile picks channel 0).
fn raw_stream(dir: &Path, fixture_name: &str) -> std::path::PathBuf {
    let raw = dir.join("mic.raw");
    let wav = fixture(&format!("{fixture_name}.wav"));
    let status = std::process::Command::new("sox")
        .arg(&wav)
        .args([
            "-t", "raw", "-r", "48000", "-c", "2", "-e", "signed", "-b", "16",
        ])
        .arg(&raw)
        .args(["remix", "1", "0", "pad", "1", "1"])
        .status()
        .expect("sox runs (scripts/setup.sh installs it)");
    assert!(status.success());
    raw
}

#[test]
fn a_command_spoken_into_the_microphone_is_paid_and_sigterm_stops_the_listening_daemon() {
    model();
    let scratch = tempfile::tempdir().unwrap();
    let raw = raw_stream(scratch.path(), "pay_alice_20");
    let home = alsa_home(scratch.path(), &raw);
    let profile = edited_profile(
        scratch.path(),
        "mic.toml",
        // The unpaced burst: all of it must fit. Channel 0 is the command's.
        &[("ring_ms = 2000", "ring_ms = 30000\nchannel = 0")],
    );

    let keys = Keys::new();
    keys.set_limits(&["--auto", "20.00"]);
    let broker = Broker::start();
    let mut gateway = keys.gateway(&broker.url());

    let devices = run(voicepay(&["devices", "--json"]).env("HOME", &home));
    assert!(devices.status.success(), "{}", stderr(&devices));
    assert!(
        stdout_lines(&devices).iter().any(|d| d["default"] == true),
        "voicepay devices lists the default input: {}",
        String::from_utf8_lossy(&devices.stdout)
    );

    let mut daemon = listening(&profile, &broker, &keys);
    daemon.env("HOME", &home).stdout(Stdio::piped());
    let mut daemon = Child::spawn(daemon);
    let lines = lines(daemon.stdout().unwrap());
    let mut seen = Vec::new();
    let answer = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no answer from the microphone's payment; saw {seen:#?}"));
        let step: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(step.clone());
        if step["step"] == "answer" {
            break step;
        }
    };
    let heard = seen.iter().find(|s| s["step"] == "heard").unwrap();
    assert_eq!(heard["file"], "mic", "{heard}");
    assert_eq!(heard["intent"]["kind"], "pay", "{heard}");
    assert_eq!(answer["status"], "approved", "{answer}");

    // Still listening (to the silence after the burst): a service manager's stop.
    assert!(daemon.terminate_within(Duration::from_secs(5)).success());
    assert!(gateway.terminate_within(Duration::from_secs(5)).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &keys.gw()]);
    assert_eq!(ledger.lines().count(), 1, "paid once: {ledger}");
    assert!(ledger.contains("Alice"), "{ledger}");
    assert_eq!(keys.outbox().lines().count(), 0, "{}", keys.outbox());
}

#[test]
fn a_profile_naming_a_microphone_that_is_not_there_is_retried_not_a_crash() {
    let scratch = tempfile::tempdir().unwrap();
    let profile = edited_profile(
        scratch.path(),
        "nomic.toml",
        &[
            ("input = \"default\"", "input = \"no such microphone\""),
            ("retry_ms = 2000", "retry_ms = 200"),
        ],
    );
    let keys = Keys::new();
    let broker = Broker::start();
    let mut daemon = listening(&profile, &broker, &keys);
    daemon.stderr(Stdio::piped());
    let mut daemon = Child::spawn(daemon);
    let logged = lines(daemon.stderr().unwrap());
    let mut err = Vec::new();
    wait_line(&logged, &mut err, Duration::from_secs(60), |l| {
        l.contains("cannot open the microphone")
    });
    // Time is the subject: five more retries, 200 ms apart, say nothing more.
    std::thread::sleep(Duration::from_secs(1));
    // Still running after them, then a clean stop.
    assert!(daemon.terminate_within(Duration::from_secs(5)).success());
    err.extend(logged.iter());
    let err = err.join("\n");
    assert!(
        err.contains("no input device matches \"no such microphone\""),
        "{err}"
    );
    assert_eq!(
        err.matches("cannot open the microphone").count(),
        1,
        "the same error is said once, not every retry: {err}"
    );
}

/// `voicepay --device PROFILE run --json` without `--input`: on the microphone.
fn listening(profile: &Path, broker: &Broker, keys: &Keys) -> std::process::Command {
    voicepay(&[
        "--device",
        profile.to_str().unwrap(),
        "run",
        "--json",
        "--broker",
        &broker.url(),
        "--data-dir",
        &keys.dev(),
    ])
}
