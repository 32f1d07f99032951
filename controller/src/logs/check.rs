//! Whether a gateway's connection event may enter the log (sans-IO).
//!
//! A gateway credential is a key to the connection log, so the controller
//! does not take a gateway's word for everything: a stolen or misbehaving
//! gateway could otherwise write history for devices it never served,
//! back-date sessions to before a device existed, inflate byte counts or
//! end somebody else's session. [`check`] holds an event against what the
//! controller knows — the device's record, its open session, the reporting
//! gateway and the clock — and either says which session it belongs to or
//! why it is refused. Refused events never enter the hash chain; the caller
//! logs and counts them and tells the gateway.
//!
//! A clock that runs ahead, or steps back, is a fault, not an attack on the
//! log: an event from a gateway whose clock is ahead is kept at the
//! controller's time, and the end (or move) of a session that a clock step
//! put after it at its session's start, each with what the gateway said
//! ([`Admitted::gateway_said`]) — a session must never vanish from the log,
//! or stay open in it for ever, because a clock drifted.

use super::OpenSession;
use crate::store::records::{DeviceRecord, GatewayRecord};
use porta_gateway::event::{EndReason, EventKind, GatewayEvent};
use std::net::SocketAddr;

/// How far a gateway's clock may run ahead of (or an event precede) the
/// controller's view, in seconds.
pub const CLOCK_SKEW: u64 = 120;

/// Bytes per second no single WireGuard session can exceed (25 Gbit/s, well
/// above any gateway's link), used to refuse impossible byte counts.
pub const MAX_BYTES_PER_SECOND: u64 = 25_000_000_000 / 8;

/// An event that may be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Unix seconds the session it belongs to started.
    pub session_start: u64,
    /// Unix seconds to record it at: the event's own; the controller's
    /// when the gateway's clock was more than [`CLOCK_SKEW`] ahead; its
    /// session's start for an end or move dated before it.
    pub at: u64,
    /// The time the gateway gave, when it was replaced by the controller's.
    pub gateway_said: Option<u64>,
}

/// Checks `event` from `gateway` about `device` (None: unknown id), whose
/// open session (if any) is `open`, at controller time `now`.
pub fn check(
    event: &GatewayEvent,
    device: Option<&DeviceRecord>,
    open: Option<&OpenSession>,
    gateway: &GatewayRecord,
    now: u64,
) -> Result<Admitted, String> {
    let Some(device) = device else {
        return Err("no such device".into());
    };
    let (mut at, mut gateway_said) = if event.at > now + CLOCK_SKEW {
        (now, Some(event.at))
    } else {
        (event.at, None)
    };
    if at + CLOCK_SKEW < device.enrolled_at {
        return Err("its time is before the device was enrolled".into());
    }
    parse_address("public_address", &event.public_address, false)?;
    parse_address(
        "previous_public_address",
        &event.previous_public_address,
        true,
    )?;
    let session_here = open.filter(|s| s.gateway == gateway.name);
    let session_start = if event.kind == EventKind::SessionStart {
        if !serves(gateway, device) {
            return Err(format!(
                "device {} is not assigned to gateway {}",
                device.name, gateway.name
            ));
        }
        if let Some(revoked) = device.revoked_at
            && at > revoked
        {
            return Err("a session cannot start after the device was revoked".into());
        }
        at
    } else {
        // Ends and moves belong to a session this gateway opened: after a
        // reassignment the old gateway still ends its own session, and no
        // gateway can end or move another's.
        let Some(session) = session_here else {
            return Err(format!(
                "device {} has no open session on gateway {}",
                device.name, gateway.name
            ));
        };
        if at + CLOCK_SKEW < session.since {
            // The clock stepped back since the session started (its start
            // is on record with the clock as it was).
            gateway_said = Some(event.at);
            at = session.since;
        }
        // A restart's end carries the bytes the gateway last saved, which
        // may predate its last report: the recorded end keeps the larger.
        let restart = event.reason == Some(EndReason::Restart);
        if !restart && (event.rx_bytes < session.rx_bytes || event.tx_bytes < session.tx_bytes) {
            return Err(format!(
                "its byte counts ({} received, {} sent) are below the {} and {} already recorded for this session",
                event.rx_bytes, event.tx_bytes, session.rx_bytes, session.tx_bytes
            ));
        }
        session.since
    };
    let seconds = at.saturating_sub(session_start) + CLOCK_SKEW;
    let most = seconds.saturating_mul(MAX_BYTES_PER_SECOND);
    if event.rx_bytes > most || event.tx_bytes > most {
        return Err(format!(
            "its byte counts ({} received, {} sent) exceed what any link carries in the {} s since its session started",
            event.rx_bytes,
            event.tx_bytes,
            at.saturating_sub(session_start)
        ));
    }
    Ok(Admitted {
        session_start,
        at,
        gateway_said,
    })
}

/// Whether `device` connects through `gateway`.
fn serves(gateway: &GatewayRecord, device: &DeviceRecord) -> bool {
    match &device.gateway {
        None => gateway.embedded,
        Some(name) => !gateway.embedded && *name == gateway.name,
    }
}

fn parse_address(field: &str, value: &str, may_be_empty: bool) -> Result<(), String> {
    if value.is_empty() && may_be_empty {
        return Ok(());
    }
    value.parse::<SocketAddr>().map(drop).map_err(|_| {
        format!(
            "{field} {} is not an ip:port",
            crate::validate::quoted(value)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceRecord {
        DeviceRecord {
            gateway: Some("annex".into()),
            ..DeviceRecord::new(
                "d1",
                "anna-laptop",
                "anna",
                porta_proto::PublicKey([1; 32]),
                "10.77.0.2".parse().expect("address"),
                "c1",
                1_789_000_000,
            )
        }
    }

    fn gateway(name: &str, embedded: bool) -> GatewayRecord {
        GatewayRecord::new(name, "192.0.2.1:51820", embedded, None)
    }

    fn event(kind: &str, at: u64) -> GatewayEvent {
        GatewayEvent {
            event_id: "e".into(),
            kind: kind.parse().expect("a kind"),
            at,
            device_id: "d1".into(),
            public_address: "192.0.2.9:40000".into(),
            previous_public_address: String::new(),
            rx_bytes: 1_000,
            tx_bytes: 2_000,
            reason: None,
            session_start: 0,
        }
    }

    fn open_on(gateway: &str, since: u64) -> OpenSession {
        OpenSession {
            user: "anna".into(),
            device: "anna-laptop".into(),
            tunnel_address: "10.77.0.2".into(),
            public_address: "192.0.2.9:40000".into(),
            gateway: gateway.into(),
            since,
            rx_bytes: 500,
            tx_bytes: 500,
        }
    }

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn a_true_session_passes() {
        let annex = gateway("annex", false);
        let start = check(
            &event("session_start", NOW - 50),
            Some(&device()),
            None,
            &annex,
            NOW,
        );
        assert_eq!(
            start,
            Ok(Admitted {
                session_start: NOW - 50,
                at: NOW - 50,
                gateway_said: None,
            })
        );
        let open = open_on("annex", NOW - 50);
        let end = check(
            &event("session_end", NOW),
            Some(&device()),
            Some(&open),
            &annex,
            NOW,
        );
        assert_eq!(
            end,
            Ok(Admitted {
                session_start: NOW - 50,
                at: NOW,
                gateway_said: None,
            })
        );
    }

    #[test]
    fn a_gateway_clock_ahead_is_corrected_not_refused() {
        let annex = gateway("annex", false);
        let start = check(
            &event("session_start", NOW + 600),
            Some(&device()),
            None,
            &annex,
            NOW,
        );
        assert_eq!(
            start,
            Ok(Admitted {
                session_start: NOW,
                at: NOW,
                gateway_said: Some(NOW + 600),
            })
        );
        // Within the tolerance, its own time stands.
        let close = check(
            &event("session_start", NOW + 60),
            Some(&device()),
            None,
            &annex,
            NOW,
        );
        assert_eq!(close.map(|a| (a.at, a.gateway_said)), Ok((NOW + 60, None)));
        // A session started while the clock was an hour ahead ends after it
        // was set back: ended (at its start), not left open.
        let open = open_on("annex", NOW + 3_600);
        let end = check(
            &event("session_end", NOW + 10),
            Some(&device()),
            Some(&open),
            &annex,
            NOW + 10,
        );
        assert_eq!(
            end.map(|a| (a.at, a.gateway_said)),
            Ok((NOW + 3_600, Some(NOW + 10)))
        );
    }

    #[test]
    fn forgeries_are_refused() {
        let annex = gateway("annex", false);
        let other = gateway("branch", false);
        let embedded = gateway("town", true);
        let d = device();
        let refused = |e: &GatewayEvent, open: Option<&OpenSession>, g: &GatewayRecord| {
            check(e, Some(&d), open, g, NOW).expect_err("a forgery was admitted")
        };
        // Another gateway's device, from a remote gateway and the embedded one.
        assert!(refused(&event("session_start", NOW), None, &other).contains("not assigned"));
        assert!(refused(&event("session_start", NOW), None, &embedded).contains("not assigned"));
        // 2001.
        assert!(refused(&event("session_start", 978_307_200), None, &annex).contains("before"));
        // 10^15 bytes in a minute.
        let mut huge = event("session_start", NOW - 60);
        huge.rx_bytes = 1_000_000_000_000_000;
        assert!(refused(&huge, None, &annex).contains("exceed"));
        // A formula where an address belongs.
        let mut formula = event("session_start", NOW);
        formula.public_address = "=HYPERLINK(\"http://x\")".into();
        assert!(refused(&formula, None, &annex).contains("not an ip:port"));
        // Ending a session this gateway does not hold, or with no session.
        let theirs = open_on("branch", NOW - 100);
        assert!(
            refused(&event("session_end", NOW), Some(&theirs), &annex).contains("no open session")
        );
        assert!(refused(&event("session_end", NOW), None, &annex).contains("no open session"));
        // Bytes that shrink within a session.
        let mut ours = open_on("annex", NOW - 100);
        ours.rx_bytes = 5_000;
        assert!(refused(&event("endpoint_change", NOW), Some(&ours), &annex).contains("below"));
        // A revoked device does not start sessions; unknown devices are refused.
        let mut revoked = device();
        revoked.revoked_at = Some(NOW - 1_000);
        assert!(
            check(
                &event("session_start", NOW),
                Some(&revoked),
                None,
                &annex,
                NOW
            )
            .is_err()
        );
        assert!(check(&event("session_start", NOW), None, None, &annex, NOW).is_err());
    }

    #[test]
    fn a_revoked_device_s_session_still_ends_and_reassignment_lets_the_old_gateway_finish() {
        let annex = gateway("annex", false);
        let mut d = device();
        d.revoked_at = Some(NOW - 10);
        d.gateway = Some("branch".into());
        let open = open_on("annex", NOW - 100);
        assert!(
            check(
                &event("session_end", NOW),
                Some(&d),
                Some(&open),
                &annex,
                NOW
            )
            .is_ok()
        );
    }
}
