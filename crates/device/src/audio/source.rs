//! Where utterances come from: WAV files in order, cut into utterances by the voice-activity segmenter (the microphone later), handed down a channel one at a time.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::segmenter::{self, SegmenterSettings};
use super::{Utterance, read_wav};

/// What an audio source hands the transcriber.
#[derive(Debug)]
pub enum Input {
    Utterance {
        /// Where it came from, for the user and the logs ("a.wav", "mic").
        name: String,
        utterance: Utterance,
        /// When it ended: the moment the user answered.
        arrived: Instant,
    },
    /// A clip that could not be read (a broken or wrong-format file).
    Unreadable { name: String, error: String },
}

/// Each file in order, cut into its utterances (a recording with chatter
/// and one command in it gives each apart; silence and noise give none);
/// the channel closes after the last. An utterance is named after its file,
/// and after where its speech starts when the file holds several
/// ("long.wav@12.3s").
pub fn files(paths: Vec<PathBuf>, vad: SegmenterSettings) -> mpsc::Receiver<Input> {
    // One ahead: the next utterance is cut while the current one is transcribed.
    let (tx, rx) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        for path in paths {
            let name = path.display().to_string();
            let inputs = match read_wav(&path) {
                Err(error) => vec![(name, Err(error.to_string()))],
                Ok(recording) => utterances(&name, &recording, vad)
                    .into_iter()
                    .map(|(name, utterance)| (name, Ok(utterance)))
                    .collect(),
            };
            for (name, heard) in inputs {
                let input = match heard {
                    // Stamped when it is ready to hand on, not when the file
                    // was read: files play as fast as they are heard.
                    Ok(utterance) => Input::Utterance {
                        name,
                        utterance,
                        arrived: Instant::now(),
                    },
                    Err(error) => Input::Unreadable { name, error },
                };
                if tx.blocking_send(input).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The utterances of one recording, each with its name.
fn utterances(
    name: &str,
    recording: &Utterance,
    vad: SegmenterSettings,
) -> Vec<(String, Utterance)> {
    let segments = segmenter::segments(&recording.samples, vad);
    if segments.is_empty() {
        tracing::info!(file = name, "no speech heard");
    }
    let several = segments.len() > 1;
    segments
        .into_iter()
        .map(|segment| {
            let name = if several {
                format!("{name}@{:.1}s", segment.speech_start_ms as f64 / 1000.0)
            } else {
                name.to_owned()
            };
            (name, segment.utterance)
        })
        .collect()
}
