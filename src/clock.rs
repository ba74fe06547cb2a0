//! Time, in one place: wall-clock Unix milliseconds for the wire, days for daily limits, and a stopwatch for measuring work.
//!
//! `clippy.toml` bans `std::time::Instant::now` and `SystemTime::now`
//! elsewhere: waiting and deadlines use tokio's clock, which tests can pause.

/// Milliseconds since the Unix epoch, for timestamps that travel on the wire.
pub fn now_ms() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days since the Unix epoch (UTC) of a Unix-millisecond time: the key of daily limits.
pub fn day_of(ms: u64) -> u32 {
    (ms / 86_400_000) as u32
}

/// Measures work (transcription, a benchmark round); it schedules nothing,
/// so the real monotonic clock is right even in paused-clock tests.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        #[allow(clippy::disallowed_methods)]
        Stopwatch(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}
