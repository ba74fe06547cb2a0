//! Where utterances come from: WAV files in order now (the microphone and the voice-activity segmenter later), handed down a channel one at a time.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// Each file in order as one utterance; the channel closes after the last.
pub fn files(paths: Vec<PathBuf>) -> mpsc::Receiver<Input> {
    // One ahead: the next file is read while the current one is transcribed.
    let (tx, rx) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        for path in paths {
            let name = path.display().to_string();
            let input = match read_wav(&path) {
                Ok(utterance) => Input::Utterance {
                    name,
                    utterance,
                    arrived: Instant::now(),
                },
                Err(error) => Input::Unreadable {
                    name,
                    error: error.to_string(),
                },
            };
            if tx.blocking_send(input).is_err() {
                break;
            }
        }
    });
    rx
}
