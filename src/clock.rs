//! Wall-clock time as it travels on the wire (Unix milliseconds) and the days daily limits count in.

/// Milliseconds since the Unix epoch, for timestamps that travel on the wire.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days since the Unix epoch (UTC) of a Unix-millisecond time: the key of daily limits.
pub fn day_of(ms: u64) -> u32 {
    (ms / 86_400_000) as u32
}
