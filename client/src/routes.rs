//! Which prefixes go into the tunnel (sans-IO).
//!
//! A town may route everything through its gateway (`0.0.0.0/0`, `::/0`),
//! or a destination may happen to contain the gateway's own address. If
//! the laptop then routed the gateway's endpoint — or the controller's API
//! address — into the tunnel, its WireGuard datagrams would enter the
//! tunnel they are meant to carry (a loop: nothing gets through) and the
//! controller could never send the fix. So the system routes are the
//! tunnel's prefixes *minus* those addresses, cut into the fewest prefixes
//! that cover the rest (as WireGuard's Windows client computes "allowed IPs
//! excluding"), and those addresses keep following the computer's own
//! routes. A `/0` is also installed as its two halves, so that it never
//! replaces the computer's default route (which the excluded addresses
//! still use). The cryptokey routing of the peer keeps the prefixes as
//! given.

use ipnet::IpNet;
use std::net::IpAddr;

/// The prefixes to route into the tunnel for `routes`, leaving out every
/// address in `outside` and splitting any `/0`.
pub fn system_routes(routes: &[IpNet], outside: &[IpAddr]) -> Vec<IpNet> {
    let mut result: Vec<IpNet> = Vec::new();
    for route in routes {
        let mut pieces = vec![route.trunc()];
        for &address in outside {
            pieces = pieces
                .into_iter()
                .flat_map(|piece| without(piece, address))
                .collect();
        }
        for piece in pieces {
            if piece.prefix_len() == 0 {
                result.extend(halves(piece));
            } else {
                result.push(piece);
            }
        }
    }
    result.sort();
    result.dedup();
    // A prefix inside another one adds nothing.
    let all = result.clone();
    result.retain(|net| !all.iter().any(|other| other != net && other.contains(net)));
    result
}

/// `net` without `address`: `net` itself if it does not contain it, else
/// the sibling of each prefix on the way down to the address.
fn without(net: IpNet, address: IpAddr) -> Vec<IpNet> {
    if !net.contains(&address) {
        return vec![net];
    }
    let mut rest = Vec::new();
    let mut current = net;
    while current.prefix_len() < current.max_prefix_len() {
        let [low, high] = halves(current);
        if low.contains(&address) {
            rest.push(high);
            current = low;
        } else {
            rest.push(low);
            current = high;
        }
    }
    rest
}

/// The two prefixes one bit longer that make up `net`.
fn halves(net: IpNet) -> [IpNet; 2] {
    let mut subnets = net
        .subnets(net.prefix_len() + 1)
        .expect("a prefix shorter than the maximum has halves");
    let low = subnets.next().expect("two halves");
    let high = subnets.next().expect("two halves");
    [low, high]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(texts: &[&str]) -> Vec<IpNet> {
        texts.iter().map(|t| t.parse().expect("prefix")).collect()
    }

    #[test]
    fn a_full_tunnel_leaves_out_the_gateway_and_keeps_the_default_route() {
        let gateway: IpAddr = "172.31.1.1".parse().expect("address");
        let routes = system_routes(&nets(&["0.0.0.0/0", "::/0"]), &[gateway]);
        assert!(routes.iter().all(|r| !r.contains(&gateway)), "{routes:?}");
        assert!(routes.iter().all(|r| r.prefix_len() > 0), "{routes:?}");
        assert!(routes.contains(&"::/1".parse().expect("prefix")));
        assert_eq!(
            routes.iter().filter(|r| matches!(r, IpNet::V4(_))).count(),
            32
        );
        let server: IpAddr = "172.31.2.2".parse().expect("address");
        assert!(routes.iter().any(|r| r.contains(&server)));
    }

    #[test]
    fn routes_without_the_endpoints_stay_as_they_are() {
        let routes = nets(&["10.1.20.0/24", "10.77.0.0/16"]);
        let outside = ["192.0.2.7".parse().expect("address")];
        assert_eq!(system_routes(&routes, &outside), routes);
    }

    proptest! {
        #[test]
        fn every_other_address_is_still_routed(
            route in (any::<u32>(), 0u8..=32),
            excluded in proptest::collection::vec(any::<u32>(), 0..4),
            probe in any::<u32>(),
        ) {
            let route = IpNet::V4(ipnet::Ipv4Net::new(route.0.into(), route.1).expect("prefix").trunc());
            let excluded: Vec<IpAddr> = excluded.into_iter().map(|a| IpAddr::from(std::net::Ipv4Addr::from(a))).collect();
            let probe = IpAddr::from(std::net::Ipv4Addr::from(probe));
            let routes = system_routes(&[route], &excluded);
            let routed = routes.iter().any(|r| r.contains(&probe));
            let expected = route.contains(&probe) && !excluded.contains(&probe);
            prop_assert_eq!(routed, expected);
            for excluded in &excluded {
                prop_assert!(!routes.iter().any(|r| r.contains(excluded)));
            }
        }
    }
}
