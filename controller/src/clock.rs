//! The controller's one reading of the wall clock ([`porta_proto::clock`]).
//! Operations below the API and the gateway take the time as an argument
//! (Unix seconds), so they can be tested with any time; their callers read
//! it here.
//!
//! The wall clock can be stepped (an operator, NTP catching up after a
//! dead battery); the monotonic clock cannot. [`ClockWatch`] compares the
//! two and says when the wall clock jumped, so that what was dated by the
//! wrong clock can be put right (invitations made while it ran ahead).

pub use porta_proto::clock::now;
use std::time::{Duration, Instant};

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
