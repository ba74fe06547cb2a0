//! Under a service manager: a real `voicepay run` tells a real notify socket it is ready, pings the watchdog from its loop and says it is stopping; SIGHUP reloads the profile; `voicepay status` with and without a daemon; the unit file.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use util::*;

/// A notify socket, as systemd makes one for a Type=notify service. Like
/// systemd it reads at once, on a thread of its own: a datagram queue holds
/// only `net.unix.max_dgram_qlen` (10 here) unread messages, and the daemon's
/// non-blocking sends beyond them are dropped (its STOPPING=1 was, once,
/// behind the watchdog's pings while the test waited for the exit).
struct NotifySocket {
    path: PathBuf,
    arrived: std::sync::mpsc::Receiver<String>,
    got: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (sender, arrived) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        NotifySocket {
            path,
            arrived,
            got: Vec::new(),
        }
    }

    /// Waits for a datagram holding the line `wanted`; how long it took.
    fn expect(&mut self, wanted: &str, limit: Duration) -> Duration {
        let started = voicepay_core::clock::Stopwatch::start();
        while let Some(left) = limit.checked_sub(started.elapsed()) {
            let Ok(message) = self.arrived.recv_timeout(left) else {
                break;
            };
            let found = message.lines().any(|l| l == wanted);
            self.got.push(message);
            if found {
                return started.elapsed();
            }
        }
        panic!("no {wanted} within {limit:?}; got {:?}", self.got);
    }
}

#[test]
fn a_daemon_says_ready_pings_the_watchdog_from_its_loop_shows_its_status_and_says_stopping() {
    model();
    let keys = Keys::new();
    let dev = keys.dev();
    let broker = Broker::start();
    let _gateway = keys.gateway(&broker.url());
    let dir = tempfile::tempdir().unwrap();
    let mut notify = NotifySocket::bind(dir.path());
    let pipes = vec![
        Fifo::new(dir.path(), "a.wav"),
        Fifo::new(dir.path(), "b.wav"),
    ];
    let global = ["--log-format", "json"];
    let mut daemon = PipedDaemon::spawn(&global, &broker.url(), &dev, pipes, |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify.path)
            // Pings every half second.
            .env("WATCHDOG_USEC", "1000000")
            .stderr(Stdio::piped());
    });
    let logs = lines(daemon.child.stderr().unwrap());

    notify.expect("READY=1", START_LIMIT);
    notify.expect("STATUS=online; 0 in the outbox", Duration::from_secs(10));
    for _ in 0..3 {
        let waited = notify.expect("WATCHDOG=1", Duration::from_secs(2));
        assert!(waited < Duration::from_millis(900), "{waited:?}");
    }

    // Running: through the control socket.
    let status = status_json(&dev);
    assert_eq!(status["daemon"], "running", "{status}");
    assert_eq!(status["connection"], "online", "{status}");
    assert_eq!(status["outbox"], 0, "{status}");
    assert_eq!(status["device_id"], device_id(&dev).as_str(), "{status}");
    assert_eq!(status["limits"]["auto_pay"]["minor"], 0, "{status}");
    assert!(status["uptime_s"].is_u64(), "{status}");
    assert!(status["last_utterance_ms"].is_null(), "{status}");
    let text = ok(&["status", "--data-dir", &dev]);
    assert!(text.contains("daemon:         running, up "), "{text}");
    assert!(text.contains("last utterance: none yet"), "{text}");

    let before = voicepay_core::clock::now_ms();
    daemon.pipes[0].feed("none_hello");
    let heard = daemon.said.recv_timeout(START_LIMIT).unwrap_or_else(|_| {
        let logged: Vec<String> = logs.try_iter().filter(|l| !l.contains("whisper")).collect();
        panic!(
            "nothing heard; status {}; logs:\n{}",
            status_json(&dev),
            logged.join("\n")
        )
    });
    assert!(heard.contains(r#""step":"heard""#), "{heard}");
    // The count is published when the loop comes round again.
    wait_for("one utterance counted", Duration::from_secs(5), || {
        status_json(&dev)["heard"] == 1
    });
    let status = status_json(&dev);
    let heard_at = status["last_utterance_ms"].as_u64().unwrap();
    assert!(
        (before..=voicepay_core::clock::now_ms()).contains(&heard_at),
        "{status}"
    );
    let text = ok(&["status", "--data-dir", &dev]);
    assert!(text.contains(&format!("({heard_at} ms)")), "{text}");

    // Still pinging while it waits on its input.
    notify.expect("WATCHDOG=1", Duration::from_secs(2));

    daemon.child.signal("TERM");
    daemon.pipes[1].close();
    assert!(daemon.child.wait_within(STOP_LIMIT).success());
    notify.expect("STOPPING=1", Duration::from_secs(1));

    // Not running: the store's part, and plainly so.
    let status = status_json(&dev);
    assert_eq!(status["daemon"], "not running", "{status}");
    assert!(status["connection"].is_null(), "{status}");
    assert_eq!(status["outbox"], 0, "{status}");
    assert_eq!(status["device_id"], device_id(&dev).as_str(), "{status}");
    let text = ok(&["status", "--data-dir", &dev]);
    assert!(text.starts_with("daemon:         not running\n"), "{text}");
    assert!(text.contains("outbox:         0 waiting"), "{text}");

    // --log-format json: every log line is one JSON object.
    let logged: Vec<String> = logs.try_iter().collect();
    assert!(!logged.is_empty());
    for line in &logged {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(object["level"].is_string(), "{line}");
    }
}

#[test]
fn sighup_applies_a_new_payee_at_once_and_a_broken_profile_changes_nothing() {
    model();
    let keys = Keys::new();
    let dev = keys.dev();
    ok(&["limits", "set", "--auto", "50.00", "--data-dir", &dev]);
    let broker = Broker::start();
    let mut gateway = keys.gateway(&broker.url());
    let dir = tempfile::tempdir().unwrap();
    // No Alice in the book; a short window, so that asking who to pay ends soon.
    let profile = edited_profile(
        dir.path(),
        "device.toml",
        &[
            ("\"Alice\", ", ""),
            ("confirm_window_s = 8", "confirm_window_s = 2"),
        ],
    );
    let pipes = ["a.wav", "b.wav", "c.wav"]
        .iter()
        .map(|name| Fifo::new(dir.path(), name))
        .collect();
    let global = [
        "--device",
        profile.to_str().unwrap(),
        "--log-format",
        "json",
    ];
    let mut daemon = PipedDaemon::spawn(&global, &broker.url(), &dev, pipes, |cmd| {
        cmd.stderr(Stdio::piped());
    });
    let logs = lines(daemon.child.stderr().unwrap());
    let mut logged = Vec::new();
    wait_daemon(&dev, START_LIMIT, "online", |status| {
        status["connection"] == "online"
    });

    daemon.pipes[0].feed("pay_alice_20");
    daemon.wait_said(START_LIMIT, "I don't know Alice");
    // The question's two seconds run out.
    daemon.wait_said(START_LIMIT, "no answer in time");

    // Alice joins the book, the window changes, and so does the MQTT
    // prefix, which needs a restart.
    edited_profile(
        dir.path(),
        "device.toml",
        &[
            ("confirm_window_s = 8", "confirm_window_s = 5"),
            ("prefix = \"voicepay/v1\"", "prefix = \"elsewhere/v1\""),
        ],
    );
    daemon.child.signal("HUP");
    let reloaded = wait_line(&logs, &mut logged, Duration::from_secs(10), |l| {
        l.contains("profile reloaded")
    });
    let reloaded: serde_json::Value = serde_json::from_str(&reloaded).unwrap();
    let applied = reloaded["fields"]["applied"].as_str().unwrap();
    assert!(
        applied.contains("known_payees") && applied.contains("payments.confirm_window_s"),
        "{reloaded}"
    );
    assert_eq!(
        reloaded["fields"]["need_restart"], r#"["mqtt"]"#,
        "{reloaded}"
    );
    let book = ok(&["payees", "list", "--json", "--data-dir", &dev]);
    assert!(book.contains(r#""name":"Alice""#), "{book}");

    // Heard at once: Alice is paid, on the prefix the daemon started with.
    daemon.pipes[1].feed("pay_alice_20");
    let answer = daemon.wait_said(START_LIMIT, r#""step":"answer""#);
    assert!(answer.contains(r#""status":"approved""#), "{answer}");

    // A broken profile: logged, and the daemon goes on as it was.
    std::fs::write(&profile, "name = \"half a profile\"\n[asr\n").unwrap();
    daemon.child.signal("HUP");
    let refused = wait_line(&logs, &mut logged, Duration::from_secs(10), |l| {
        l.contains("profile not reloaded")
    });
    assert!(refused.contains("device.toml"), "{refused}");
    assert_eq!(status_json(&dev)["daemon"], "running");
    let book = ok(&["payees", "list", "--json", "--data-dir", &dev]);
    assert!(book.contains(r#""name":"Alice""#), "{book}");

    daemon.child.signal("TERM");
    daemon.pipes[2].close();
    assert!(daemon.child.wait_within(STOP_LIMIT).success());
    assert!(gateway.terminate_within(STOP_LIMIT).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &keys.gw()]);
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
    assert!(ledger.contains("Alice"), "{ledger}");
}

fn unit_file() -> String {
    std::fs::read_to_string(root().join("devices/voicepay.service")).unwrap()
}

#[test]
fn the_unit_file_has_the_settings_asked_for_each_with_its_comment() {
    let unit = unit_file();
    for setting in [
        "Type=notify",
        "ExecStart=/usr/bin/voicepay --device /etc/voicepay/device.toml run --data-dir /var/lib/voicepay",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "WatchdogSec=30",
        "TimeoutStopSec=10",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=voicepay",
        "SupplementaryGroups=audio",
        "User=voicepay",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(setting)),
            "{setting} missing"
        );
    }
    assert_each_setting_commented(&unit);
}

/// Every setting has a comment line above it (its reason).
fn assert_each_setting_commented(unit: &str) {
    let lines: Vec<&str> = unit.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let setting = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
        if setting {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "no comment line above {line:?}"
            );
        }
    }
}

#[test]
fn systemd_analyze_verifies_the_unit_file() {
    let binary = env!("CARGO_BIN_EXE_voicepay");
    // The unit as installed, with the binary where this build put it.
    systemd_verify(
        "voicepay.service",
        &unit_file().replace("/usr/bin/voicepay", binary),
    );
}

/// `systemd-analyze verify` on `text` installed as `name`: clean.
fn systemd_verify(name: &str, text: &str) {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze (Debian's systemd package; scripts/setup.sh installs it)");
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(name);
    std::fs::write(&unit, text).unwrap();
    let out = run(Command::new(analyze).arg("verify").arg(&unit));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn the_agent_frameworks_unit_runs_as_another_user_than_the_daemon_and_cannot_see_its_data() {
    let daemon = unit_file();
    let agent = std::fs::read_to_string(root().join("devices/agent-framework.service")).unwrap();
    let setting = |unit: &str, key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(setting(&daemon, "User"), ["voicepay"]);
    assert_eq!(setting(&daemon, "StateDirectory"), ["voicepay"]);
    assert_eq!(setting(&agent, "User"), ["voicepay-agent"]);
    assert_eq!(setting(&agent, "Group"), ["voicepay-agent"]);
    assert_eq!(setting(&agent, "InaccessiblePaths"), ["-/var/lib/voicepay"]);
    assert_eq!(setting(&agent, "NoNewPrivileges"), ["yes"]);
    assert_each_setting_commented(&agent);
    // The framework's command is the deployment's own; any will do here.
    systemd_verify(
        "agent-framework.service",
        &agent.replace("/usr/local/bin/agent-framework", "/bin/true"),
    );
}

/// Regression: a daemon that failed to start waited for ever for its input
/// reader, blocked opening a named pipe nobody wrote, and never said why.
#[test]
fn a_daemon_that_cannot_start_says_why_and_exits_even_on_a_named_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("device");
    let dev = dev.to_str().unwrap();
    ok(&["keys", "init", "--data-dir", dev]);
    // No gateway trusted: the daemon cannot start.
    let pipe = Fifo::new(dir.path(), "in.wav");
    let mut cmd = voicepay(&[
        "run",
        "--broker",
        "mqtt://127.0.0.1:9",
        "--data-dir",
        dev,
        "--input",
        pipe.arg(),
    ]);
    cmd.stderr(Stdio::piped());
    let mut daemon = Child::spawn(cmd);
    let errors = lines(daemon.stderr().unwrap());
    let status = daemon.wait_within(Duration::from_secs(30));
    assert!(!status.success());
    let said: Vec<String> = errors.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("gateway")),
        "{}",
        said.join("\n")
    );
}
