//! The process side of the test harness: the `voicepay` binary run as a user runs it (data directories, a mosquitto, the gateway and daemons as processes, named pipes as inputs), the fixtures, the model, and the one loop that waits for a state.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly
#![allow(dead_code)]

use std::borrow::BorrowMut;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A stop that a service manager asks for (SIGTERM) must take at most this.
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// How long a daemon may take to load the model, open its input and
/// connect, on a loaded machine (a bound on a hang, not a measurement).
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// A spoken answer, transcribed and paid, on a loaded machine (a bound on
/// a hang, not a measurement).
pub const ANSWER_LIMIT: Duration = Duration::from_secs(90);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The model a profile hears with, under the repository root. Tests that
/// need it fail loudly without it: `scripts/test.sh` installs it first.
fn profile_model(profile: Option<&Path>, install: &str) -> PathBuf {
    let profile = voicepay_device::profile::DeviceProfile::load(profile).unwrap();
    let path = root().join(profile.model_path());
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (or `{install}`) first",
        path.display()
    );
    path
}

/// The default profile's model (tiny.en, as `asr.quant` stores it).
pub fn model() -> PathBuf {
    profile_model(None, "voicepay model install")
}

/// The multilingual model the Mandarin profile hears with.
pub fn base_model() -> PathBuf {
    let zh = root().join("devices/car-cockpit-zh.toml");
    profile_model(
        Some(&zh),
        "voicepay --device devices/car-cockpit-zh.toml model install",
    )
}

/// tiny.en with its weights quantised (`q8_0` or `q5_1`).
pub fn quant_model(quant: &str) -> PathBuf {
    let path = root().join(format!("models/ggml-tiny.en-{quant}.bin"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (or `voicepay model install --quant {quant}`) first",
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

/// `voicepay ARGS` as the device build: the binary `VOICEPAY_DEVICE_BIN`
/// names (scripts/cross_check.sh sets it to the aarch64 build), run through
/// `VOICEPAY_DEVICE_RUNNER` (qemu-user and its arguments) when that is set,
/// from the repository root.
pub fn device_voicepay(args: &[&str]) -> Command {
    let binary = std::env::var("VOICEPAY_DEVICE_BIN")
        .expect("VOICEPAY_DEVICE_BIN names the device build: run scripts/cross_check.sh");
    let runner = std::env::var("VOICEPAY_DEVICE_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(binary);
            cmd
        }
        None => Command::new(binary),
    };
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

/// A real mosquitto on a free loopback port, stopped on drop.
pub struct Broker {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    /// On a given port: a broker that comes back where it was.
    pub fn start_on(port: u16) -> Broker {
        Broker::start_with(port, "allow_anonymous true\n")
    }

    /// With `security` in its configuration (TLS files, a password file).
    pub fn start_with(port: u16, security: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            // mosquitto's own limits, as deployed: 1,000 QoS 1 messages
            // queued per client, the rest dropped (devices send again).
            format!("listener {port} 127.0.0.1\n{security}persistence false\n"),
        )
        .unwrap();
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/setup.sh installs it)");
        wait_for_port(port);
        Broker {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> &'static str {
    // Debian installs the broker in /usr/sbin, often not on a user's PATH.
    if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn wait_for_port(port: u16) {
    wait_for(
        &format!("something listens on port {port}"),
        Duration::from_secs(5),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// Checks until `check` holds, for at most `limit`.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    wait_for_value(what, limit, || {
        check().then_some(()).ok_or_else(String::new)
    });
}

/// Checks until `check` finds what it looks for, for at most `limit`; what
/// it saw instead (its `Err`) is told if time runs out. The one place a
/// test sleeps, and only between looks at a state it waits for.
pub fn wait_for_value<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let mut looks = Looks::new(what, limit);
    loop {
        match check() {
            Ok(found) => return found,
            Err(seen) => std::thread::sleep(looks.pause(&seen)),
        }
    }
}

/// As [`wait_for`], in a task: the pauses are tokio's.
pub async fn wait_for_async(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let mut looks = Looks::new(what, limit);
    while !check() {
        tokio::time::sleep(looks.pause("")).await;
    }
}

/// The pauses between looks at a state, within a deadline.
struct Looks<'a> {
    what: &'a str,
    limit: Duration,
    started: voicepay_core::clock::Stopwatch,
    next: Duration,
}

impl Looks<'_> {
    fn new(what: &str, limit: Duration) -> Looks<'_> {
        Looks {
            what,
            limit,
            started: voicepay_core::clock::Stopwatch::start(),
            next: Duration::from_millis(25),
        }
    }

    /// How long to wait before the next look, once a look saw `seen`; a
    /// look past the deadline fails the test.
    fn pause(&mut self, seen: &str) -> Duration {
        let (what, limit) = (self.what, self.limit);
        assert!(
            self.started.elapsed() < limit,
            "not within {limit:?}: {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        // Short first pauses for a state that comes at once, then 100 ms,
        // so that a check running a process does not crowd a loaded machine.
        let pause = self.next;
        self.next = (pause * 2).min(Duration::from_millis(100));
        pause
    }
}

/// `voicepay gateway run` on `broker_url` with its data in `data_dir`, to
/// spawn (with its output piped, an environment).
pub fn gateway_command(broker_url: &str, data_dir: &str) -> Command {
    voicepay(&[
        "gateway",
        "run",
        "--broker",
        broker_url,
        "--data-dir",
        data_dir,
    ])
}

/// `voicepay gateway run` on `broker_url` with its data in `data_dir`.
pub fn gateway_process(broker_url: &str, data_dir: &str) -> Child {
    Child::spawn(gateway_command(broker_url, data_dir))
}

/// A child process that is killed if the test ends without stopping it.
pub struct Child(Option<std::process::Child>);

impl Child {
    pub fn spawn(mut cmd: Command) -> Child {
        Child(Some(cmd.spawn().expect("the child starts")))
    }

    /// The child's piped standard output.
    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.0.as_mut()?.stdin.take()
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.0.as_mut()?.stdout.take()
    }

    /// The child's piped standard error.
    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.0.as_mut()?.stderr.take()
    }

    /// Sends a signal by name ("HUP", "TERM").
    pub fn signal(&self, name: &str) {
        let child = self.0.as_ref().expect("running");
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// SIGTERM, then waits at most `limit` (a hang fails the test; it is
    /// a bound on a stop, not a measurement).
    pub fn terminate_within(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let child = self.0.as_mut().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        self.wait_within(limit)
    }

    /// Waits for the child to exit by itself, at most `limit`.
    pub fn wait_within(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let child = self.0.as_mut().expect("running");
        let status = wait_for_value("the child finishes", limit, || {
            child
                .try_wait()
                .expect("the child can be waited on")
                .ok_or_else(String::new)
        });
        self.0 = None;
        status
    }

    /// Sends SIGTERM and waits: the graceful stop a service manager asks for.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().expect("the child exits")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `voicepay ARGS`, which must succeed; its standard output.
pub fn ok(args: &[&str]) -> String {
    ok_with(voicepay, args)
}

/// As [`ok`], the binary run by `build` (the device build: [`device_voicepay`]).
pub fn ok_with(build: fn(&[&str]) -> Command, args: &[&str]) -> String {
    let out = run(build(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A gateway key pair and a device that trusts it and is enrolled with it,
/// in directories voicepay creates itself (`ROOT/gateway`, `ROOT/device`).
pub struct Keys {
    _root: tempfile::TempDir,
    pub gateway_dir: PathBuf,
    pub device_dir: PathBuf,
}

impl Keys {
    pub fn new() -> Keys {
        Keys::with_device(voicepay)
    }

    /// As [`Keys::new`], the device's side (its key, its trust) made by the
    /// binary `device` runs; the gateway's by this build.
    pub fn with_device(device: fn(&[&str]) -> Command) -> Keys {
        let root = tempfile::tempdir().unwrap();
        let keys = Keys {
            gateway_dir: root.path().join("gateway"),
            device_dir: root.path().join("device"),
            _root: root,
        };
        ok(&["gateway", "init", "--data-dir", &keys.gw()]);
        keys.pair_device_with(device, &keys.dev());
        keys
    }

    pub fn gw(&self) -> String {
        self.gateway_dir.display().to_string()
    }

    pub fn dev(&self) -> String {
        self.device_dir.display().to_string()
    }

    /// A device key in `dev`, enrolled with this gateway, trusting it.
    pub fn pair_device(&self, dev: &str) {
        self.pair_device_with(voicepay, dev);
    }

    fn pair_device_with(&self, device_build: fn(&[&str]) -> Command, dev: &str) {
        let gw = self.gw();
        let device_ok = |args: &[&str]| ok_with(device_build, args);
        device_ok(&["keys", "init", "--data-dir", dev]);
        let device: serde_json::Value =
            serde_json::from_str(&device_ok(&["keys", "show", "--json", "--data-dir", dev]))
                .unwrap();
        let gateway: serde_json::Value =
            serde_json::from_str(&ok(&["gateway", "show-key", "--json", "--data-dir", &gw]))
                .unwrap();
        ok(&[
            "gateway",
            "enroll",
            "--device-id",
            device["device_id"].as_str().unwrap(),
            "--public-key",
            device["public_key"].as_str().unwrap(),
            "--data-dir",
            &gw,
        ]);
        let key = gateway["public_key"].as_str().unwrap();
        device_ok(&["trust-gateway", "--public-key", key, "--data-dir", dev]);
    }

    pub fn gateway(&self, broker_url: &str) -> Child {
        gateway_process(broker_url, &self.gw())
    }

    /// `voicepay run --json` on one fixture (`--answer-wait` keeps it
    /// draining), and its output lines as they come.
    pub fn daemon(&self, broker_url: &str, fixture_name: &str) -> (Child, Receiver<String>) {
        let dev = self.dev();
        let input = wav(fixture_name);
        let mut daemon = voicepay(&[
            "run",
            "--json",
            "--broker",
            broker_url,
            "--data-dir",
            &dev,
            "--answer-wait",
            "600",
            "--input",
            input.to_str().unwrap(),
        ]);
        daemon.stdout(Stdio::piped());
        let mut daemon = Child::spawn(daemon);
        let said = lines(daemon.stdout().unwrap());
        (daemon, said)
    }

    /// `voicepay ARGS --data-dir DEVICE`, which must succeed; its output.
    pub fn on_device(&self, args: &[&str]) -> String {
        let dev = self.dev();
        let mut all = args.to_vec();
        all.extend(["--data-dir", &dev]);
        ok(&all)
    }

    /// `voicepay limits set ARGS` on the device, before any daemon runs.
    pub fn set_limits(&self, args: &[&str]) {
        let mut all = vec!["limits", "set"];
        all.extend(args);
        self.on_device(&all);
    }

    pub fn outbox(&self) -> String {
        ok(&["outbox", "--json", "--data-dir", &self.dev()])
    }

    /// The gateway's ledger, one entry a line (read through the running
    /// gateway, or its files when it is stopped).
    pub fn ledger(&self) -> Vec<serde_json::Value> {
        ok(&["gateway", "ledger", "--data-dir", &self.gw()])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn dir(d: &tempfile::TempDir) -> String {
    d.path().to_str().unwrap().to_owned()
}

/// `voicepay [--device PROFILE] run --json` on one fixture against
/// `broker_url`, waiting up to 10 s for answers; its steps.
pub fn run_fixture(
    broker_url: &str,
    data_dir: &str,
    fixture_name: &str,
    profile: Option<&str>,
) -> Vec<serde_json::Value> {
    stdout_lines(&play(broker_url, data_dir, profile, &[wav(fixture_name)]))
}

/// The fixture `name`'s recording.
pub fn wav(name: &str) -> PathBuf {
    fixture(&format!("{name}.wav"))
}

/// `voicepay [--device PROFILE] run --json --input FILES...` on
/// `broker_url`, run to its end (waiting up to 10 s for answers), which
/// must succeed; its output.
pub fn play(broker_url: &str, data_dir: &str, profile: Option<&str>, files: &[PathBuf]) -> Output {
    let mut args: Vec<&str> = match profile {
        Some(profile) => vec!["--device", profile],
        None => Vec::new(),
    };
    args.extend([
        "run",
        "--json",
        "--broker",
        broker_url,
        "--data-dir",
        data_dir,
    ]);
    args.extend(["--answer-wait", "10", "--input"]);
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = run(voicepay(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// A named pipe as `--input`: the daemon waits on it as it would on a
/// microphone, and hears a fixture when the test writes one into it.
pub struct Fifo(PathBuf);

impl Fifo {
    pub fn new(dir: &Path, name: &str) -> Fifo {
        let path = dir.join(name);
        assert!(
            Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
        Fifo(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Writes these bytes once the daemon opens the pipe (in a thread: a
    /// daemon that never opens it fails the test instead of hanging it).
    pub fn write(&self, bytes: Vec<u8>) {
        let path = self.0.clone();
        let (done, written) = channel();
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            pipe.write_all(&bytes).unwrap();
            let _ = done.send(());
        });
        written
            .recv_timeout(START_LIMIT)
            .expect("the daemon opened its input");
    }

    pub fn feed(&self, fixture_name: &str) {
        self.write(std::fs::read(wav(fixture_name)).unwrap());
    }

    /// An empty input: the daemon's reader gets an unreadable file and goes on.
    pub fn close(&self) {
        self.write(Vec::new());
    }
}

/// Each line of `reader`, as it comes.
pub fn lines(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The first line that `wanted` accepts, within `limit`; every line seen
/// goes into `seen`.
pub fn wait_line(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    limit: Duration,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let started = voicepay_core::clock::Stopwatch::start();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!("no such line within {limit:?}; seen: {seen:#?}"),
        }
    }
}

pub fn status_json(dev: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["status", "--json", "--data-dir", dev])).unwrap()
}

/// Waits until the daemon on `dev` answers on its control socket and its
/// `voicepay status --json` satisfies `wanted`; that status.
pub fn wait_daemon(
    dev: &str,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    // Asked only once the daemon answers on its socket: before that,
    // `voicepay status` opens the store itself, in the daemon's way.
    let socket = voicepay_core::control::socket_path(Path::new(dev));
    wait_for("the daemon's control socket", limit, || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    wait_for_value(what, limit, || {
        let status = status_json(dev);
        if wanted(&status) {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
}

fn shown_key(dev: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["keys", "show", "--json", "--data-dir", dev])).unwrap()
}

pub fn device_id(dev: &str) -> String {
    shown_key(dev)["device_id"].as_str().unwrap().to_owned()
}

/// The device's public key, as `voicepay keys show` gives it.
pub fn device_key(dev: &str) -> voicepay_core::keys::PublicKey {
    let shown = shown_key(dev);
    voicepay_core::keys::PublicKey::from_base64url(shown["public_key"].as_str().unwrap()).unwrap()
}

/// The shipped default profile with each `(from, to)` edit made, written
/// to `dir/name`. An edit that finds nothing fails: the profile moved.
pub fn edited_profile(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("devices/default.toml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "devices/default.toml has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `voicepay run --json` as a process whose inputs are named pipes: it
/// waits on them as it would on a microphone and hears a fixture when the
/// test feeds one; what it prints comes line by line.
pub struct PipedDaemon {
    pub child: Child,
    pub pipes: Vec<Fifo>,
    /// Its standard output's lines, as they come.
    pub said: Receiver<String>,
    seen: Vec<String>,
}

impl PipedDaemon {
    /// `voicepay GLOBAL... run --json --broker URL --data-dir DEV --input
    /// PIPES...`, logging at info; `adjust` adds what the test needs (an
    /// environment, its standard error piped).
    pub fn spawn(
        global: &[&str],
        broker_url: &str,
        dev: &str,
        pipes: Vec<Fifo>,
        adjust: impl FnOnce(&mut Command),
    ) -> PipedDaemon {
        PipedDaemon::spawn_as(voicepay, global, broker_url, dev, pipes, adjust)
    }

    /// As [`PipedDaemon::spawn`], the binary run by `build` (the device
    /// build: [`device_voicepay`]).
    pub fn spawn_as(
        build: fn(&[&str]) -> Command,
        global: &[&str],
        broker_url: &str,
        dev: &str,
        pipes: Vec<Fifo>,
        adjust: impl FnOnce(&mut Command),
    ) -> PipedDaemon {
        let mut args = global.to_vec();
        args.extend([
            "run",
            "--json",
            "--broker",
            broker_url,
            "--data-dir",
            dev,
            "--input",
        ]);
        args.extend(pipes.iter().map(Fifo::arg));
        let mut cmd = build(&args);
        cmd.env("VOICEPAY_LOG", "info").stdout(Stdio::piped());
        adjust(&mut cmd);
        let mut child = Child::spawn(cmd);
        let said = lines(child.stdout().unwrap());
        PipedDaemon {
            child,
            pipes,
            said,
            seen: Vec::new(),
        }
    }

    /// The first line it prints that contains `wanted`, within `limit`.
    pub fn wait_said(&mut self, limit: Duration, wanted: &str) -> String {
        wait_line(&self.said, &mut self.seen, limit, |l| l.contains(wanted))
    }

    /// SIGTERM; the pipes it has not reached are opened and closed so that
    /// they end; it must exit, successfully, within [`STOP_LIMIT`].
    pub fn stop(&mut self) {
        self.child.signal("TERM");
        for pipe in &self.pipes {
            let path = pipe.arg().to_owned();
            // Never joined: a pipe the daemon read already has no reader.
            std::thread::spawn(move || {
                let _ = std::fs::OpenOptions::new().write(true).open(path);
            });
        }
        assert!(self.child.wait_within(STOP_LIMIT).success());
    }
}

/// A paired device whose daemon listens on named pipes, with its broker
/// and its gateway, each a real process as a user runs them; the profile
/// is the shipped one with its confirmation window set.
pub struct Installed {
    pub keys: Keys,
    pub broker: Broker,
    /// None while the device is left to pay offline.
    pub gateway: Option<Child>,
    pub daemon: PipedDaemon,
    pub device_id: String,
    profile: PathBuf,
    runs: usize,
    dir: tempfile::TempDir,
}

impl Installed {
    /// `pipes` inputs, a `window_s` confirmation window, the gateway left
    /// out unless `with_gateway`. Returns once the device sees the gateway
    /// as it is (online, or away).
    pub fn start(keys: Keys, pipes: usize, window_s: u32, with_gateway: bool) -> Installed {
        let broker = Broker::start();
        let gateway = with_gateway.then(|| keys.gateway(&broker.url()));
        let dir = tempfile::tempdir().unwrap();
        let window = format!("confirm_window_s = {window_s}");
        let profile = edited_profile(
            dir.path(),
            "device.toml",
            &[("confirm_window_s = 8", &window)],
        );
        let daemon = Installed::daemon_on(dir.path(), 0, pipes, &profile, &broker, &keys);
        let device_id = device_id(&keys.dev());
        let installed = Installed {
            keys,
            broker,
            gateway,
            daemon,
            device_id,
            profile,
            runs: 0,
            dir,
        };
        installed.wait_ready();
        installed
    }

    fn daemon_on(
        dir: &Path,
        run: usize,
        pipes: usize,
        profile: &Path,
        broker: &Broker,
        keys: &Keys,
    ) -> PipedDaemon {
        let pipes = (0..pipes)
            .map(|i| Fifo::new(dir, &format!("{run}-{i}.wav")))
            .collect();
        let global = ["--device", profile.to_str().unwrap()];
        PipedDaemon::spawn(&global, &broker.url(), &keys.dev(), pipes, |_| {})
    }

    /// Waits for the daemon to answer on its socket and see the gateway
    /// as it is.
    fn wait_ready(&self) {
        let connected = if self.gateway.is_some() {
            "online"
        } else {
            "gateway away"
        };
        wait_daemon(&self.keys.dev(), START_LIMIT, connected, |status| {
            status["connection"] == connected
        });
    }

    /// Stops the daemon (its session stays with the broker, which keeps
    /// what is sent to it meanwhile).
    pub fn stop_daemon(&mut self) {
        self.daemon.stop();
    }

    /// Starts the daemon again on the same data, with fresh (unfed) inputs.
    pub fn start_daemon(&mut self) {
        self.runs += 1;
        let pipes = self.daemon.pipes.len();
        let dir = self.dir.path();
        self.daemon = Installed::daemon_on(
            dir,
            self.runs,
            pipes,
            &self.profile,
            &self.broker,
            &self.keys,
        );
        self.wait_ready();
    }

    /// Starts the gateway and waits for the device to see it.
    pub fn start_gateway(&mut self) {
        self.gateway = Some(self.keys.gateway(&self.broker.url()));
        self.wait_ready();
    }

    /// Plays a fixture into the daemon's input `pipe`.
    pub fn feed(&self, pipe: usize, fixture_name: &str) {
        self.daemon.pipes[pipe].feed(fixture_name);
    }

    /// Waits for the first line the daemon prints that contains `wanted`.
    pub fn wait_said(&mut self, wanted: &str) -> String {
        self.daemon.wait_said(ANSWER_LIMIT, wanted)
    }

    /// Stops the daemon and the gateway; the keys, and the gateway's ledger.
    pub fn stop(mut self) -> (Keys, Vec<serde_json::Value>) {
        self.stop_daemon();
        if let Some(gateway) = &mut self.gateway {
            assert!(gateway.terminate_within(STOP_LIMIT).success());
        }
        let ledger = self.keys.ledger();
        (self.keys, ledger)
    }
}

/// Commits `count` signed payments of 1-1.06 yuan to `payee` to the
/// device's outbox (durable, never sent): a backlog as a long time offline
/// leaves it. The store must be free to open.
pub fn fill_outbox(
    device_dir: &Path,
    gateway: voicepay_core::keys::PublicKey,
    count: usize,
    payee: &str,
) {
    use voicepay_core::money::{Currency, Money};
    use voicepay_device::order::{Approval, PaymentOrder, Purchase};
    use voicepay_device::store::{Store, StoreConfig};
    let identity = voicepay_device::identity::DeviceIdentity::load(device_dir).unwrap();
    let device_id = voicepay_core::protocol::device_id_for(&identity.key.public_key());
    let store = Store::open(&StoreConfig::new(device_dir.join("store"))).unwrap();
    let outbox = voicepay_device::outbox::Outbox::new(
        store,
        identity.key,
        device_id,
        gateway,
        3_600_000,
        voicepay_core::clock::Calendar::utc(),
    );
    for i in 0..count {
        let order = PaymentOrder::spoken(
            Money::new(100 + (i % 7) as i64, Currency::CNY),
            Purchase::Pay {
                payee: payee.into(),
            },
            voicepay_core::protocol::Evidence::new(
                &format!("Pay 1 yuan to {payee}."),
                b"",
                1.0,
                "en",
            ),
        );
        outbox.commit(&order, &Approval::AutoLimit, None).unwrap();
    }
}
