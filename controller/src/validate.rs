//! Input validation: every field a caller sends passes through here before
//! it can reach the store, so a bad request changes nothing and says which
//! field was wrong and how to fix it.

use crate::error::{Error, Result};
use ipnet::IpNet;
use porta_gateway::destination::Destination;
use porta_proto::pb;

/// Longest name (user, group, device) in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest free-text field (display names, descriptions) in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Most destinations one group may hold.
pub const MAX_DESTINATIONS: usize = 256;

pub use porta_proto::quoted;

/// A user, group or device name: 1–64 characters, letters of any script,
/// digits, `.`, `_`, `-`, `@`; it must start with a letter or digit.
/// Non-ASCII letters are allowed (names like "núria" are real), but not
/// names that could deceive ([`crate::names::check_shape`]).
pub fn name(field: &str, value: &str) -> Result<String> {
    let count = value.chars().count();
    let first_ok = value.chars().next().is_some_and(char::is_alphanumeric);
    let all_ok = value
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if count == 0 || count > MAX_NAME_CHARS || !first_ok || !all_ok {
        return Err(Error::invalid(format!(
            "{field} {} is not a valid name: use 1–{MAX_NAME_CHARS} letters, digits, \
             '.', '_', '-' or '@', starting with a letter or digit",
            quoted(value)
        )));
    }
    crate::names::check_shape(value)
        .map_err(|why| Error::invalid(format!("{field} {} {why}", quoted(value))))?;
    Ok(value.to_owned())
}

/// Free text shown to people: at most 256 characters, no control characters.
pub fn text(field: &str, value: &str) -> Result<String> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(format!(
            "{field} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} contains control characters"
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| porta_proto::terminal::is_invisible(c))
    {
        return Err(Error::invalid(format!(
            "{field} contains the invisible character U+{:04X} (a direction override or \
             zero-width character), which could make it display as something else",
            u32::from(c)
        )));
    }
    Ok(value.trim().to_owned())
}

/// A prefix in CIDR notation, normalised to its network address.
pub fn cidr(field: &str, value: &str) -> Result<IpNet> {
    let net: IpNet = value.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "{field} {} is not a prefix in CIDR notation (like 10.1.20.0/24 or 10.1.20.5/32)",
            quoted(value)
        ))
    })?;
    Ok(net.trunc())
}

/// A destination from the wire.
pub fn destination(message: Option<&pb::Destination>) -> Result<Destination> {
    let message = message.ok_or_else(|| Error::invalid("destination is required"))?;
    Destination::try_from(message).map_err(|e| Error::invalid(e.to_string()))
}

/// A UDP endpoint staff devices connect to: `host:port`, with a DNS name
/// or an IP address (IPv6 in brackets) and a port from 1 to 65535.
pub fn endpoint(field: &str, value: &str) -> Result<String> {
    let problem = || {
        Error::invalid(format!(
            "{field} must be host:port, e.g. vpn2.example.org:51820 or 192.0.2.7:51820 (got {})",
            quoted(value)
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(problem)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }
    };
    if !(port_ok && host_ok) {
        return Err(problem());
    }
    Ok(value.to_owned())
}

/// A host name as a device reports it: up to 253 letters (any script),
/// digits, `-`, `.` and `_` — what Linux, macOS and Windows allow in a
/// computer's name. A device chooses its own, so nothing that could split
/// a spreadsheet's cell (`,` `;` tab), quote, or start a formula gets in.
pub fn hostname(value: &str) -> Result<String> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '-' | '.' | '_');
    if value.len() > 253
        || !value.chars().all(allowed)
        || value.chars().any(porta_proto::terminal::is_invisible)
    {
        return Err(Error::invalid(
            "hostname must be at most 253 letters, digits, '-', '.' or '_'",
        ));
    }
    Ok(value.to_owned())
}

/// Free text a device reports about itself (its operating system, its
/// client's version): [`text`], and none of the characters spreadsheets
/// split cells at or read formulas from (`,` `;` `"` `=` `@`) — no
/// system's name needs them, and the device, not a person, typed it.
pub fn device_text(field: &str, value: &str) -> Result<String> {
    let value = text(field, value)?;
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, ',' | ';' | '"' | '=' | '@'))
    {
        return Err(Error::invalid(format!(
            "{field} may not contain {c:?} (it is text a device reports about itself)"
        )));
    }
    Ok(value)
}

/// An enrollment attempt id (`EnrollRequest.attempt`): none, or 16 to 128
/// visible ASCII characters — long enough that nobody guesses another
/// device's.
pub fn enrollment_attempt(value: &str) -> Result<Option<&str>> {
    if value.is_empty() {
        return Ok(None);
    }
    if !(16..=128).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "attempt must be 16 to 128 visible ASCII characters (random, made by the device)",
        ));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_value_is_quoted_by_a_short_prefix() {
        let huge = "a".repeat(60_000);
        let error = name("user", &huge).expect_err("refused").to_string();
        assert!(error.len() < 300, "{error}");
        assert!(error.contains("(60000 characters)"), "{error}");
        assert_eq!(quoted("anna"), "\"anna\"");
    }

    #[test]
    fn what_a_device_says_of_itself_cannot_split_or_start_a_cell() {
        for good in ["DESKTOP-AB12CD", "anna-pc.local", "núria_pc"] {
            assert!(hostname(good).is_ok(), "{good}");
        }
        for bad in [
            "pc;=1+1;",
            "pc,x",
            "pc\t",
            "a b",
            "=x",
            "\"pc\"",
            "pc\u{202e}",
        ] {
            assert!(hostname(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "Windows 11 Pro 23H2",
            "Debian GNU/Linux 12 (bookworm)",
            "0.1.0",
        ] {
            assert!(device_text("os", good).is_ok(), "{good}");
        }
        for bad in ["Windows 11;=2*21;", "a,b", "x\"y", "@SUM(1)", "line\nbreak"] {
            assert!(device_text("os", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn endpoints_need_a_host_and_a_port() {
        for good in [
            "vpn2.example.org:51820",
            "192.0.2.7:1",
            "[2001:db8::1]:51820",
        ] {
            assert_eq!(endpoint("endpoint", good).ok().as_deref(), Some(good));
        }
        for bad in [
            "",
            "vpn2.example.org",
            "host:0",
            "host:70000",
            ":51820",
            "a b:1",
            "2001:db8::1:51820",
        ] {
            assert!(endpoint("endpoint", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_allow_any_script_but_not_spaces_or_symbols() {
        assert!(name("user", "núria.puig").is_ok());
        assert!(name("user", "anna-laptop_2").is_ok());
        for bad in [
            "",
            "-lead",
            "has space",
            "semi;colon",
            "ñ".repeat(65).as_str(),
            "tab\t",
        ] {
            assert!(name("user", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs_are_normalised_and_garbage_rejected() {
        assert_eq!(
            cidr("route", "10.1.20.7/24").expect("valid").to_string(),
            "10.1.20.0/24"
        );
        for bad in ["10.1.20.0/33", "10.1.20", "fe80::/129", "hello"] {
            assert!(cidr("route", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn destinations_check_protocol_and_ports() {
        let ok = pb::Destination {
            cidr: "10.1.0.0/16".into(),
            protocol: pb::Protocol::Tcp as i32,
            ports: vec![
                pb::PortRange {
                    first: 3389,
                    last: 3389,
                },
                pb::PortRange {
                    first: 445,
                    last: 445,
                },
            ],
        };
        let d = destination(Some(&ok)).expect("valid");
        assert_eq!(d.ports[0].first, 445, "ports are sorted");
        let icmp_ports = pb::Destination {
            protocol: pb::Protocol::Icmp as i32,
            ..ok.clone()
        };
        assert!(destination(Some(&icmp_ports)).is_err());
        let zero = pb::Destination {
            ports: vec![pb::PortRange { first: 0, last: 10 }],
            ..ok.clone()
        };
        assert!(destination(Some(&zero)).is_err());
        let backwards = pb::Destination {
            ports: vec![pb::PortRange {
                first: 90,
                last: 80,
            }],
            ..ok
        };
        assert!(destination(Some(&backwards)).is_err());
        assert!(destination(None).is_err());
    }
}
