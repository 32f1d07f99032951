//! Noticing that the computer woke from suspend or changed network (a new
//! address, Wi-Fi to cable), so the tunnel service can renew the tunnel at
//! once instead of waiting for WireGuard's timers and TCP's timeouts.
//!
//! This is the pure part: it compares what it is shown. The IO shell
//! ([`crate::connection`]) shows it, every few seconds, the two clocks and
//! the computer's addresses.
//!
//! * Suspend: `CLOCK_BOOTTIME` counts the time asleep, `CLOCK_MONOTONIC`
//!   does not; when the gap between them grows, the computer slept.
//! * Network: the set of addresses outside the tunnel changed. An empty
//!   set is "no network".

use std::net::IpAddr;
use std::time::Duration;

/// A sleep shorter than this is not worth a renewal (scheduling noise).
pub const SLEPT_AT_LEAST: Duration = Duration::from_secs(3);

/// What changed since the last look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The computer slept this long.
    Resumed(Duration),
    /// The addresses outside the tunnel changed (now these).
    Addresses(Vec<IpAddr>),
}

/// Remembers the last look.
#[derive(Debug)]
pub struct NetworkWatch {
    /// `boottime - monotonic` at the last look.
    asleep: Duration,
    addresses: Vec<IpAddr>,
}

impl NetworkWatch {
    /// Starts from a first look.
    pub fn new(boottime: Duration, monotonic: Duration, addresses: Vec<IpAddr>) -> Self {
        Self {
            asleep: boottime.saturating_sub(monotonic),
            addresses: normalized(addresses),
        }
    }

    /// Looks again; the changes since the last look, sleep first.
    pub fn observe(
        &mut self,
        boottime: Duration,
        monotonic: Duration,
        addresses: Vec<IpAddr>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let asleep = boottime.saturating_sub(monotonic);
        let slept = asleep.saturating_sub(self.asleep);
        self.asleep = asleep;
        if slept >= SLEPT_AT_LEAST {
            changes.push(Change::Resumed(slept));
        }
        let addresses = normalized(addresses);
        if addresses != self.addresses {
            self.addresses = addresses.clone();
            changes.push(Change::Addresses(addresses));
        }
        changes
    }

    /// True when the computer has no address outside the tunnel.
    pub fn offline(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// Sorted, without loopback and IPv6 link-local addresses (every
/// interface has one; they reach no gateway).
fn normalized(mut addresses: Vec<IpAddr>) -> Vec<IpAddr> {
    addresses.retain(|a| {
        !a.is_loopback() && !matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
    });
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_steady_computer_reports_nothing() {
        let mut watch = NetworkWatch::new(secs(100), secs(90), vec![ip("192.168.1.5")]);
        assert!(
            watch
                .observe(secs(102), secs(92), vec![ip("192.168.1.5")])
                .is_empty()
        );
        assert!(!watch.offline());
    }

    #[test]
    fn sleep_is_the_growth_of_the_gap_between_the_clocks() {
        let mut watch = NetworkWatch::new(secs(100), secs(90), vec![ip("10.0.0.2")]);
        // 2 s of monotonic time, 602 s of boot time: slept 600 s.
        assert_eq!(
            watch.observe(secs(702), secs(92), vec![ip("10.0.0.2")]),
            vec![Change::Resumed(secs(600))]
        );
        // The next look, awake, reports nothing again.
        assert!(
            watch
                .observe(secs(704), secs(94), vec![ip("10.0.0.2")])
                .is_empty()
        );
    }

    #[test]
    fn a_short_stall_is_not_a_sleep() {
        let mut watch = NetworkWatch::new(secs(100), secs(100), vec![]);
        assert!(watch.observe(secs(104), secs(102), vec![]).is_empty());
    }

    #[test]
    fn a_new_address_is_a_change_and_order_or_loopback_are_not() {
        let mut watch = NetworkWatch::new(
            secs(1),
            secs(1),
            vec![ip("192.168.1.5"), ip("127.0.0.1"), ip("fe80::1")],
        );
        assert!(
            watch
                .observe(secs(2), secs(2), vec![ip("::1"), ip("192.168.1.5")])
                .is_empty()
        );
        assert_eq!(
            watch.observe(secs(3), secs(3), vec![ip("10.1.0.7"), ip("192.168.1.5")]),
            vec![Change::Addresses(vec![ip("10.1.0.7"), ip("192.168.1.5")])]
        );
    }

    #[test]
    fn wifi_to_cable_after_sleep_reports_both() {
        let mut watch = NetworkWatch::new(secs(10), secs(10), vec![ip("192.168.1.5")]);
        let changes = watch.observe(secs(1000), secs(12), vec![ip("172.16.0.9")]);
        assert_eq!(
            changes,
            vec![
                Change::Resumed(secs(988)),
                Change::Addresses(vec![ip("172.16.0.9")])
            ]
        );
    }

    #[test]
    fn no_address_left_is_offline() {
        let mut watch = NetworkWatch::new(secs(1), secs(1), vec![ip("192.168.1.5")]);
        watch.observe(secs(2), secs(2), vec![ip("127.0.0.1")]);
        assert!(watch.offline());
    }
}
