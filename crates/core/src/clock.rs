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

const DAY_MS: i64 = 86_400_000;

/// Where a day starts: daily limits reset at midnight in a time zone (the
/// profile's for the device, UTC for the gateway).
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    zone: jiff::tz::TimeZone,
    name: String,
}

impl Calendar {
    pub fn utc() -> Calendar {
        Calendar {
            zone: jiff::tz::TimeZone::UTC,
            name: "UTC".to_owned(),
        }
    }

    /// An IANA zone name ("Asia/Shanghai"), or "system" for the zone the
    /// device is set to (UTC when it has none). The zone database is built
    /// in, so a device without one still knows every zone.
    pub fn named(name: &str) -> Result<Calendar, String> {
        let zone = if name == "system" {
            jiff::tz::TimeZone::system()
        } else {
            jiff::tz::TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?
        };
        Ok(Calendar {
            zone,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local calendar day of a Unix-millisecond time, as days since
    /// 1970-01-01: the key of daily limits.
    pub fn day_of(&self, ms: u64) -> u32 {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let offset_ms = jiff::Timestamp::from_millisecond(ms)
            .map_or(0, |t| i64::from(self.zone.to_offset(t).seconds()) * 1000);
        u32::try_from(ms.saturating_add(offset_ms).div_euclid(DAY_MS)).unwrap_or(0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(date_time: &str, zone: &str) -> u64 {
        let zoned = date_time
            .parse::<jiff::civil::DateTime>()
            .unwrap()
            .in_tz(zone)
            .unwrap();
        zoned.timestamp().as_millisecond() as u64
    }

    #[test]
    fn a_day_ends_at_local_midnight_in_the_calendars_zone() {
        let shanghai = Calendar::named("Asia/Shanghai").unwrap();
        let before = ms("2026-12-01T23:59:59.999", "Asia/Shanghai");
        let after = ms("2026-12-02T00:00:00", "Asia/Shanghai");
        assert_eq!(shanghai.day_of(after), shanghai.day_of(before) + 1);
        // Both instants fall on one UTC day (15:59 and 16:00 UTC).
        let utc = Calendar::utc();
        assert_eq!(utc.day_of(before), utc.day_of(after));
        assert_eq!(utc.day_of(after), 20_788); // 2026-12-01
        assert_eq!(shanghai.day_of(after), 20_789);
    }

    #[test]
    fn a_short_daylight_saving_day_is_still_one_day() {
        // 2026-03-29 has 23 hours in Berlin.
        let berlin = Calendar::named("Europe/Berlin").unwrap();
        let early = ms("2026-03-29T00:30:00", "Europe/Berlin");
        let late = ms("2026-03-29T23:30:00", "Europe/Berlin");
        let next = ms("2026-03-30T00:00:00", "Europe/Berlin");
        assert_eq!(berlin.day_of(early), berlin.day_of(late));
        assert_eq!(berlin.day_of(next), berlin.day_of(late) + 1);
    }

    #[test]
    fn an_unknown_zone_is_named_in_the_error() {
        let error = Calendar::named("Mars/Olympus_Mons").unwrap_err();
        assert!(error.contains("Mars/Olympus_Mons"), "{error}");
        assert!(Calendar::named("system").is_ok());
    }
}
