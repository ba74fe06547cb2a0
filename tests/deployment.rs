//! Security for a deployment: the gateway and the daemon pay through a mosquitto that speaks only TLS and asks for a password (with a certificate the test makes), and keep their files to themselves.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use util::*;

/// A CA and a broker certificate for 127.0.0.1 signed by it, as PEM files.
struct Certificates {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn make_certificates(dir: &Path) -> Certificates {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "voicepay test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let files = Certificates {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, ca_cert.pem()).unwrap();
    std::fs::write(&files.server_cert, server_cert.pem()).unwrap();
    std::fs::write(&files.server_key, server_key.serialize_pem()).unwrap();
    files
}

/// A mosquitto password file with these logins, made by mosquitto's own tool.
fn password_file(dir: &Path, logins: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("passwd");
    for (i, (user, password)) in logins.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let status = cmd
            .arg("-b")
            .arg(&path)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd runs (scripts/setup.sh installs mosquitto)");
        assert!(status.success());
    }
    path
}

/// A password file only its owner may read (others are refused).
fn secret(dir: &Path, name: &str, password: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The embedded default profile with `mqtt` lines added (`[mqtt]` is its last table).
fn profile_with(dir: &Path, name: &str, mqtt: &str) -> String {
    let path = dir.join(name);
    let default = std::fs::read_to_string(root().join("devices/default.toml")).unwrap();
    std::fs::write(&path, format!("{default}\n{mqtt}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn payments_go_through_a_broker_that_speaks_only_tls_with_passwords_and_strangers_stay_out() {
    model();
    let secrets = tempfile::tempdir().unwrap();
    let certs = make_certificates(secrets.path());
    let passwd = password_file(
        secrets.path(),
        &[("gateway", "gw-secret"), ("glasses", "dev-secret")],
    );
    let port = free_port();
    let broker = Broker::start_with(
        port,
        &format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
            passwd.display(),
            certs.ca.display(),
            certs.server_cert.display(),
            certs.server_key.display()
        ),
    );
    let url = format!("mqtts://127.0.0.1:{}", broker.port);

    // In directories voicepay creates itself (a tempdir is 0700 already).
    let keys = Keys::new();
    let (gw, dev) = (keys.gw(), keys.dev());
    ok(&["limits", "set", "--auto", "20.00", "--data-dir", &dev]);

    let gateway_password = secret(secrets.path(), "gateway-password", "gw-secret");
    let mut gateway = Child::spawn(voicepay(&[
        "gateway",
        "run",
        "--broker",
        &url,
        "--ca-file",
        certs.ca.to_str().unwrap(),
        "--username",
        "gateway",
        "--password-file",
        &gateway_password,
        "--data-dir",
        &gw,
    ]));

    let pay = |profile: &str| run_fixture(&url, &dev, "pay_alice_20", Some(profile));
    let sent_offline = |steps: &[Value]| -> bool {
        let sent = steps.iter().find(|s| s["step"] == "sent").expect("sent");
        sent["offline"].as_bool().unwrap()
    };
    let ca = certs.ca.display();

    // Trusted CA, right password: online, approved.
    let right = secret(secrets.path(), "device-password", "dev-secret");
    let profile = profile_with(
        secrets.path(),
        "right.toml",
        &format!("ca_file = \"{ca}\"\nusername = \"glasses\"\npassword_file = \"{right}\""),
    );
    let steps = pay(&profile);
    assert!(!sent_offline(&steps), "paid through the TLS broker");
    let answer = steps
        .iter()
        .find(|s| s["step"] == "answer")
        .expect("answer");
    assert_eq!(answer["status"], "approved");

    // A wrong password: the broker refuses, so the device is offline.
    let wrong = secret(secrets.path(), "wrong-password", "guess");
    let profile = profile_with(
        secrets.path(),
        "wrong.toml",
        &format!("ca_file = \"{ca}\"\nusername = \"glasses\"\npassword_file = \"{wrong}\""),
    );
    assert!(sent_offline(&pay(&profile)), "a wrong password got in");

    // A password file group or others may read: refused at start, as key files are.
    let readable = secret(secrets.path(), "readable-password", "dev-secret");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let profile = profile_with(
        secrets.path(),
        "readable.toml",
        &format!("ca_file = \"{ca}\"\nusername = \"glasses\"\npassword_file = \"{readable}\""),
    );
    let out = run(voicepay(&[
        "--device",
        &profile,
        "run",
        "--json",
        "--broker",
        &url,
        "--data-dir",
        &dev,
        "--input",
        fixture("pay_alice_20.wav").to_str().unwrap(),
    ]));
    assert!(!out.status.success(), "a readable password file was used");
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    // The broker's certificate is not from a CA the device trusts.
    let other = tempfile::tempdir().unwrap();
    let stranger_ca = make_certificates(other.path()).ca;
    let profile = profile_with(
        secrets.path(),
        "stranger.toml",
        &format!(
            "ca_file = \"{}\"\nusername = \"glasses\"\npassword_file = \"{right}\"",
            stranger_ca.display()
        ),
    );
    assert!(
        sent_offline(&pay(&profile)),
        "trusted an unknown certificate"
    );

    assert!(gateway.terminate_within(Duration::from_secs(5)).success());
    let ledger = ok(&["gateway", "ledger", "--data-dir", &gw]);
    assert_eq!(ledger.lines().count(), 1, "{ledger}");

    // The data directories, the store and the ledger are the owner's alone.
    for top in [&gw, &dev] {
        assert_private(Path::new(top));
    }
}

/// Every directory under `dir` (and `dir`) is 0700 and every file 0600
/// (a public key or the device's public identity at most 0644).
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else if path.extension().is_some_and(|e| e == "pub")
            || path.to_string_lossy().ends_with(".pub.json")
        {
            // A public key: anyone may read it, nobody else write it.
            assert_eq!(mode(&path) & 0o133, 0, "{}", path.display());
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn tls_files_that_are_missing_or_not_pem_are_clear_errors_at_start() {
    let secrets = tempfile::tempdir().unwrap();
    let junk = secrets.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let gateway_dir = tempfile::tempdir().unwrap();
    ok(&["gateway", "init", "--data-dir", &dir(&gateway_dir)]);
    for (ca, expect) in [
        ("/nonexistent/ca.pem", "/nonexistent/ca.pem"),
        (junk.to_str().unwrap(), "no PEM certificate"),
    ] {
        let out = run(voicepay(&[
            "gateway",
            "run",
            "--broker",
            "mqtts://127.0.0.1:1",
            "--ca-file",
            ca,
            "--data-dir",
            &dir(&gateway_dir),
        ]));
        assert!(!out.status.success());
        assert!(stderr(&out).contains(expect), "{}", stderr(&out));
    }
    let out = run(voicepay(&[
        "gateway",
        "run",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--ca-file",
        junk.to_str().unwrap(),
        "--data-dir",
        &dir(&gateway_dir),
    ]));
    assert!(stderr(&out).contains("not mqtts://"), "{}", stderr(&out));
}
