//! The controller's two audit logs: connections (what gateways saw) and
//! admin actions (who changed what). Both are append-only and hash-chained
//! with [`porta_proto::audit`]: each record's hash covers its cells exactly
//! as they are exported and the hash of the record before it.
//!
//! * Admin records are appended inside the transaction of the change they
//!   describe ([`Txn::log_admin`]), so a change and its record exist together
//!   or not at all.
//! * Connection records come from gateway events ([`record_events`]); an
//!   event id already recorded is skipped, so gateways can resend until
//!   acknowledged and nothing is counted twice. The same transaction keeps
//!   the `sessions` tree (who is connected now) in step.
//! * Retention ([`prune_before`]) deletes old records and remembers the last
//!   deleted record's hash as the log's anchor; the admin record of the
//!   retention run carries the anchor too, so the remaining log still
//!   verifies and the pruning itself is on record.

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::event::{EventKind, GatewayEvent};
use crate::event_check;
use crate::store::records::{DeviceRecord, GatewayRecord};
use crate::store::{Store, T, TxError, Txn, meta};
use porta_proto::audit::{self, GENESIS, Log, Row};
use porta_proto::pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A log's newest (or last pruned) record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its sequence number (0: none).
    pub sequence: u64,
    /// Its hash ([`GENESIS`] for none).
    pub hash: String,
}

impl Head {
    fn genesis() -> Self {
        Self {
            sequence: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// A connection log record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEntry {
    /// Position in the log, from 1.
    pub sequence: u64,
    /// The gateway's event id.
    pub event_id: String,
    /// `session_start`, `endpoint_change` or `session_end`.
    pub kind: String,
    /// Unix seconds.
    pub at: u64,
    /// The device's owner.
    pub user: String,
    /// The device's name.
    pub device: String,
    /// Its tunnel address.
    pub tunnel_address: String,
    /// ip:port its datagrams came from.
    pub public_address: String,
    /// For endpoint changes: the address before.
    pub previous_public_address: String,
    /// Which gateway.
    pub gateway: String,
    /// Unix seconds the session started (0 if unknown).
    pub session_start: u64,
    /// Bytes received from the device in the session so far.
    pub rx_bytes: u64,
    /// Bytes sent to the device in the session so far.
    pub tx_bytes: u64,
    /// Why a session ended.
    pub reason: String,
    /// The previous record's hash.
    pub previous_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// An admin log record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEntry {
    /// Position in the log, from 1.
    pub sequence: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who: a credential's name, or what acted (an enrollment token).
    pub actor: String,
    /// The caller's network address.
    pub actor_address: String,
    /// What, e.g. `device.revoke`.
    pub action: String,
    /// On what, e.g. the device's name.
    pub target: String,
    /// JSON of the object before (empty if it did not exist).
    pub before: String,
    /// JSON of the object after (empty if it no longer exists).
    pub after: String,
    /// The previous record's hash.
    pub previous_hash: String,
    /// This record's hash.
    pub hash: String,
}

use porta_proto::audit::iso;

impl AdminEntry {
    /// True if `user` did it, or it was done to the user or to something
    /// of theirs: a device or an enrollment token, whose records name
    /// their owner (`"user"`) before or after the change.
    pub fn concerns_user(&self, user: &str) -> bool {
        let owner_is = |json: &str| {
            !json.is_empty()
                && serde_json::from_str::<serde_json::Value>(json)
                    .is_ok_and(|value| value.get("user").and_then(|u| u.as_str()) == Some(user))
        };
        self.actor == user || self.target == user || owner_is(&self.before) || owner_is(&self.after)
    }
}

impl ConnectionEntry {
    /// The record as exported.
    pub fn to_pb(&self) -> pb::ConnectionRecord {
        pb::ConnectionRecord {
            sequence: self.sequence,
            event_id: self.event_id.clone(),
            kind: self.kind.clone(),
            at: self.at,
            user: self.user.clone(),
            device: self.device.clone(),
            tunnel_address: self.tunnel_address.clone(),
            public_address: self.public_address.clone(),
            gateway: self.gateway.clone(),
            session_start: self.session_start,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            previous_hash: self.previous_hash.clone(),
            hash: self.hash.clone(),
            previous_public_address: self.previous_public_address.clone(),
            reason: self.reason.clone(),
        }
    }

    /// The cells its hash covers (exactly as exported).
    pub fn cells(&self) -> Vec<String> {
        audit::connection_cells(&self.to_pb())
    }
}

impl AdminEntry {
    /// The record as exported.
    pub fn to_pb(&self) -> pb::AdminActionRecord {
        pb::AdminActionRecord {
            sequence: self.sequence,
            at: self.at,
            actor: self.actor.clone(),
            actor_address: self.actor_address.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            before_json: self.before.clone(),
            after_json: self.after.clone(),
            previous_hash: self.previous_hash.clone(),
            hash: self.hash.clone(),
        }
    }

    /// The cells its hash covers (exactly as exported).
    pub fn cells(&self) -> Vec<String> {
        audit::admin_cells(&self.to_pb())
    }
}

/// Who did something, for the admin log.
#[derive(Clone, Debug)]
pub struct Actor {
    /// A credential's name, or a description ("enrollment token …").
    pub name: String,
    /// The caller's address.
    pub address: String,
}

impl From<&Caller> for Actor {
    fn from(caller: &Caller) -> Self {
        Self {
            name: caller.name.clone(),
            address: caller.address.clone(),
        }
    }
}

impl Actor {
    /// The controller itself (init, retention).
    pub fn system(what: &str) -> Self {
        Self {
            name: what.to_owned(),
            address: String::new(),
        }
    }
}

/// A session open now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    /// Owner.
    pub user: String,
    /// Device name.
    pub device: String,
    /// Tunnel address.
    pub tunnel_address: String,
    /// ip:port.
    pub public_address: String,
    /// Which gateway.
    pub gateway: String,
    /// Unix seconds.
    pub since: u64,
    /// Bytes from the device in this session, as last reported.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Bytes to the device in this session, as last reported.
    #[serde(default)]
    pub tx_bytes: u64,
}

fn head(t: &Txn<'_>, key: &[u8]) -> Result<Head, TxError> {
    Ok(t.get(T::Meta, key)?.unwrap_or_else(Head::genesis))
}

impl Txn<'_> {
    /// Appends an admin record (inside the change's own transaction).
    /// `before`/`after` are the object's JSON; never pass secrets.
    pub fn log_admin(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
        now: u64,
    ) -> Result<(), TxError> {
        let last = head(self, meta::ADMIN_HEAD)?;
        let mut entry = AdminEntry {
            sequence: last.sequence + 1,
            at: now,
            actor: actor.name.clone(),
            actor_address: actor.address.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            before: before.map(|v| v.to_string()).unwrap_or_default(),
            after: after.map(|v| v.to_string()).unwrap_or_default(),
            previous_hash: last.hash,
            hash: String::new(),
        };
        entry.hash = audit::record_hash(&entry.previous_hash, &entry.cells());
        self.put(T::AdminLog, &entry.sequence.to_be_bytes(), &entry)?;
        self.put(
            T::Meta,
            meta::ADMIN_HEAD,
            &Head {
                sequence: entry.sequence,
                hash: entry.hash,
            },
        )
    }

    fn log_connection(&self, mut entry: ConnectionEntry) -> Result<(), TxError> {
        let last = head(self, meta::CONNECTION_HEAD)?;
        entry.sequence = last.sequence + 1;
        entry.previous_hash = last.hash;
        entry.hash = audit::record_hash(&entry.previous_hash, &entry.cells());
        self.put(T::ConnectionLog, &entry.sequence.to_be_bytes(), &entry)?;
        self.put_raw(
            T::EventIds,
            entry.event_id.as_bytes(),
            &entry.sequence.to_be_bytes(),
        )?;
        self.put(
            T::Meta,
            meta::CONNECTION_HEAD,
            &Head {
                sequence: entry.sequence,
                hash: entry.hash,
            },
        )
    }
}

/// What became of a batch of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventReport {
    /// Events recorded now.
    pub accepted: u32,
    /// Events refused (never recorded): event id and why.
    pub refused: Vec<(String, String)>,
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
                    match event_check::check(event, device.as_ref(), open.as_ref(), gateway, now) {
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
                t.log_connection(ConnectionEntry {
                    sequence: 0,
                    event_id: event.event_id.clone(),
                    kind: event.kind.as_str().to_owned(),
                    at: event.at,
                    user: device.user.clone(),
                    device: device.name.clone(),
                    tunnel_address: device.ipv4.to_string(),
                    public_address: event.public_address.clone(),
                    previous_public_address: event.previous_public_address.clone(),
                    gateway: gateway.name.clone(),
                    session_start: admitted.session_start,
                    rx_bytes: event.rx_bytes.max(so_far.0),
                    tx_bytes: event.tx_bytes.max(so_far.1),
                    reason: event
                        .reason
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default(),
                    previous_hash: String::new(),
                    hash: String::new(),
                })?;
                report.accepted += 1;
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
    for (event_id, reason) in &report.refused {
        tracing::warn!(gateway = %gateway.name, event_id = %crate::validate::quoted(event_id), %reason, "connection event refused");
    }
    Ok(report)
}

/// Which records an export or a verification reads.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// From (Unix seconds, inclusive).
    pub from: u64,
    /// To (Unix seconds, inclusive); 0 means no end.
    pub to: u64,
    /// Only this user's records.
    pub user: Option<String>,
    /// Only this device's records (by name).
    pub device: Option<String>,
}

impl Filter {
    fn in_time(&self, at: u64) -> bool {
        at >= self.from && (self.to == 0 || at <= self.to)
    }
}

/// Every record of `tree`, oldest first, decoded lazily.
fn entries<E: serde::de::DeserializeOwned>(
    store: &Store,
    tree: T,
) -> impl Iterator<Item = Result<E>> + use<E> {
    store.tree(tree).iter().map(move |item| {
        let (key, bytes) = item?;
        serde_json::from_slice::<E>(&bytes).map_err(|e| Error::Corrupt {
            tree: if tree == T::ConnectionLog {
                "connection_log"
            } else {
                "admin_log"
            },
            key: format!("{:?}", key.as_ref()),
            reason: e.to_string(),
        })
    })
}

/// Connection records matching `filter`, oldest first, read lazily. A
/// record that does not decode is passed on as the error it is.
pub fn connections(
    store: &Store,
    filter: Filter,
) -> impl Iterator<Item = Result<ConnectionEntry>> + use<> {
    entries::<ConnectionEntry>(store, T::ConnectionLog).filter(move |entry| {
        entry.as_ref().map_or(true, |e| {
            filter.in_time(e.at)
                && filter.user.as_ref().is_none_or(|u| *u == e.user)
                && filter.device.as_ref().is_none_or(|d| *d == e.device)
        })
    })
}

/// Admin records matching `filter` (a user matches the actor or the
/// target, a device the target), oldest first, read lazily.
pub fn admin_actions(
    store: &Store,
    filter: Filter,
) -> impl Iterator<Item = Result<AdminEntry>> + use<> {
    entries::<AdminEntry>(store, T::AdminLog).filter(move |entry| {
        entry.as_ref().map_or(true, |e| {
            filter.in_time(e.at)
                && filter.user.as_ref().is_none_or(|u| e.concerns_user(u))
                && filter.device.as_ref().is_none_or(|d| *d == e.target)
        })
    })
}

/// The result of verifying a log in the store.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Records read.
    pub records: u64,
    /// First and last sequence numbers.
    pub range: Option<(u64, u64)>,
    /// The newest record's hash.
    pub last_hash: String,
    /// The first break, if any.
    pub problem: Option<audit::Break>,
}

/// Walks a whole log in the store: every record's hash, every link, the
/// start against the retention anchor and the end against the head.
pub fn verify(store: &Store, log: Log) -> Result<Verification> {
    let (tree, head_key, anchor_key) = match log {
        Log::Connections => (
            T::ConnectionLog,
            meta::CONNECTION_HEAD,
            meta::CONNECTION_ANCHOR,
        ),
        Log::Admin => (T::AdminLog, meta::ADMIN_HEAD, meta::ADMIN_ANCHOR),
    };
    let head: Head = store.get(T::Meta, head_key)?.unwrap_or_else(Head::genesis);
    let anchor: Head = store
        .get(T::Meta, anchor_key)?
        .unwrap_or_else(Head::genesis);
    let mut sequences = std::collections::HashSet::new();
    for key in store.tree(tree).iter().keys() {
        let key = key?;
        sequences.insert(key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0));
    }
    let records = sequences.len() as u64;
    let first_expected = anchor.sequence + 1;
    if let Some(&first) = sequences.iter().min()
        && first > first_expected
    {
        // The oldest records are gone but no retention run pruned them.
        return Ok(Verification {
            records,
            range: None,
            last_hash: head.hash,
            problem: Some(audit::Break::Deleted {
                first: first_expected,
                last: first - 1,
            }),
        });
    }
    let rows = store.tree(tree).iter().values().map(|bytes| -> Row {
        let bytes = bytes.map(|b| b.to_vec()).unwrap_or_default();
        row_of(log, &bytes)
    });
    let outcome = audit::verify(rows, &sequences, audit::Gaps::Forbidden, Some(&anchor.hash));
    Ok(match outcome {
        Err(problem) => Verification {
            records,
            range: None,
            last_hash: head.hash,
            problem: Some(problem),
        },
        Ok(verified) => {
            let problem = match verified.range {
                Some((first, _)) if first != first_expected => Some(audit::Break::Deleted {
                    first: first_expected,
                    last: first - 1,
                }),
                _ if verified.last_hash != head.hash
                    || verified.range.map(|r| r.1).unwrap_or(anchor.sequence) != head.sequence =>
                {
                    Some(audit::Break::Deleted {
                        first: verified.range.map(|r| r.1 + 1).unwrap_or(first_expected),
                        last: head.sequence,
                    })
                }
                _ => None,
            };
            Verification {
                records: verified.records,
                range: verified.range,
                last_hash: verified.last_hash,
                problem,
            }
        }
    })
}

/// A stored record as a verifier row; a record that does not decode
/// becomes a row whose hash cannot match.
fn row_of(log: Log, bytes: &[u8]) -> Row {
    let decoded = match log {
        Log::Connections => serde_json::from_slice::<ConnectionEntry>(bytes)
            .map(|e| (e.cells(), e.previous_hash, e.hash)),
        Log::Admin => serde_json::from_slice::<AdminEntry>(bytes)
            .map(|e| (e.cells(), e.previous_hash, e.hash)),
    };
    match decoded {
        Ok((cells, previous_hash, hash)) => Row {
            cells,
            previous_hash,
            hash,
        },
        Err(_) => Row {
            cells: vec!["0".into()],
            previous_hash: String::new(),
            hash: "undecodable".into(),
        },
    }
}

/// Open sessions, oldest first.
pub fn sessions(store: &Store) -> Result<Vec<OpenSession>> {
    let mut sessions: Vec<OpenSession> = store.list(T::Sessions)?;
    sessions.sort_by(|a, b| a.since.cmp(&b.since).then(a.device.cmp(&b.device)));
    Ok(sessions)
}

/// What a retention run removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Connection records removed.
    pub connections: u64,
    /// Admin records removed.
    pub admin_actions: u64,
}

/// Deletes records older than `cutoff` (Unix seconds) from both logs, in
/// batches, keeping each log's anchor, and logs the run.
pub async fn prune_before(store: &Store, cutoff: u64, now: u64) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    for log in [Log::Connections, Log::Admin] {
        let (tree, anchor_key) = match log {
            Log::Connections => (T::ConnectionLog, meta::CONNECTION_ANCHOR),
            Log::Admin => (T::AdminLog, meta::ADMIN_ANCHOR),
        };
        loop {
            let mut batch: Vec<(u64, String, Vec<u8>)> = Vec::new();
            // Old records are at the front; each is decoded once.
            let mut event_ids: Vec<Vec<u8>> = Vec::new();
            for item in store.tree(tree).iter().take(1_000) {
                let (key, bytes) = item?;
                let (at, sequence, hash, event_id) = match log {
                    Log::Connections => serde_json::from_slice::<ConnectionEntry>(&bytes)
                        .map(|e| (e.at, e.sequence, e.hash, Some(e.event_id))),
                    Log::Admin => serde_json::from_slice::<AdminEntry>(&bytes)
                        .map(|e| (e.at, e.sequence, e.hash, None)),
                }
                // A record that does not decode stays, for verify to name.
                .unwrap_or((u64::MAX, 0, String::new(), None));
                if at >= cutoff {
                    break;
                }
                event_ids.extend(event_id.map(String::into_bytes));
                batch.push((sequence, hash, key.to_vec()));
            }
            let Some((last_sequence, last_hash, _)) = batch.last().cloned() else {
                break;
            };
            store
                .append(|t| {
                    for (_, _, key) in &batch {
                        t.remove(tree, key)?;
                    }
                    for id in &event_ids {
                        t.remove(T::EventIds, id)?;
                    }
                    t.put(
                        T::Meta,
                        anchor_key,
                        &Head {
                            sequence: last_sequence,
                            hash: last_hash.clone(),
                        },
                    )
                })
                .await?;
            match log {
                Log::Connections => pruned.connections += batch.len() as u64,
                Log::Admin => pruned.admin_actions += batch.len() as u64,
            }
        }
    }
    let anchors = (
        store.get::<Head>(T::Meta, meta::CONNECTION_ANCHOR)?,
        store.get::<Head>(T::Meta, meta::ADMIN_ANCHOR)?,
    );
    store
        .append(|t| {
            t.log_admin(
                &Actor::system("retention"),
                "retention.prune",
                "logs",
                None,
                Some(serde_json::json!({
                    "cutoff": iso(cutoff),
                    "connections_removed": pruned.connections,
                    "admin_actions_removed": pruned.admin_actions,
                    "connection_log_anchor": anchors.0,
                    "admin_log_anchor": anchors.1,
                })),
                now,
            )
        })
        .await?;
    tracing::info!(cutoff = %iso(cutoff), connections = pruned.connections, admin_actions = pruned.admin_actions, "retention run");
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EndReason;
    use crate::store::records::DeviceRecord;

    async fn store_with_device() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("open");
        let device = DeviceRecord {
            id: "d1".into(),
            name: "anna-laptop".into(),
            user: "anna".into(),
            public_key: String::new(),
            ipv4: "10.77.0.2".parse().expect("address"),
            ipv6: None,
            hostname: String::new(),
            os: String::new(),
            enrolled_at: 1,
            last_seen_at: 0,
            revoked_at: None,
            revoked_by: String::new(),
            credential_id: "c1".into(),
            client_version: String::new(),
            gateway: None,
            last_handshake_at: 0,
        };
        store
            .write(|t| t.put(T::Devices, b"d1", &device))
            .await
            .expect("write");
        (dir, store)
    }

    const NOW: u64 = 1_000;

    fn town() -> GatewayRecord {
        GatewayRecord::new("town", "192.0.2.1:51820", true, None)
    }

    fn event(id: &str, kind: &str, at: u64) -> GatewayEvent {
        let kind: EventKind = kind.parse().expect("a kind");
        GatewayEvent {
            event_id: id.into(),
            kind,
            at,
            device_id: "d1".into(),
            public_address: "192.0.2.9:40000".into(),
            previous_public_address: String::new(),
            rx_bytes: at * 10,
            tx_bytes: at * 20,
            reason: (kind == EventKind::SessionEnd).then_some(EndReason::Idle),
            session_start: 0,
        }
    }

    async fn admin_actions_at(store: &Store, times: &[u64]) {
        for &at in times {
            store
                .append(|t| {
                    t.log_admin(
                        &Actor::system("test"),
                        "user.create",
                        "anna",
                        None,
                        None,
                        at,
                    )
                })
                .await
                .expect("append");
        }
    }

    #[tokio::test]
    async fn events_are_recorded_once_and_keep_sessions_in_step() {
        let (_dir, store) = store_with_device().await;
        let start = event("e1", "session_start", 100);
        assert_eq!(
            record_events(&store, &town(), std::slice::from_ref(&start), NOW)
                .await
                .expect("record")
                .accepted,
            1
        );
        let open = sessions(&store).expect("sessions");
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].device.as_str(), open[0].since),
            ("anna-laptop", 100)
        );
        // A resend (the reply was lost) and the end: only the end is new.
        let end = event("e2", "session_end", 160);
        assert_eq!(
            record_events(&store, &town(), &[start, end], NOW)
                .await
                .expect("record")
                .accepted,
            1
        );
        assert!(sessions(&store).expect("sessions").is_empty());
        let rows: Vec<ConnectionEntry> = connections(&store, Filter::default())
            .collect::<Result<_>>()
            .expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1].session_start, 100,
            "the end knows when the session began"
        );
        assert_eq!((rows[1].rx_bytes, rows[1].tx_bytes), (1600, 3200));
        let verified = verify(&store, Log::Connections).expect("verify");
        assert!(verified.problem.is_none(), "{:?}", verified.problem);
        assert_eq!(verified.range, Some((1, 2)));
    }

    #[tokio::test]
    async fn edits_and_deletions_in_the_store_are_named() {
        let (_dir, store) = store_with_device().await;
        admin_actions_at(&store, &[10, 20, 30, 40]).await;
        assert!(
            verify(&store, Log::Admin)
                .expect("verify")
                .problem
                .is_none()
        );

        let key = 2u64.to_be_bytes();
        let mut second: AdminEntry = store.get(T::AdminLog, &key).expect("get").expect("there");
        second.target = "bernat".into();
        store
            .tree(T::AdminLog)
            .insert(key, serde_json::to_vec(&second).expect("json"))
            .expect("edit");
        let problem = verify(&store, Log::Admin).expect("verify").problem;
        assert_eq!(problem, Some(audit::Break::Edited { sequence: 2 }));

        store.tree(T::AdminLog).remove(key).expect("delete");
        let problem = verify(&store, Log::Admin).expect("verify").problem;
        assert_eq!(problem, Some(audit::Break::Deleted { first: 2, last: 2 }));

        // Reordering: the records under keys 3 and 4 trade places.
        let (third, fourth) = (
            store
                .tree(T::AdminLog)
                .get(3u64.to_be_bytes())
                .expect("get")
                .expect("there"),
            store
                .tree(T::AdminLog)
                .get(4u64.to_be_bytes())
                .expect("get")
                .expect("there"),
        );
        let original_second = {
            let mut s = second.clone();
            s.target = "anna".into();
            s
        };
        store
            .tree(T::AdminLog)
            .insert(
                2u64.to_be_bytes(),
                serde_json::to_vec(&original_second).expect("json"),
            )
            .expect("restore");
        assert!(
            verify(&store, Log::Admin)
                .expect("verify")
                .problem
                .is_none(),
            "restored"
        );
        store
            .tree(T::AdminLog)
            .insert(3u64.to_be_bytes(), fourth)
            .expect("swap");
        store
            .tree(T::AdminLog)
            .insert(4u64.to_be_bytes(), third)
            .expect("swap");
        let problem = verify(&store, Log::Admin).expect("verify").problem;
        assert_eq!(
            problem,
            Some(audit::Break::Reordered {
                sequence: 3,
                after: 4
            })
        );

        // Deleting the newest record is caught against the head.
        let (_dir2, store2) = store_with_device().await;
        admin_actions_at(&store2, &[10, 20, 30]).await;
        store2
            .tree(T::AdminLog)
            .remove(3u64.to_be_bytes())
            .expect("delete");
        let problem = verify(&store2, Log::Admin).expect("verify").problem;
        assert_eq!(problem, Some(audit::Break::Deleted { first: 3, last: 3 }));
    }

    #[tokio::test]
    async fn pruning_keeps_the_rest_verifiable_and_is_logged() {
        let (_dir, store) = store_with_device().await;
        admin_actions_at(&store, &[10, 20, 30, 40, 50]).await;
        record_events(
            &store,
            &town(),
            &[
                event("e1", "session_start", 15),
                event("e2", "session_end", 45),
            ],
            NOW,
        )
        .await
        .expect("record");
        let pruned = prune_before(&store, 35, 60).await.expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                connections: 1,
                admin_actions: 3
            }
        );
        for log in [Log::Admin, Log::Connections] {
            let verified = verify(&store, log).expect("verify");
            assert!(
                verified.problem.is_none(),
                "{log:?}: {:?}",
                verified.problem
            );
        }
        let admin: Vec<AdminEntry> = admin_actions(&store, Filter::default())
            .collect::<Result<_>>()
            .expect("read");
        assert_eq!(admin.first().map(|e| e.sequence), Some(4));
        let run = admin.last().expect("the retention run");
        assert_eq!(run.action, "retention.prune");
        assert!(
            run.after.contains("\"admin_actions_removed\":3"),
            "{}",
            run.after
        );
        // Deleting the first remaining record is still caught.
        store
            .tree(T::AdminLog)
            .remove(4u64.to_be_bytes())
            .expect("delete");
        assert_eq!(
            verify(&store, Log::Admin).expect("verify").problem,
            Some(audit::Break::Deleted { first: 4, last: 4 })
        );
    }
}
