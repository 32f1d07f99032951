//! Address management: which tunnel address a new device gets.
//!
//! Pure logic, no store: the caller says which addresses are taken (live or
//! in quarantine) through a closure, so the same code runs inside a store
//! transaction and in unit tests.
//!
//! IPv4 comes from the configured prefix, never its network, broadcast or
//! gateway (first host) address. A device's IPv6 ULA address, when an IPv6
//! prefix is configured, has the same host offset as its IPv4 address
//! (10.77.0.9 ↔ fd..::9), so one lease covers both and a log line with
//! either address names one device.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The gateway's own address in a prefix: its first host.
pub fn gateway_v4(prefix: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(prefix.network()) + 1)
}

/// The IPv6 address with the same host offset as `v4` has in `prefix4`.
pub fn paired_v6(prefix4: Ipv4Net, v4: Ipv4Addr, prefix6: Ipv6Net) -> Ipv6Addr {
    let offset = u32::from(v4) - u32::from(prefix4.network());
    Ipv6Addr::from(u128::from(prefix6.network()) + u128::from(offset))
}

/// How many device addresses a prefix offers (hosts minus the gateway).
pub fn capacity(prefix: Ipv4Net) -> u64 {
    let size = 1u64 << (32 - prefix.prefix_len());
    size.saturating_sub(3) // network, broadcast, gateway
}

/// The first free device address at or after `hint` (wrapping around), or
/// `None` if every address is taken. `taken` may fail (a store read); its
/// error is returned as is.
pub fn allocate<E>(
    prefix: Ipv4Net,
    hint: Option<Ipv4Addr>,
    mut taken: impl FnMut(Ipv4Addr) -> Result<bool, E>,
) -> Result<Option<Ipv4Addr>, E> {
    let first = u32::from(gateway_v4(prefix)) + 1;
    let last = u32::from(prefix.broadcast()).saturating_sub(1);
    if first > last {
        return Ok(None);
    }
    let start = hint
        .map(u32::from)
        .filter(|h| (first..=last).contains(h))
        .unwrap_or(first);
    let span = last - first + 1;
    for step in 0..span {
        let candidate = first + (start - first + step) % span;
        let address = Ipv4Addr::from(candidate);
        if !taken(address)? {
            return Ok(Some(address));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::convert::Infallible;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("prefix")
    }

    #[test]
    fn never_hands_out_network_broadcast_or_gateway() {
        let prefix = net("10.77.0.0/29"); // .0 network, .1 gateway, .7 broadcast
        let mut used = HashSet::new();
        while let Some(a) =
            allocate(prefix, None, |a| Ok::<_, Infallible>(used.contains(&a))).expect("infallible")
        {
            used.insert(a);
        }
        let mut got: Vec<_> = used.into_iter().map(|a| a.octets()[3]).collect();
        got.sort_unstable();
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        assert_eq!(capacity(prefix), 5);
    }

    #[test]
    fn starts_at_the_hint_and_wraps_to_reuse_freed_addresses() {
        let prefix = net("10.77.0.0/29");
        let taken = |a: Ipv4Addr| Ok::<_, Infallible>(a.octets()[3] != 3);
        let got = allocate(prefix, Some("10.77.0.5".parse().expect("ip")), taken).expect("ok");
        assert_eq!(got, Some("10.77.0.3".parse().expect("ip")));
    }

    #[test]
    fn capacity_and_allocation_agree_on_tiny_prefixes() {
        let slash30 =
            allocate(net("10.0.0.0/30"), None, |_| Ok::<_, Infallible>(false)).expect("ok");
        assert_eq!(slash30, Some("10.0.0.2".parse().expect("ip")));
        assert_eq!(capacity(net("10.0.0.0/30")), 1);
        for p in ["10.0.0.0/31", "10.0.0.0/32"] {
            assert_eq!(
                allocate(net(p), None, |_| Ok::<_, Infallible>(false)).expect("ok"),
                None,
                "{p}"
            );
            assert_eq!(capacity(net(p)), 0, "{p}");
        }
    }

    #[test]
    fn ipv6_pairs_share_the_host_offset() {
        let v6: Ipv6Net = "fd00:1234:5678:9abc::/64".parse().expect("prefix");
        let paired = paired_v6(net("10.77.0.0/16"), "10.77.1.2".parse().expect("ip"), v6);
        assert_eq!(
            paired,
            "fd00:1234:5678:9abc::102".parse::<Ipv6Addr>().expect("ip")
        );
    }
}
