//! Failed authentication: who is guessing, and when to stop answering them
//! (sans-IO; the API layer feeds it addresses and the time).
//!
//! Every wrong credential or invitation is one failure of its source
//! address. A source with more than [`Ledger::LIMIT`] failures within
//! [`Ledger::WINDOW`] is throttled for [`Ledger::BLOCK`]: its calls are
//! refused before any credential is looked at, so guessing gets nowhere
//! however fast it goes. Each failure is logged — until its source is
//! throttled, then once per block — so the log stays readable under a flood
//! and an intrusion-prevention tool (fail2ban) sees every guessing source.
//! Loopback sources are logged but never throttled: they are the
//! controller's own host, and an operator locked out of it would have no
//! way back in (fail2ban's defaults ignore them too). Memory is bounded: sources are forgotten once their window and block
//! have passed, and at most [`Ledger::MAX_SOURCES`] are tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures and throttling by source address.
#[derive(Debug, Default)]
pub struct Ledger {
    sources: HashMap<IpAddr, Source>,
}

#[derive(Debug)]
struct Source {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// What to do with a call from a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look at its credential.
    Allowed,
    /// Refuse it unread.
    Throttled {
        /// When the source may try again.
        retry_after: Duration,
    },
}

/// What a failure means for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Log it.
    Log,
    /// Log it, and that its source is now throttled.
    Throttle,
}

impl Ledger {
    /// Failures a source may have within [`Self::WINDOW`].
    pub const LIMIT: u32 = 10;
    /// The window failures are counted in.
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// How long a source that went over the limit is refused.
    pub const BLOCK: Duration = Duration::from_secs(300);
    /// Sources tracked at most (a spread-out attack cannot grow memory
    /// without bound; past this, the oldest windows are dropped).
    pub const MAX_SOURCES: usize = 100_000;

    /// Whether a call from `source` is looked at, at `now`.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> Verdict {
        if source.is_loopback() {
            return Verdict::Allowed;
        }
        match self.sources.get(&source).and_then(|s| s.blocked_until) {
            Some(until) if until > now => Verdict::Throttled {
                retry_after: until - now,
            },
            _ => Verdict::Allowed,
        }
    }

    /// Records a failed authentication from `source` at `now`.
    pub fn fail(&mut self, source: IpAddr, now: Instant) -> Failure {
        if source.is_loopback() {
            return Failure::Log;
        }
        if self.sources.len() >= Self::MAX_SOURCES && !self.sources.contains_key(&source) {
            self.forget_before(now);
        }
        let entry = self.sources.entry(source).or_insert(Source {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.duration_since(entry.window_start) > Self::WINDOW {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures > Self::LIMIT {
            entry.blocked_until = Some(now + Self::BLOCK);
            entry.window_start = now;
            entry.failures = 0;
            Failure::Throttle
        } else {
            Failure::Log
        }
    }

    /// Drops sources with nothing left to remember at `now` (or, if every
    /// source is still live, the half with the oldest windows).
    fn forget_before(&mut self, now: Instant) {
        self.sources.retain(|_, s| {
            now.duration_since(s.window_start) <= Self::WINDOW
                || s.blocked_until.is_some_and(|until| until > now)
        });
        if self.sources.len() >= Self::MAX_SOURCES {
            let mut starts: Vec<Instant> = self.sources.values().map(|s| s.window_start).collect();
            starts.sort_unstable();
            let cutoff = starts[starts.len() / 2];
            self.sources.retain(|_, s| s.window_start > cutoff);
        }
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_guessing_source_is_throttled_and_others_are_not() {
        let mut ledger = Ledger::default();
        let start = Instant::now();
        let guesser = ip("192.0.2.66");
        for i in 0..Ledger::LIMIT {
            assert_eq!(ledger.check(guesser, start), Verdict::Allowed, "try {i}");
            assert_eq!(ledger.fail(guesser, start), Failure::Log);
        }
        assert_eq!(ledger.fail(guesser, start), Failure::Throttle);
        assert!(matches!(
            ledger.check(guesser, start + Duration::from_secs(10)),
            Verdict::Throttled { retry_after } if retry_after == Ledger::BLOCK - Duration::from_secs(10)
        ));
        assert_eq!(ledger.check(ip("192.0.2.1"), start), Verdict::Allowed);
        // The block ends.
        assert_eq!(
            ledger.check(guesser, start + Ledger::BLOCK + Duration::from_secs(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn the_controller_s_own_host_is_never_throttled() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(ledger.fail(ip("127.0.0.1"), now), Failure::Log);
            assert_eq!(ledger.fail(ip("::1"), now), Failure::Log);
        }
        assert_eq!(ledger.check(ip("127.0.0.1"), now), Verdict::Allowed);
        assert!(ledger.is_empty());
    }

    #[test]
    fn slow_mistakes_never_throttle() {
        let mut ledger = Ledger::default();
        let mut now = Instant::now();
        let clerk = ip("198.51.100.4");
        for _ in 0..100 {
            assert_eq!(ledger.fail(clerk, now), Failure::Log);
            now += Ledger::WINDOW / 5;
        }
        assert_eq!(ledger.check(clerk, now), Verdict::Allowed);
    }

    #[test]
    fn memory_stays_bounded_under_a_spread_out_attack() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        for i in 0..(Ledger::MAX_SOURCES as u32 + 5_000) {
            ledger.fail(
                IpAddr::from(i.to_be_bytes()),
                now + Duration::from_micros(u64::from(i)),
            );
        }
        assert!(ledger.len() <= Ledger::MAX_SOURCES, "{}", ledger.len());
    }
}
