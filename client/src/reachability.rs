//! Whether the gateway answers, told to the person once per change.
//!
//! boringtun logs every handshake retry (`HANDSHAKE(REKEY_TIMEOUT)` every
//! 5 s while the gateway is unreachable); `porta up` keeps those out of
//! the default output and says instead, once, that it cannot reach the
//! gateway and keeps trying, and once more when it gets through. This is
//! the pure part: it looks at the time of the last handshake and at how
//! long data sent to the gateway has gone unanswered (a live WireGuard
//! peer answers data within 10 s, with data or its passive keepalive), so
//! a tunnel whose gateway went away is told within
//! [`UNANSWERED_AFTER`] of the first packet it lost, not minutes later
//! when the handshake ages.

use std::time::{Duration, Instant};

/// How long a tunnel may go without a first handshake before the person
/// is told.
pub const FIRST_HANDSHAKE_GRACE: Duration = Duration::from_secs(10);

/// A WireGuard session is renewed every two minutes while traffic (or the
/// keepalive) flows; a handshake older than this means the renewals fail.
pub const STALE_AFTER: Duration = Duration::from_secs(180 + 10);

/// Data unanswered this long means the gateway does not answer (10 s for
/// its passive keepalive, and room for a slow path).
pub const UNANSWERED_AFTER: Duration = Duration::from_secs(13);

/// A change worth telling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// No handshake gets through (yet, or any more).
    Unreachable,
    /// A handshake got through after [`Notice::Unreachable`].
    Reached,
}

/// Follows the last handshake time and says when reachability changes.
#[derive(Debug)]
pub struct GatewayWatch {
    started: Instant,
    /// With a keepalive the tunnel handshakes even when idle, so an old
    /// handshake means trouble; without one, an idle tunnel is quiet.
    keepalive: bool,
    told_unreachable: bool,
}

impl GatewayWatch {
    /// Starts watching at `now`.
    pub fn new(now: Instant, keepalive: bool) -> Self {
        Self {
            started: now,
            keepalive,
            told_unreachable: false,
        }
    }

    /// Looks at the last handshake (if any) and at since when data has
    /// gone unanswered (if it has), at `now`.
    pub fn observe(
        &mut self,
        now: Instant,
        last_handshake: Option<Instant>,
        unanswered_since: Option<Instant>,
    ) -> Option<Notice> {
        let unanswered =
            unanswered_since.is_some_and(|since| now.duration_since(since) >= UNANSWERED_AFTER);
        let unreachable = unanswered
            || match last_handshake {
                None => now.duration_since(self.started) >= FIRST_HANDSHAKE_GRACE,
                Some(at) => self.keepalive && now.duration_since(at) >= STALE_AFTER,
            };
        match (unreachable, self.told_unreachable) {
            (true, false) => {
                self.told_unreachable = true;
                Some(Notice::Unreachable)
            }
            (false, true) if last_handshake.is_some() => {
                self.told_unreachable = false;
                Some(Notice::Reached)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_gateway_is_told_once_and_its_return_once() {
        let start = Instant::now();
        let mut watch = GatewayWatch::new(start, true);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(watch.observe(at(2), None, None), None, "within the grace");
        assert_eq!(watch.observe(at(10), None, None), Some(Notice::Unreachable));
        assert_eq!(watch.observe(at(15), None, None), None, "said once");
        assert_eq!(
            watch.observe(at(20), Some(at(19)), None),
            Some(Notice::Reached)
        );
        assert_eq!(watch.observe(at(25), Some(at(19)), None), None);
    }

    #[test]
    fn a_first_handshake_in_time_says_nothing() {
        let start = Instant::now();
        let mut watch = GatewayWatch::new(start, true);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(watch.observe(at(1), Some(at(1)), None), None);
        assert_eq!(watch.observe(at(100), Some(at(90)), None), None);
    }

    #[test]
    fn failing_renewals_are_told_only_with_a_keepalive() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut kept_alive = GatewayWatch::new(start, true);
        assert_eq!(
            kept_alive.observe(at(300), Some(at(100)), None),
            Some(Notice::Unreachable)
        );
        assert_eq!(
            kept_alive.observe(at(320), Some(at(319)), None),
            Some(Notice::Reached)
        );
        let mut idle = GatewayWatch::new(start, false);
        assert_eq!(idle.observe(at(3000), Some(at(100)), None), None);
    }

    #[test]
    fn a_gateway_that_stops_answering_data_is_told_within_seconds() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut watch = GatewayWatch::new(start, true);
        // A fresh handshake, and data unanswered since second 60.
        assert_eq!(watch.observe(at(65), Some(at(50)), Some(at(60))), None);
        assert_eq!(
            watch.observe(at(73), Some(at(50)), Some(at(60))),
            Some(Notice::Unreachable),
            "13 s unanswered, though the handshake is fresh"
        );
        // An answer clears it.
        assert_eq!(
            watch.observe(at(80), Some(at(79)), None),
            Some(Notice::Reached)
        );
    }
}
