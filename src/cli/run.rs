//! `voicepay run`: the daemon, on the microphone or on WAV files, with its feedback (the console, and the voice where the profile has one).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use voicepay_core::identity;
use voicepay_device::audio;
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::Console;
use voicepay_device::feedback::speech::SpeakingThread;
use voicepay_device::identity as device_identity;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer;

use super::args::RunArgs;

/// How long the sentences still queued when the files are done may take.
const SAY_THE_REST: Duration = Duration::from_secs(60);

/// `profile_file` is the `--device` profile, which SIGHUP rereads.
pub fn run(
    args: RunArgs,
    profile: DeviceProfile,
    profile_file: Option<PathBuf>,
) -> Result<ExitCode> {
    let RunArgs {
        input,
        broker,
        data_dir,
        json,
        answer_wait,
        speak,
    } = args;
    // A named pipe is a file too (it may wait for a writer): only whether
    // each is there is checked, before the model loads.
    for file in &input {
        std::fs::metadata(file).with_context(|| format!("--input {}", file.display()))?;
    }
    let broker = broker
        .with_access(&profile.mqtt.access())
        .context("the profile's [mqtt] settings")?;
    let recognizer = super::hear::recognizer(&profile)?;
    let data_dir = super::data_dir_or_default(data_dir);
    refresh_public_identity(&data_dir, &profile);
    let mut config = DaemonConfig::new(profile, data_dir, broker);
    let recognizer = recognizer
        .with_payees(config.payees.clone())
        .with_listening(config.listening.clone());
    config.drain_wait = Duration::from_secs(answer_wait);
    // SIGHUP rereads it (the embedded default has nothing to reread).
    config.profile_file = profile_file;
    let runtime = tokio::runtime::Runtime::new()?;
    let (ran, voice, stopped) = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(super::cancel_on_signal(shutdown.clone()));
        let (inputs, feedback, voice) = device_side(&mut config, input, speak, json, &shutdown);
        let source = recognizer::spawn(recognizer, inputs);
        let ran = daemon::run(config, source, feedback, shutdown.clone()).await;
        (ran, voice, shutdown.is_cancelled())
    });
    // Not a plain drop: it would wait for ever for an input reader
    // blocked on a named pipe nobody writes, and a daemon that failed
    // to start would hang instead of saying why.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The files are heard: what is still to say is said. Stopped (Ctrl-C,
    // SIGTERM): at once. Either way no speech command outlives the daemon.
    if let Some(voice) = voice {
        voice.finish(if stopped {
            Duration::ZERO
        } else {
            SAY_THE_REST
        });
    }
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// Keeps `DATA_DIR/device.pub.json` as the profile says (prefix, currency)
/// for a `voicepay mcp` of the same user; a device made before it existed
/// gets one. Not a reason to stop: the daemon says what is missing itself.
fn refresh_public_identity(data_dir: &Path, profile: &DeviceProfile) {
    let Ok(key) = device_identity::load_device_key(data_dir) else {
        return;
    };
    let public = identity::PublicIdentity::of(
        &key.public_key(),
        &profile.mqtt.prefix,
        profile.default_currency,
    );
    let path = data_dir.join(identity::PUBLIC_IDENTITY);
    if identity::PublicIdentity::load(&path).is_ok_and(|(known, _)| known == public) {
        return;
    }
    if let Err(error) = public.write(&path) {
        tracing::warn!(%error, "cannot write the device's public identity");
    }
}

/// The device side of `run`: the microphone (its gate as the wake mode
/// says, push-to-talk on Enter at a terminal) or the files, and the
/// feedback: the console, and the voice where the profile has one (with
/// its thread, to finish before the process ends).
fn device_side(
    config: &mut DaemonConfig,
    files: Vec<PathBuf>,
    speak: bool,
    json: bool,
    shutdown: &CancellationToken,
) -> (
    tokio::sync::mpsc::Receiver<audio::source::Input>,
    Box<dyn voicepay_device::feedback::Feedback>,
    Option<SpeakingThread>,
) {
    use std::io::IsTerminal;
    use voicepay_device::audio::gate::Gate;
    use voicepay_device::feedback::speech::{Speaker, Spoken};
    let profile = &config.profile;
    let microphone = files.is_empty();
    let push_to_talk = profile.wake.mode == voicepay_device::wake::WakeMode::PushToTalk;
    let gate = std::sync::Arc::new(if push_to_talk && microphone {
        Gate::push_to_talk()
    } else {
        Gate::open()
    });
    config.gate = gate.clone();
    let inputs = if microphone {
        if push_to_talk && std::io::stdin().is_terminal() {
            push_to_talk_on_enter(gate.clone());
        }
        audio::mic::listen(
            profile.audio.clone(),
            profile.vad,
            gate.clone(),
            shutdown.clone(),
        )
    } else {
        audio::source::files(files, profile.vad)
    };
    let console = Box::new(Console { json });
    let command = profile.feedback.speak.clone();
    if !(microphone || speak) || command.is_empty() {
        return (inputs, console, None);
    }
    let echo = Duration::from_millis(profile.feedback.echo_ms);
    match Speaker::start(command, echo, gate) {
        Ok(speaker) => {
            let thread = speaker.thread();
            let spoken = Spoken {
                inner: console,
                speaker,
            };
            (inputs, Box::new(spoken), Some(thread))
        }
        Err(error) => {
            tracing::error!(%error, "cannot start the speaker: the device will not speak");
            (inputs, console, None)
        }
    }
}

/// Development push-to-talk: Enter starts talking, Enter again stops.
fn push_to_talk_on_enter(gate: std::sync::Arc<voicepay_device::audio::gate::Gate>) {
    eprintln!("push-to-talk: press Enter to talk, Enter again to stop");
    let spawned = std::thread::Builder::new()
        .name("push-to-talk".into())
        .spawn(move || {
            let mut held = false;
            for _line in std::io::stdin().lines().map_while(Result::ok) {
                held = !held;
                gate.hold(held);
                eprintln!("{}", if held { "talking..." } else { "stopped" });
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot read the console for push-to-talk");
    }
}
