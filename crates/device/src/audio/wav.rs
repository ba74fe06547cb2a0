//! Reads a WAV file of any rate, channel count and sample format into a 16 kHz mono utterance, and writes one back.

use std::path::{Path, PathBuf};

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::{SAMPLE_RATE, Utterance};

/// Longest clip we accept: a voice command is seconds long, and a huge file
/// would otherwise be decoded whole into memory.
pub const MAX_SECONDS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable WAV file: {source}")]
    Format { path: PathBuf, source: hound::Error },
    #[error("{path}: contains no audio samples")]
    Empty { path: PathBuf },
    #[error("{path}: longer than {MAX_SECONDS} s; a voice command is a few seconds")]
    TooLong { path: PathBuf },
    #[error("{path}: unsupported WAV format ({detail})")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: resampling from {rate} Hz failed: {detail}")]
    Resample {
        path: PathBuf,
        rate: u32,
        detail: String,
    },
}

/// Writes 16 kHz mono samples as 16-bit PCM, clipped to [-1, 1]. Written
/// aside and renamed, so a file half-written by an interrupted run is never
/// read as whole.
pub fn write_wav(path: &Path, samples: &[f32]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let partial = path.with_extension("partial");
    let mut writer = hound::WavWriter::create(&partial, spec)?;
    for s in samples {
        writer.write_sample((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)?;
    }
    writer.finalize()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Reads `path` and returns it as 16 kHz mono, channels averaged.
pub fn read_wav(path: &Path) -> Result<Utterance, WavError> {
    let file = std::fs::File::open(path).map_err(|source| WavError::Open {
        path: path.to_owned(),
        source,
    })?;
    let reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|source| {
        WavError::Format {
            path: path.to_owned(),
            source,
        }
    })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(WavError::Unsupported {
            path: path.to_owned(),
            detail: format!("{} channels at {} Hz", spec.channels, spec.sample_rate),
        });
    }
    let frames = u64::from(reader.duration());
    if frames > MAX_SECONDS * u64::from(spec.sample_rate) {
        return Err(WavError::TooLong {
            path: path.to_owned(),
        });
    }
    let interleaved = decode_samples(reader, path)?;
    let mono = mix_to_mono(&interleaved, usize::from(spec.channels));
    if mono.is_empty() {
        return Err(WavError::Empty {
            path: path.to_owned(),
        });
    }
    let samples = resample(&mono, spec.sample_rate).map_err(|detail| WavError::Resample {
        path: path.to_owned(),
        rate: spec.sample_rate,
        detail,
    })?;
    Ok(Utterance { samples })
}

fn decode_samples<R: std::io::Read>(
    mut reader: hound::WavReader<R>,
    path: &Path,
) -> Result<Vec<f32>, WavError> {
    let spec = reader.spec();
    let format_error = |source| WavError::Format {
        path: path.to_owned(),
        source,
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(format_error),
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            // Full scale of a signed integer of `bits` bits.
            let scale = (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<Vec<_>, _>>()
                .map_err(format_error)
        }
        (format, bits) => Err(WavError::Unsupported {
            path: path.to_owned(),
            detail: format!("{format:?} samples of {bits} bits"),
        }),
    }
}

fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// Resamples a whole mono clip to 16 kHz (FFT resampler: fixed ratio, best quality).
pub fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE {
        return Ok(mono.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| e.to_string())?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| e.to_string())?;
    let output = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| e.to_string())?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_spec(path: &Path, spec: hound::WavSpec, frames: usize, f: impl Fn(usize) -> f32) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            for _ in 0..spec.channels {
                let v = f(i);
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(v).unwrap(),
                    (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                    (_, 24) => w.write_sample((v * 8_388_607.0) as i32).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    _ => unreachable!(),
                }
            }
        }
        w.finalize().unwrap();
    }

    fn sine(rate: u32, hz: f32) -> impl Fn(usize) -> f32 {
        move |i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()
    }

    #[test]
    fn what_is_written_reads_back_as_the_same_samples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.wav");
        let samples: Vec<f32> = (0..16_000).map(sine(16_000, 220.0)).collect();
        write_wav(&path, &samples).unwrap();
        let back = read_wav(&path).unwrap().samples;
        assert_eq!(back.len(), samples.len());
        assert!(back.iter().zip(&samples).all(|(a, b)| (a - b).abs() < 1e-3));
        assert!(!path.with_extension("partial").exists());
    }

    #[test]
    fn stereo_44k_float_becomes_16k_mono_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        write_spec(&path, spec, 44_100, sine(44_100, 440.0));
        let u = read_wav(&path).unwrap();
        assert!(
            (u.samples.len() as i64 - 16_000).abs() <= 2,
            "{}",
            u.samples.len()
        );
        // A 0.5-amplitude sine has an RMS of 0.354; resampling keeps the level.
        assert!((u.rms() - 0.354).abs() < 0.02, "rms {}", u.rms());
    }

    #[test]
    fn integer_formats_are_scaled_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, rate) in [(16, 16_000), (24, 48_000), (8, 8_000)] {
            let path = dir.path().join(format!("{bits}.wav"));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: hound::SampleFormat::Int,
            };
            write_spec(&path, spec, rate as usize / 2, sine(rate, 300.0));
            let u = read_wav(&path).unwrap();
            assert!(
                (u.samples.len() as i64 - 8_000).abs() <= 2,
                "{bits}: {}",
                u.samples.len()
            );
            assert!((u.rms() - 0.354).abs() < 0.03, "{bits}: rms {}", u.rms());
        }
    }

    #[test]
    fn bad_files_get_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.wav");
        let err = read_wav(&missing).unwrap_err().to_string();
        assert!(
            err.contains("missing.wav") && err.contains("cannot open"),
            "{err}"
        );

        let text = dir.path().join("text.wav");
        std::fs::write(&text, b"this is not audio at all").unwrap();
        let err = read_wav(&text).unwrap_err().to_string();
        assert!(
            err.contains("text.wav") && err.contains("not a readable WAV"),
            "{err}"
        );

        let empty = dir.path().join("empty.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write_spec(&empty, spec, 0, |_| 0.0);
        let err = read_wav(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.wav") && err.contains("no audio"),
            "{err}"
        );

        let truncated = dir.path().join("truncated.wav");
        write_spec(&truncated, spec, 16_000, |_| 0.1);
        let bytes = std::fs::read(&truncated).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2 + 1]).unwrap();
        let err = read_wav(&truncated).unwrap_err().to_string();
        assert!(err.contains("truncated.wav"), "{err}");
    }
}
