//! The one reading of the wall clock. Porta's operations take the time as
//! an argument (Unix seconds) so that they can be tested at any time; only
//! the programs' entry points — a request arriving, a timer firing — read
//! it, here.

//!
//! The wall clock can be stepped (an operator, NTP catching up after a
//! dead battery); the monotonic clock cannot. [`ClockWatch`] compares the
//! two and says when the wall clock jumped, so that what was dated or
//! stamped by the wrong clock can be put right.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A step of the wall clock smaller than this is drift, not a step.
pub const STEP: Duration = Duration::from_secs(60);

/// Watches the wall clock against the monotonic one (sans-IO: both
/// readings are arguments).
#[derive(Clone, Copy, Debug)]
pub struct ClockWatch {
    wall: u64,
    mono: Instant,
}

impl ClockWatch {
    /// Starts from the readings `wall` (Unix seconds) and `mono`.
    pub fn new(wall: u64, mono: Instant) -> Self {
        Self { wall, mono }
    }

    /// The wall clock's step since the last reading, in seconds (negative:
    /// back), if it moved [`STEP`] or more away from the monotonic clock;
    /// the new readings are the reference from now on.
    pub fn step(&mut self, wall: u64, mono: Instant) -> Option<i64> {
        let expected = i128::from(self.wall) + mono.duration_since(self.mono).as_secs() as i128;
        let step = i128::from(wall) - expected;
        *self = Self { wall, mono };
        (step.unsigned_abs() >= u128::from(STEP.as_secs()))
            .then(|| i64::try_from(step).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_both_ways_are_seen_and_drift_is_not() {
        let start = Instant::now();
        let mut watch = ClockWatch::new(1_000, start);
        assert_eq!(watch.step(1_010, start + Duration::from_secs(10)), None);
        assert_eq!(
            watch.step(1_010 + 5 + 3_600, start + Duration::from_secs(15)),
            Some(3_600)
        );
        assert_eq!(
            watch.step(1_020, start + Duration::from_secs(20)),
            Some(-3_600)
        );
        assert_eq!(watch.step(1_050, start + Duration::from_secs(49)), None);
    }
}
