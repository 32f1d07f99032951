//! Gateway events into connection records: checked, each id once, with
//! the open sessions kept in step.

use super::*;
use crate::store::records::UserRecord;
use append::log_connection;
use porta_gateway::event::EndReason;

/// What became of a batch of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventReport {
    /// Events recorded now.
    pub accepted: u32,
    /// Events refused (never recorded): event id and why.
    pub refused: Vec<(String, String)>,
    /// Events recorded at another time than the gateway gave: its clock
    /// was ahead, or a step back put an end before its session's start.
    pub clock_corrected: u32,
    /// The largest lead of the gateway's clock seen in them.
    pub clock_ahead_secs: u64,
}

/// Why the controller took a device's peer away, in the log's words. The
/// gateway only knows that the peer was removed ([`EndReason::Revoked`]);
/// the controller removes one only when the device was revoked or its
/// person disabled (by an admin, or suspended by the directory), and the
/// event arrives within moments of the removal, so the records at hand
/// say which. `removed` is left for a peer removed with neither true any
/// more (its person enabled again before the gateway's event arrived).
fn removal_reason(t: &Txn<'_>, device: &DeviceRecord) -> Result<&'static str, TxError> {
    if device.revoked_at.is_some() {
        return Ok("revoked");
    }
    let user: Option<UserRecord> = t.get(T::Users, device.user.as_bytes())?;
    Ok(match user {
        Some(user) if user.disabled && user.directory.as_ref().is_some_and(|d| d.suspended) => {
            "user suspended"
        }
        Some(user) if user.disabled => "user disabled",
        _ => "removed",
    })
}

/// The record's reason: the end reason, and — when the gateway's clock was
/// ahead — both clocks, so that an auditor sees what happened and when.
fn reason_noting_clock(
    t: &Txn<'_>,
    device: &DeviceRecord,
    event: &GatewayEvent,
    admitted: &check::Admitted,
) -> Result<String, TxError> {
    let reason = match event.reason {
        Some(EndReason::Revoked) => removal_reason(t, device)?,
        Some(other) => other.as_str(),
        None => "",
    };
    let Some(said) = admitted.gateway_said else {
        return Ok(reason.to_owned());
    };
    let clocks = format!(
        "clock: the gateway said {}, recorded at {}",
        iso(said),
        iso(admitted.at)
    );
    Ok(if reason.is_empty() {
        clocks
    } else {
        format!("{reason}; {clocks}")
    })
}

/// Records `events` from `gateway` in one transaction: each event id once,
/// each with its device's user, name and tunnel address, keeping the open
/// sessions in step. Events [`event_check::check`] refuses are left out of
/// the chain, logged, and counted in the gateway's record.
pub async fn record_events(
    store: &Store,
    gateway: &GatewayRecord,
    events: &[GatewayEvent],
    now: u64,
) -> Result<EventReport> {
    let report = store
        .append(|t| {
            let mut report = EventReport::default();
            for event in events {
                if t.contains(T::EventIds, event.event_id.as_bytes())? {
                    continue;
                }
                let device: Option<DeviceRecord> = t.get(T::Devices, event.device_id.as_bytes())?;
                let open: Option<OpenSession> = t.get(T::Sessions, event.device_id.as_bytes())?;
                let (device, admitted) =
                    match check::check(event, device.as_ref(), open.as_ref(), gateway, now) {
                        Ok(admitted) => (device.expect("admitted events have a device"), admitted),
                        Err(reason) => {
                            report.refused.push((event.event_id.clone(), reason));
                            continue;
                        }
                    };
                // Bytes already recorded for the session this event continues.
                let so_far = match (&open, event.kind) {
                    (Some(open), EventKind::SessionEnd | EventKind::EndpointChange) => {
                        (open.rx_bytes, open.tx_bytes)
                    }
                    _ => (0, 0),
                };
                match event.kind {
                    EventKind::SessionEnd => t.remove(T::Sessions, device.id.as_bytes())?,
                    _ => t.put(
                        T::Sessions,
                        device.id.as_bytes(),
                        &OpenSession {
                            user: device.user.clone(),
                            device: device.name.clone(),
                            tunnel_address: device.ipv4.to_string(),
                            public_address: event.public_address.clone(),
                            gateway: gateway.name.clone(),
                            since: admitted.session_start,
                            rx_bytes: event.rx_bytes,
                            tx_bytes: event.tx_bytes,
                        },
                    )?,
                }
                log_connection(
                    t,
                    ConnectionEntry {
                        sequence: 0,
                        event_id: event.event_id.clone(),
                        kind: event.kind.as_str().to_owned(),
                        at: admitted.at,
                        user: device.user.clone(),
                        device: device.name.clone(),
                        tunnel_address: device.ipv4.to_string(),
                        public_address: event.public_address.clone(),
                        previous_public_address: event.previous_public_address.clone(),
                        gateway: gateway.name.clone(),
                        session_start: admitted.session_start,
                        rx_bytes: event.rx_bytes.max(so_far.0),
                        tx_bytes: event.tx_bytes.max(so_far.1),
                        reason: reason_noting_clock(t, &device, event, &admitted)?,
                        previous_hash: String::new(),
                        hash: String::new(),
                    },
                )?;
                report.accepted += 1;
                if let Some(said) = admitted.gateway_said {
                    report.clock_corrected += 1;
                    report.clock_ahead_secs = report
                        .clock_ahead_secs
                        .max(said.saturating_sub(admitted.at));
                }
            }
            if !report.refused.is_empty()
                && let Some(mut record) =
                    t.get::<GatewayRecord>(T::Gateways, gateway.id.as_bytes())?
            {
                record.refused_events += report.refused.len() as u64;
                t.put(T::Gateways, gateway.id.as_bytes(), &record)?;
            }
            Ok(report)
        })
        .await?;
    if report.clock_corrected > 0 {
        tracing::warn!(
            gateway = %gateway.name,
            events = report.clock_corrected,
            ahead_secs = report.clock_ahead_secs,
            "the gateway's clock is ahead of the controller's, or stepped back: its events are \
             recorded at another time, with the gateway's in their reason; set its clock right (NTP)"
        );
    }
    for (event_id, reason) in &report.refused {
        tracing::warn!(gateway = %gateway.name, event_id = %crate::validate::quoted(event_id), %reason, "connection event refused");
    }
    Ok(report)
}
