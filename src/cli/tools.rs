//! `voicepay demo`, `eval` and `bench`: the whole flow on fixtures, the evaluation corpus, and the measurements.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use voicepay_core::transport::BrokerUrl;
use voicepay_device::language::Language;
use voicepay_device::profile::DeviceProfile;
use voicepay_tools::{bench, corpus, demo, eval};

use super::args::EvalArgs;

pub fn demo(
    profile: DeviceProfile,
    broker: Option<BrokerUrl>,
    json: bool,
    fixtures: PathBuf,
) -> Result<ExitCode> {
    let options = demo::DemoOptions {
        broker,
        json,
        fixtures,
    };
    tokio::runtime::Runtime::new()?.block_on(demo::run(profile, options))?;
    Ok(ExitCode::SUCCESS)
}

pub fn eval(args: EvalArgs, profile: &DeviceProfile) -> Result<ExitCode> {
    let EvalArgs {
        language,
        corpus,
        cache,
        split,
        seed,
        sample,
        json,
        misses,
        text,
        recorded,
        engines,
        render_only,
    } = args;
    let language = match language {
        Some(code) => corpus::Language::from_code(&code)
            .with_context(|| format!("--language {code:?}: en or zh"))?,
        None => {
            let code = profile.language.code();
            corpus::Language::from_code(code)
                .with_context(|| format!("the profile's language {code:?} has no corpus"))?
        }
    };
    let corpus = corpus.unwrap_or_else(|| PathBuf::from(language.corpus()));
    let engines = match engines {
        Some(engines) => corpus::Engines::parse(&engines)
            .with_context(|| format!("--engines {engines:?}: robotic, natural or all"))?,
        None => language.default_engines(),
    };
    let split = match split.as_str() {
        "dev" => Some(corpus::Split::Dev),
        "test" => Some(corpus::Split::Test),
        "all" => None,
        other => anyhow::bail!("--split {other:?}: dev, test or all"),
    };
    let options = eval::EvalOptions {
        language,
        corpus,
        cache,
        split,
        seed,
        sample,
        text,
        recorded,
        engines,
    };
    let bar = ProgressBar::hidden();
    if !json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {msg} {eta}",
        )?);
    }
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_owned());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    if render_only {
        let done = eval::render(&options, progress)?;
        bar.finish_and_clear();
        println!(
            "{} clips in {} in {:.0} s; {} natural sentences rendered in {:.0} s ({:.2} s each)",
            done.clips,
            options.cache.display(),
            done.seconds,
            done.speech,
            done.speech_seconds,
            done.speech_seconds / done.speech.max(1) as f64
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = eval::run(profile, &profile.payee_book(), &options, progress)?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
        if misses {
            for r in report.results.iter().filter(|r| !r.exact) {
                println!(
                    "MISS {} [{} {:?} {}] heard {:?} ({:.2}) -> {}",
                    r.id, r.voice, r.rate, r.noise, r.transcript, r.confidence, r.got
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `bench` keeps the clips it renders: `eval`'s default cache.
const BENCH_CACHE: &str = "target/corpus";

pub fn bench(profile: &DeviceProfile, fixtures: &Path, json: bool) -> Result<ExitCode> {
    if profile.language != Language::English {
        // The fixtures speak English: another language is benched on its corpus.
        let report = bench::run_language(profile, Path::new(BENCH_CACHE))?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{report}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = bench::run(profile, fixtures)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
