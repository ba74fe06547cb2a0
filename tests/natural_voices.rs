//! The natural voices in CI: a seeded sample of the natural panel (Piper, Kokoro-82M, Festival HTS), rendered for real from the installed packages into a fresh cache and heard by the real model.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use util::*;

/// Clips in the sample: every engine and noise condition appears, and the
/// rendering (about 30 sentences, two Kokoro model loads) stays near a minute.
const CLIPS: usize = 30;

#[test]
fn a_sample_of_the_natural_voices_is_rendered_from_the_packages_and_heard() {
    model();
    // A fresh cache: every clip is rendered here, none read from an earlier run.
    let cache = tempfile::tempdir().unwrap();
    let clips = CLIPS.to_string();
    let out = run(voicepay(&[
        "eval",
        "--split",
        "test",
        "--engines",
        "natural",
        "--sample",
        &clips,
        "--seed",
        "1",
        "--json",
        "--cache",
        &dir(&cache),
    ]));
    assert!(
        out.status.success(),
        "{} (scripts/voices.sh installs the voices)",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["engines"], "natural");
    assert_eq!(report["split"], "test");
    assert_eq!(report["overall"]["clips"], CLIPS);
    // Each engine reports as its own; no robotic voice is in the natural panel.
    let engines: Vec<&String> = report["by_engine"].as_object().unwrap().keys().collect();
    assert_eq!(engines, ["festival", "kokoro", "piper"]);
    assert_eq!(report["by_noise"].as_object().unwrap().len(), 4);
    let results = report["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["rate"] == "normal"));

    // Rendered once per voice and sentence, whatever the noise: the speech
    // files in the cache are exactly the (voice, sentence) pairs heard.
    let pairs: BTreeSet<(String, String)> = results
        .iter()
        .map(|r| {
            let voice = format!(
                "{}-{}",
                r["engine"].as_str().unwrap(),
                r["voice"].as_str().unwrap()
            );
            (voice, r["id"].as_str().unwrap().to_owned())
        })
        .collect();
    let speech: Vec<String> = std::fs::read_dir(cache.path().join("natural"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wav"))
        .collect();
    assert_eq!(speech.len(), pairs.len(), "{speech:?}");
    for (voice, _) in &pairs {
        assert!(speech.iter().any(|name| name.starts_with(voice.as_str())));
    }

    // What was heard is the sentence: most of its words other than numbers
    // (which come back as digits) are in the transcript. Measured: 0.82 of
    // them on this sample with tiny.en; a silent or garbled voice is near 0.
    let numbers: BTreeSet<&str> = "zero one two three four five six seven eight nine ten eleven \
        twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty \
        fifty sixty seventy eighty ninety hundred thousand and a"
        .split_whitespace()
        .collect();
    let sentences = voicepay_tools::corpus::load(&root().join("corpus/sentences.tsv")).unwrap();
    let text: HashMap<&str, &str> = sentences
        .iter()
        .map(|s| (s.id.as_str(), s.text.as_str()))
        .collect();
    let words = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let mut recall = 0.0;
    for r in results {
        let mut said = words(text[r["id"].as_str().unwrap()]);
        said.retain(|w| !numbers.contains(w.as_str()));
        let heard = words(r["transcript"].as_str().unwrap());
        recall += said.intersection(&heard).count() as f64 / said.len().max(1) as f64;
    }
    let recall = recall / results.len() as f64;
    assert!(
        recall >= 0.65,
        "only {recall:.2} of the sentences' words heard"
    );

    // As for the robotic panel: no money moves unheard.
    let unheard = report["false_payments"].as_array().unwrap();
    assert!(
        unheard.is_empty(),
        "money would move unheard: {}",
        serde_json::to_string_pretty(unheard).unwrap()
    );
}
