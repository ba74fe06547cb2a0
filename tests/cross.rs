//! The device build checked, not just built: the aarch64 binary run under qemu-user beside this machine's own, and the Debian packages opened and installed.
//!
//! These need what `scripts/cross.sh` makes (the aarch64 build and both
//! packages), so a plain `cargo test` skips them; `scripts/cross_check.sh`,
//! which CI runs, builds those and runs them with `--ignored`.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use util::*;
use voicepay_core::clock::now_ms;
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{self, AgentTask, Envelope, TaskKind, topics};

/// What a device command printed, which must have succeeded.
fn device_ok(args: &[&str]) -> String {
    ok_with(device_voicepay, args)
}

#[test]
#[ignore = "needs the aarch64 build: scripts/cross_check.sh"]
fn the_device_build_hears_a_fixture_as_this_machines_build_does() {
    model();
    let clip = wav("pay_alice_20");
    let clip = clip.to_str().unwrap();
    let host = stdout_lines(&run(voicepay(&["transcribe", clip])));
    let device = device_ok(&["transcribe", clip]);
    let device: Value = serde_json::from_str(device.trim()).unwrap();
    assert!(!host[0]["text"].as_str().unwrap().is_empty());
    assert_eq!(device["text"], host[0]["text"], "{device}");
}

#[test]
#[ignore = "needs the aarch64 build: scripts/cross_check.sh"]
fn the_device_build_makes_its_key_and_reads_an_intent() {
    let dev = tempfile::tempdir().unwrap();
    device_ok(&["keys", "init", "--data-dir", &dir(&dev)]);
    let key: Value = serde_json::from_str(&device_ok(&[
        "keys",
        "show",
        "--json",
        "--data-dir",
        &dir(&dev),
    ]))
    .unwrap();
    // The same key read by this machine's build: the files are the same format.
    let host: Value =
        serde_json::from_str(&ok(&["keys", "show", "--json", "--data-dir", &dir(&dev)])).unwrap();
    assert_eq!(key["public_key"], host["public_key"]);
    let intent: Value = serde_json::from_str(&device_ok(&[
        "intent",
        "--text",
        "Pay thirty six yuan to Heytea.",
    ]))
    .unwrap();
    assert_eq!(intent["intent"]["kind"], "pay", "{intent}");
    assert_eq!(intent["intent"]["amount"], "36.00", "{intent}");
    assert_eq!(intent["intent"]["payee"], "Heytea", "{intent}");
}

#[test]
#[ignore = "needs the aarch64 build: scripts/cross_check.sh"]
fn an_agents_payment_made_by_the_device_build_is_approved_by_this_machines_gateway_over_mosquitto()
{
    model();
    let broker = Broker::start();
    let url = broker.url();
    // Paired across the two builds: the device's key made by the device
    // build, enrolled with this machine's gateway, whose key it trusts.
    let keys = Keys::with_device(device_voicepay);
    let pipes = tempfile::tempdir().unwrap();
    let (gw, dev) = (keys.gw(), keys.dev());
    let device_id = device_id(&dev);
    // An agent the device pays for by itself under 30 yuan, to Alice only:
    // no voice is heard, so the emulated daemon spends no minutes hearing.
    device_ok(&[
        "agents",
        "keygen",
        "shopper",
        "--per-task",
        "50.00",
        "--daily-budget",
        "100.00",
        "--auto-under",
        "30.00",
        "--payee",
        "Alice",
        "--data-dir",
        &dev,
    ]);
    let agent = SigningKey::load_file(&Path::new(&dev).join("agents/shopper.key")).unwrap();

    let mut gateway = keys.gateway(&url);
    // The device build's daemon, on a named pipe nobody speaks into.
    let pipe = Fifo::new(pipes.path(), "mic.wav");
    let mut daemon = PipedDaemon::spawn_as(device_voicepay, &[], &url, &dev, vec![pipe], |_| {});
    // This machine's build asks the device build's daemon on its socket.
    wait_daemon(&dev, START_LIMIT, "the device online", |status| {
        status["connection"] == "online"
    });

    let task = AgentTask {
        task_id: "t-cross".into(),
        agent_id: "shopper".into(),
        device_id: device_id.clone(),
        description: "a coffee".into(),
        payee: "Alice".into(),
        amount: Money::new(2_000, Currency::CNY),
        kind: TaskKind::Purchase,
        tokens: None,
        period: None,
        created_at: now_ms(),
        expires_at: now_ms() + 120_000,
    };
    let sealed = Envelope::seal_json(&task, &agent).unwrap().0.to_bytes();
    let options = rumqttc::MqttOptions::new("agent-side", "127.0.0.1", broker.port);
    let (client, mut connection) = rumqttc::Client::new(options, 8);
    std::thread::spawn(move || for _ in connection.iter() {});
    client
        .publish(
            topics::tasks(protocol::DEFAULT_PREFIX, &device_id),
            rumqttc::QoS::AtLeastOnce,
            false,
            sealed,
        )
        .unwrap();
    let answer = daemon.wait_said(ANSWER_LIMIT, "\"step\":\"answer\"");
    assert!(answer.contains("\"status\":\"approved\""), "{answer}");
    daemon.stop();
    assert!(gateway.terminate_within(STOP_LIMIT).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &gw]);
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
    assert!(ledger.contains("Alice"), "{ledger}");
    // The device build's history, its chain and the gateway's signature
    // checked by this machine's build.
    let history = ok(&["history", "--json", "--verify", "--data-dir", &dev]);
    assert!(history.contains("\"paid\""), "{history}");
    assert!(history.contains("shopper"), "{history}");
}

/// The package `scripts/cross.sh` made for `arch` (amd64 or arm64).
fn package(arch: &str) -> PathBuf {
    let dir = root().join("target/debian");
    let found = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/cross.sh", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(&format!("_{arch}.deb"))
        });
    found.unwrap_or_else(|| {
        panic!(
            "no {arch} package in {}: run scripts/cross.sh",
            dir.display()
        )
    })
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = run(Command::new("dpkg-deb").args(args).arg(deb));
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The ELF machine of an executable: 0xB7 aarch64, 0x3E x86-64.
fn elf_machine(binary: &Path) -> u16 {
    let bytes = std::fs::read(binary).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{}", binary.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
#[ignore = "needs both packages: scripts/cross_check.sh"]
fn each_package_holds_a_binary_for_its_cpu_the_service_its_users_and_the_profile_as_a_conffile() {
    for (arch, machine) in [("amd64", 0x3E), ("arm64", 0xB7)] {
        let deb = package(arch);
        let control = dpkg_deb(&["-f"], &deb);
        assert!(
            control.contains(&format!("Architecture: {arch}")),
            "{control}"
        );
        assert!(control.contains("libasound2"), "{control}");
        let contents = dpkg_deb(&["-c"], &deb);
        for path in [
            "./usr/bin/voicepay",
            "./lib/systemd/system/voicepay.service",
            "./usr/lib/sysusers.d/voicepay.conf",
            "./etc/voicepay/device.toml",
            "./usr/share/doc/voicepay/examples/agent-framework.service",
            "./usr/share/doc/voicepay/examples/car-cockpit-zh.toml",
        ] {
            assert!(
                contents.lines().any(|l| l.ends_with(path)),
                "{arch}: {path} missing"
            );
        }
        let unpacked = tempfile::tempdir().unwrap();
        let out = run(Command::new("dpkg-deb")
            .arg("-R")
            .arg(&deb)
            .arg(unpacked.path()));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            elf_machine(&unpacked.path().join("usr/bin/voicepay")),
            machine,
            "{arch}"
        );
        let conffiles = std::fs::read_to_string(unpacked.path().join("DEBIAN/conffiles")).unwrap();
        assert_eq!(conffiles.trim(), "/etc/voicepay/device.toml");
        // The sysusers file makes the two users in an empty root: the daemon's
        // and the agents', each with its own group.
        let users_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(users_root.path().join("etc")).unwrap();
        let out = run(Command::new("systemd-sysusers")
            .arg(format!("--root={}", users_root.path().display()))
            .arg(unpacked.path().join("usr/lib/sysusers.d/voicepay.conf")));
        assert!(out.status.success(), "{}", stderr(&out));
        let passwd = std::fs::read_to_string(users_root.path().join("etc/passwd")).unwrap();
        let group = std::fs::read_to_string(users_root.path().join("etc/group")).unwrap();
        for user in ["voicepay", "voicepay-agent"] {
            assert!(
                passwd.lines().any(|l| l.starts_with(&format!("{user}:"))
                    && l.ends_with(&format!(":/var/lib/{user}:/usr/sbin/nologin"))),
                "{passwd}"
            );
            assert!(
                group.lines().any(|l| l.starts_with(&format!("{user}:"))),
                "{group}"
            );
        }
    }
}

#[test]
#[ignore = "installs and purges the amd64 package, as root: scripts/cross_check.sh"]
fn the_amd64_package_installs_with_its_users_and_a_unit_systemd_verifies_and_purges_clean() {
    let installed = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "voicepay"]));
    assert!(
        !String::from_utf8_lossy(&installed.stdout).contains("ok installed"),
        "voicepay is already installed here: this test installs and purges its own"
    );
    let deb = package("amd64");
    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(out.status.success(), "dpkg -i: {}", stderr(&out));
    // What postinst printed: the next commands, the model's first.
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let purge = || run(Command::new("dpkg").args(["--purge", "voicepay"]));
    let checks = std::panic::catch_unwind(|| {
        assert!(
            said.contains("voicepay model install --models-dir /var/lib/voicepay/models"),
            "{said}"
        );
        for user in ["voicepay", "voicepay-agent"] {
            let out = run(Command::new("getent").args(["passwd", user]));
            assert!(out.status.success(), "no user {user}");
            let meta = std::fs::metadata(format!("/var/lib/{user}")).unwrap();
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            assert_eq!(meta.permissions().mode() & 0o777, 0o700, "/var/lib/{user}");
            let uid = String::from_utf8(out.stdout).unwrap();
            let uid: u32 = uid.split(':').nth(2).unwrap().parse().unwrap();
            assert_eq!(meta.uid(), uid, "/var/lib/{user} is not {user}'s");
        }
        let analyze = run(Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/voicepay.service"]));
        assert!(
            analyze.status.success() && analyze.stderr.is_empty(),
            "{}",
            stderr(&analyze)
        );
        let version = run(Command::new("/usr/bin/voicepay").arg("--version"));
        assert!(version.status.success(), "{}", stderr(&version));
    });
    let purged = purge();
    assert!(purged.status.success(), "dpkg --purge: {}", stderr(&purged));
    if let Err(failed) = checks {
        std::panic::resume_unwind(failed);
    }
    for gone in [
        "/usr/bin/voicepay",
        "/lib/systemd/system/voicepay.service",
        "/etc/voicepay",
        "/var/lib/voicepay",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} outlived the purge");
    }
}
