//! The honest corpus in CI: a seeded sample of the test half, rendered by both speech engines and heard by the real model, held to the figure the README reports.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use serde_json::Value;
use util::*;

/// The README line this test holds the product to, e.g.
/// "CI sample (300 clips of the test half, seed 1): 41.3% exact".
fn readme_figure() -> (usize, u64, f64) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("CI sample ("))
        .expect("README.md states the CI sample's figure");
    let number = |after: &str, until: char| -> String {
        let start = line.find(after).unwrap() + after.len();
        line[start..].chars().take_while(|c| *c != until).collect()
    };
    let clips = number("CI sample (", ' ').parse().unwrap();
    let seed = number("seed ", ')').parse().unwrap();
    let percent = number("): ", '%').parse().unwrap();
    (clips, seed, percent)
}

#[test]
fn a_sample_of_the_test_half_holds_the_readme_figure_and_pays_no_one_unheard() {
    model();
    let (clips, seed, figure) = readme_figure();
    let out = run(voicepay(&[
        "eval",
        "--split",
        "test",
        "--sample",
        &clips.to_string(),
        "--seed",
        &seed.to_string(),
        "--json",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["split"], "test");
    let exact = report["overall"]["exact"].as_u64().unwrap() as f64;
    let total = report["overall"]["clips"].as_u64().unwrap() as f64;
    assert_eq!(total as usize, clips);
    let percent = exact * 100.0 / total;
    assert!(
        percent >= figure - 2.0,
        "{percent:.1}% exact on the CI sample, more than 2 points under the README's {figure}%"
    );
    let unheard = report["false_payments"].as_array().unwrap();
    assert!(
        unheard.is_empty(),
        "money would move unheard: {}",
        serde_json::to_string_pretty(unheard).unwrap()
    );
    // Every noise condition and both engines are in the sample.
    for key in ["by_noise", "by_engine"] {
        let groups = report[key].as_object().unwrap();
        assert!(groups.len() >= 2, "{key}: {groups:?}");
    }
    assert_eq!(report["by_noise"].as_object().unwrap().len(), 4);
}

#[test]
fn the_corpus_covers_every_intent_kind_in_both_halves() {
    let sentences = voicepay::tools::corpus::load(&root().join("corpus/sentences.tsv")).unwrap();
    assert!(sentences.len() >= 150, "{} sentences", sentences.len());
    let census = voicepay::tools::corpus::census(&sentences);
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
            voicepay::tools::corpus::Split::Dev,
            voicepay::tools::corpus::Split::Test,
        ] {
            assert!(
                census.get(&(kind.to_owned(), split)).copied().unwrap_or(0) > 0,
                "no {kind} sentence in the {split:?} half"
            );
        }
    }
}
