//! What a gateway saw: connection events, typed, and their wire codec.
//!
//! Gateways (embedded or remote) turn their node's activity into
//! [`GatewayEvent`]s ([`crate::sessions`]); the controller checks them
//! against what it knows and chains them into the connection log. On the wire
//! (`Gateway.ReportEvents`) and in the exported log, kinds and reasons are
//! the strings [`EventKind::as_str`] and [`EndReason::as_str`] give.

use porta_proto::pb;

/// Why an event from the wire was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidEvent(String);

type Result<T, E = InvalidEvent> = std::result::Result<T, E>;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The first data after idle.
    SessionStart,
    /// The device's datagrams now come from another address.
    EndpointChange,
    /// The session is over ([`EndReason`] says why).
    SessionEnd,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 3] = [Self::SessionStart, Self::EndpointChange, Self::SessionEnd];

    /// As on the wire and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStart => "session_start",
            Self::EndpointChange => "endpoint_change",
            Self::SessionEnd => "session_end",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = InvalidEvent;

    fn from_str(text: &str) -> Result<Self> {
        one_of(text, "event kind", Self::ALL, Self::as_str)
    }
}

/// The member of a closed set whose wire string is `text`.
fn one_of<T: Copy, const N: usize>(
    text: &str,
    what: &str,
    all: [T; N],
    as_str: fn(T) -> &'static str,
) -> Result<T> {
    all.into_iter()
        .find(|member| as_str(*member) == text)
        .ok_or_else(|| {
            InvalidEvent::new(format!(
                "unknown {what} {} (expected one of {})",
                porta_proto::quoted(text),
                all.map(as_str).join(", ")
            ))
        })
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No data from the device for the idle threshold.
    Idle,
    /// The device's peer was removed: revoked, or its user disabled.
    Revoked,
    /// The gateway stopped.
    Shutdown,
    /// The gateway was killed; ended at its next start.
    Restart,
}

impl EndReason {
    /// Every reason.
    pub const ALL: [EndReason; 4] = [Self::Idle, Self::Revoked, Self::Shutdown, Self::Restart];

    /// As on the wire and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Revoked => "revoked",
            Self::Shutdown => "gateway shutdown",
            Self::Restart => "gateway_restart",
        }
    }
}

impl std::str::FromStr for EndReason {
    type Err = InvalidEvent;

    fn from_str(text: &str) -> Result<Self> {
        one_of(text, "end reason", Self::ALL, Self::as_str)
    }
}

impl InvalidEvent {
    fn new(problem: impl Into<String>) -> Self {
        Self(problem.into())
    }
}

/// A gateway's event, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayEvent {
    /// Random id from the gateway.
    pub event_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Unix seconds.
    pub at: u64,
    /// The device.
    pub device_id: String,
    /// ip:port.
    pub public_address: String,
    /// For endpoint changes.
    pub previous_public_address: String,
    /// Session bytes from the device.
    pub rx_bytes: u64,
    /// Session bytes to the device.
    pub tx_bytes: u64,
    /// For session ends.
    pub reason: Option<EndReason>,
    /// Unix seconds the session started (0 if unknown).
    pub session_start: u64,
}

impl From<&GatewayEvent> for pb::ConnectionEvent {
    fn from(e: &GatewayEvent) -> Self {
        pb::ConnectionEvent {
            event_id: e.event_id.clone(),
            kind: e.kind.as_str().to_owned(),
            at: e.at,
            device_id: e.device_id.clone(),
            public_address: e.public_address.clone(),
            previous_public_address: e.previous_public_address.clone(),
            rx_bytes: e.rx_bytes,
            tx_bytes: e.tx_bytes,
            reason: e.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            session_start: e.session_start,
        }
    }
}

impl TryFrom<pb::ConnectionEvent> for GatewayEvent {
    type Error = InvalidEvent;

    /// A reported event, checked: an id, a known kind (and reason), a
    /// device, short printable fields.
    fn try_from(e: pb::ConnectionEvent) -> Result<Self> {
        let short = |field: &str, value: &str, max: usize| {
            if value.len() > max || value.chars().any(char::is_control) {
                Err(InvalidEvent::new(format!(
                    "{field} must be at most {max} printable characters"
                )))
            } else {
                Ok(())
            }
        };
        if e.event_id.is_empty() || e.device_id.is_empty() {
            return Err(InvalidEvent::new(
                "every event needs an event_id and a device_id",
            ));
        }
        let kind: EventKind = e.kind.parse()?;
        let reason = match (kind, e.reason.as_str()) {
            (EventKind::SessionEnd, text) => Some(text.parse()?),
            (_, "") => None,
            (_, _) => return Err(InvalidEvent::new("only session ends carry a reason")),
        };
        short("event_id", &e.event_id, 64)?;
        short("device_id", &e.device_id, 64)?;
        short("public_address", &e.public_address, 64)?;
        short("previous_public_address", &e.previous_public_address, 64)?;
        Ok(GatewayEvent {
            event_id: e.event_id,
            kind,
            at: e.at,
            device_id: e.device_id,
            public_address: e.public_address,
            previous_public_address: e.previous_public_address,
            rx_bytes: e.rx_bytes,
            tx_bytes: e.tx_bytes,
            reason,
            session_start: e.session_start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_reasons_round_trip_and_strangers_are_refused() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().expect("parses"), kind);
        }
        for reason in EndReason::ALL {
            assert_eq!(
                reason.as_str().parse::<EndReason>().expect("parses"),
                reason
            );
        }
        assert!("session_pause".parse::<EventKind>().is_err());
        let mut wire = pb::ConnectionEvent {
            event_id: "e".into(),
            kind: "session_end".into(),
            device_id: "d".into(),
            reason: "idle".into(),
            ..Default::default()
        };
        assert_eq!(
            GatewayEvent::try_from(wire.clone()).expect("valid").reason,
            Some(EndReason::Idle)
        );
        wire.reason = "because".into();
        assert!(GatewayEvent::try_from(wire).is_err());
    }
}
