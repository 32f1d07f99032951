//! Handshake initiations per source address (sans-IO).
//!
//! A handshake initiation costs a responder a Diffie-Hellman; WireGuard's
//! cookie mechanism (boringtun's `RateLimiter`, a global count) makes a
//! flood cost MAC checks and cookie replies instead — but a global count
//! also makes every honest laptop that connects during a flood wait for its
//! next retry (5 s), and answering 100,000 initiations a second with
//! cookies still starves established sessions. So, as the Linux kernel's
//! WireGuard does, each source address gets a small token bucket of
//! initiations ([`PER_SECOND`], bursts of [`BURST`]); what exceeds it is
//! dropped before any cryptography. One flooding address then costs a hash
//! lookup per packet, and everyone else's handshakes go through at once.
//! Spoofed floods from many addresses still meet the global cookie limit.
//!
//! The table forgets addresses whose bucket is full again, and never holds
//! more than [`MAX_SOURCES`] (beyond that, new addresses are let through to
//! the global limit rather than refused).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Initiations a source may send per second, sustained.
pub const PER_SECOND: f64 = 20.0;
/// Initiations a source may send at once.
pub const BURST: f64 = 5.0;
/// Sources tracked at most.
pub const MAX_SOURCES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by source address.
#[derive(Debug, Default)]
pub struct HandshakeThrottle {
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl HandshakeThrottle {
    /// Whether an initiation from `source` at `now` may be looked at.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        self.sweep(now);
        if let Some(bucket) = self.buckets.get_mut(&source) {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
            bucket.at = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if self.buckets.len() < MAX_SOURCES {
            self.buckets.insert(
                source,
                Bucket {
                    tokens: BURST - 1.0,
                    at: now,
                },
            );
        }
        true
    }

    /// Once a second: forgets sources whose bucket has refilled.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let refill = Duration::from_secs_f64(BURST / PER_SECOND);
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.at) < refill);
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_flooding_source_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let mut throttle = HandshakeThrottle::default();
        let start = Instant::now();
        let flooder = ip("192.0.2.66");
        let allowed = (0..1_000)
            .filter(|_| throttle.allow(flooder, start))
            .count();
        assert_eq!(allowed, BURST as usize);
        assert!(
            throttle.allow(ip("198.51.100.7"), start),
            "a laptop elsewhere"
        );
        // One second later: about PER_SECOND more.
        let later = start + Duration::from_secs(1);
        let allowed = (0..1_000)
            .filter(|_| throttle.allow(flooder, later))
            .count();
        assert_eq!(
            allowed, BURST as usize,
            "refilled up to the burst, not beyond"
        );
    }

    #[test]
    fn quiet_sources_are_forgotten_and_the_table_is_bounded() {
        let mut throttle = HandshakeThrottle::default();
        let start = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            assert!(throttle.allow(IpAddr::from(i.to_be_bytes()), start));
        }
        assert_eq!(throttle.len(), MAX_SOURCES);
        throttle.allow(ip("192.0.2.1"), start + Duration::from_secs(2));
        assert_eq!(throttle.len(), 1);
    }
}
