//! Slaney-style mel filterbank (as librosa computes it) for whisper.cpp's model header.
//!
//! whisper.cpp reads the filters from the model file instead of computing them; OpenAI
//! ships `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` (and 128 for large-v3).
//! This reproduces that computation in f64 and rounds to f32 once, as librosa does.

/// Whisper's audio sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's FFT size (25 ms windows).
pub const N_FFT: usize = 400;
/// Mel bands of every Whisper model before large-v3.
pub const N_MELS: usize = 80;

/// A filterbank: `n_mels` rows of `n_bins` weights, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    pub n_mels: usize,
    /// FFT bins, `n_fft / 2 + 1` (the header's field calls this `n_fft`).
    pub n_bins: usize,
    pub data: Vec<f32>,
}

impl MelFilters {
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_bins..(mel + 1) * self.n_bins]
    }
}

/// Whisper's filterbank for `n_mels` bands (80, or 128 for large-v3).
pub fn whisper_mel_filters(n_mels: usize) -> MelFilters {
    slaney_mel_filters(f64::from(SAMPLE_RATE), N_FFT, n_mels)
}

/// librosa's `filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")`.
pub fn slaney_mel_filters(sample_rate: f64, n_fft: usize, n_mels: usize) -> MelFilters {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * sample_rate / n_fft as f64)
        .collect();

    // n_mels + 2 points evenly spaced in mel between 0 Hz and Nyquist: band i rises
    // from point i to point i + 1 and falls to point i + 2.
    let min_mel = hz_to_mel(0.0);
    let max_mel = hz_to_mel(sample_rate / 2.0);
    let n_points = n_mels + 2;
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            // As numpy's linspace, end exactly on the endpoint.
            let m = if i == n_points - 1 {
                max_mel
            } else {
                min_mel + i as f64 * step
            };
            mel_to_hz(m)
        })
        .collect();

    let mut data = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        let (lo, center, hi) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        // Slaney normalisation: each triangle has unit area in Hz.
        let enorm = 2.0 / (hi - lo);
        for &f in &fft_freqs {
            let lower = (f - lo) / (center - lo);
            let upper = (hi - f) / (hi - center);
            let w = lower.min(upper).max(0.0);
            data.push((w * enorm) as f32);
        }
    }
    MelFilters {
        n_mels,
        n_bins,
        data,
    }
}

/// Slaney's mel scale: linear below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from librosa's algorithm run in numpy (float64, cast to float32);
    // they agree with OpenAI's `whisper/assets/mel_filters.npz` to 1.9e-9.
    const ENTRIES: [(usize, usize, f64); 12] = [
        (0, 1, 0.024_862_594_902_515_41),
        (0, 2, 0.0),
        (1, 2, 0.022_871_771_827_340_126),
        (1, 3, 0.0),
        (10, 25, 0.0),
        (40, 80, 0.0),
        (40, 42, 0.005_411_105_230_450_63),
        (40, 43, 0.014_735_565_520_823_002),
        (40, 44, 0.006_518_189_795_315_266),
        (79, 190, 0.002_232_054_946_944_117_5),
        (79, 199, 0.000_448_759_034_043_177_96),
        (79, 200, 0.0),
    ];
    const ROW_SUMS: [(usize, f64); 5] = [
        (0, 0.024_862_594_902_515_41),
        (1, 0.024_862_593_039_870_262),
        (10, 0.024_862_594_902_515_41),
        (40, 0.026_664_860_546_588_898),
        (79, 0.024_925_339_967_012_405),
    ];
    const TOTAL: f64 = 1.999_024_105_625_721_9;

    #[test]
    fn matches_librosa_for_whisper() {
        let m = whisper_mel_filters(N_MELS);
        assert_eq!((m.n_mels, m.n_bins, m.data.len()), (80, 201, 80 * 201));
        for (mel, bin, want) in ENTRIES {
            let got = f64::from(m.row(mel)[bin]);
            assert!((got - want).abs() <= 2e-9, "[{mel},{bin}] {got} != {want}");
        }
        for (mel, want) in ROW_SUMS {
            let got: f64 = m.row(mel).iter().map(|&v| f64::from(v)).sum();
            assert!(
                (got - want).abs() <= 1e-8,
                "row {mel} sums to {got}, not {want}"
            );
        }
        let total: f64 = m.data.iter().map(|&v| f64::from(v)).sum();
        assert!((total - TOTAL).abs() < 1e-7, "total {total}");
        assert!(m.data.iter().all(|&v| (0.0..0.026).contains(&v)));
    }

    #[test]
    fn band_supports_grow_with_frequency() {
        // Row 0 touches only bin 1, row 40 bins 42..=44, row 79 bins 186..=199.
        let m = whisper_mel_filters(N_MELS);
        let support = |r: usize| {
            let row = m.row(r);
            let first = row.iter().position(|&v| v > 0.0).unwrap();
            let last = row.iter().rposition(|&v| v > 0.0).unwrap();
            (first, last)
        };
        assert_eq!(support(0), (1, 1));
        assert_eq!(support(40), (42, 44));
        assert_eq!(support(79), (186, 199));
    }

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn large_v3_has_128_bands() {
        let m = whisper_mel_filters(128);
        assert_eq!((m.n_mels, m.n_bins), (128, 201));
    }
}
