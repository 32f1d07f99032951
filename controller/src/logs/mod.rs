//! The controller's two audit logs: connections (what gateways saw) and
//! admin actions (who changed what). Both are append-only and hash-chained
//! with [`porta_proto::audit`]: each record's hash covers its cells exactly
//! as they are exported and the hash of the record before it.
//!
//! One module per concern, over the record types defined here:
//! * [`append`]: the chain appends. Admin records are appended inside the
//!   transaction of the change they describe ([`log_admin`]), so a change
//!   and its record exist together or not at all.
//! * [`check`]: what a gateway's event must satisfy to enter the log
//!   (sans-IO: the event, the device, its open session, the gateway).
//! * [`ingest`]: connection records from gateway events ([`record_events`]);
//!   an event id already recorded is skipped, so gateways can resend until
//!   acknowledged and nothing is counted twice. The same transaction keeps
//!   the `sessions` tree (who is connected now) in step.
//! * [`query`]: exports and the open sessions.
//! * [`verify`](mod@verify): walking a whole log's hashes and links.
//! * [`stored`]: how a record is laid out in its tree (compact binary;
//!   JSON from before schema 3 still reads).
//! * [`retention`]: [`prune_before`] deletes old records and remembers the
//!   last deleted record's hash as the log's anchor; the admin record of the
//!   retention run carries the anchor too, so the remaining log still
//!   verifies and the pruning itself is on record.

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::store::records::{DeviceRecord, GatewayRecord};
use crate::store::{Store, T, TxError, Txn, meta};
use porta_gateway::event::{EventKind, GatewayEvent};
use porta_proto::audit::{self, GENESIS, Log, Row};
use porta_proto::pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod append;
pub mod check;
pub mod ingest;
pub mod query;
pub mod retention;
pub mod stored;
pub mod verify;

pub use append::log_admin;
pub use ingest::{EventReport, record_events};
pub use query::{Filter, admin_actions, connections, sessions};
pub use retention::{Pruned, prune_before};
pub use verify::{Verification, verify};

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
        self.clone().into_pb()
    }

    /// The record as exported, its text moved rather than copied (an
    /// export sends millions).
    pub fn into_pb(self) -> pb::ConnectionRecord {
        pb::ConnectionRecord {
            sequence: self.sequence,
            event_id: self.event_id,
            kind: self.kind,
            at: self.at,
            user: self.user,
            device: self.device,
            tunnel_address: self.tunnel_address,
            public_address: self.public_address,
            gateway: self.gateway,
            session_start: self.session_start,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            previous_hash: self.previous_hash,
            hash: self.hash,
            previous_public_address: self.previous_public_address,
            reason: self.reason,
        }
    }

    /// The cells its hash covers (exactly as exported).
    pub fn cells(&self) -> Vec<String> {
        audit::connection_cells(&self.to_pb())
            .into_iter()
            .map(std::borrow::Cow::into_owned)
            .collect()
    }
}

impl AdminEntry {
    /// The record as exported.
    pub fn to_pb(&self) -> pb::AdminActionRecord {
        self.clone().into_pb()
    }

    /// The record as exported, its text moved rather than copied.
    pub fn into_pb(self) -> pb::AdminActionRecord {
        pb::AdminActionRecord {
            sequence: self.sequence,
            at: self.at,
            actor: self.actor,
            actor_address: self.actor_address,
            action: self.action,
            target: self.target,
            before_json: self.before,
            after_json: self.after,
            previous_hash: self.previous_hash,
            hash: self.hash,
        }
    }

    /// The cells its hash covers (exactly as exported).
    pub fn cells(&self) -> Vec<String> {
        audit::admin_cells(&self.to_pb())
            .into_iter()
            .map(std::borrow::Cow::into_owned)
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::DeviceRecord;
    use porta_gateway::event::EndReason;

    async fn store_with_device() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("open");
        let device = DeviceRecord::new(
            "d1",
            "anna-laptop",
            "anna",
            porta_proto::PublicKey([1; 32]),
            "10.77.0.2".parse().expect("address"),
            "c1",
            1,
        );
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
                    log_admin(
                        t,
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
        let mut second: AdminEntry = stored::decode(
            &store
                .tree(T::AdminLog)
                .get(key)
                .expect("get")
                .expect("there"),
        )
        .expect("decode");
        second.target = "bernat".into();
        store
            .tree(T::AdminLog)
            .insert(key, stored::encode(&second).expect("encode"))
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
                stored::encode(&original_second).expect("encode"),
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
    async fn a_log_begun_before_schema_3_reads_and_verifies_with_the_records_after() {
        let (_dir, store) = store_with_device().await;
        admin_actions_at(&store, &[10, 20]).await;
        // What a controller before schema 3 wrote: the records as JSON.
        for (key, bytes) in store
            .tree(T::AdminLog)
            .iter()
            .map(|item| item.expect("read"))
        {
            let record: AdminEntry = stored::decode(&bytes).expect("decode");
            store
                .tree(T::AdminLog)
                .insert(key, serde_json::to_vec(&record).expect("json"))
                .expect("rewrite");
        }
        admin_actions_at(&store, &[30, 40]).await;
        let stored_forms: Vec<u8> = store
            .tree(T::AdminLog)
            .iter()
            .values()
            .map(|bytes| bytes.expect("read")[0])
            .collect();
        assert_eq!(stored_forms, vec![b'{', b'{', 1, 1], "two of each form");

        let times: Vec<u64> = admin_actions(&store, Filter::default())
            .map(|entry| entry.expect("decodes").at)
            .collect();
        assert_eq!(times, vec![10, 20, 30, 40]);
        let verified = verify(&store, Log::Admin).expect("verify");
        assert!(verified.problem.is_none(), "{:?}", verified.problem);
        assert_eq!(verified.range, Some((1, 4)));
        let pruned = prune_before(&store, 25, 50).await.expect("prune");
        assert_eq!(pruned.admin_actions, 2, "the JSON records age out too");
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

    /// An auditor verifies while admins keep writing and a retention run
    /// prunes: every walk says the log is intact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifying_while_admins_write_and_retention_prunes_finds_nothing_wrong() {
        let (_dir, store) = store_with_device().await;
        admin_actions_at(&store, &(1..=300).collect::<Vec<_>>()).await;
        // The writer appends 200 more, pruning half way; the auditor walks
        // the log again and again for as long as it writes.
        let writer = tokio::spawn({
            let store = store.clone();
            async move {
                for at in 301..=500 {
                    admin_actions_at(&store, &[at]).await;
                    if at == 400 {
                        prune_before(&store, 150, at).await.expect("prune");
                    }
                }
            }
        });
        let mut walks = 0;
        while !writer.is_finished() || walks < 20 {
            let store = store.clone();
            let verified = tokio::task::spawn_blocking(move || verify(&store, Log::Admin))
                .await
                .expect("join")
                .expect("verify");
            assert!(
                verified.problem.is_none(),
                "walk {walks}: {:?}",
                verified.problem
            );
            walks += 1;
        }
        writer.await.expect("writer");
        assert!(
            verify(&store, Log::Admin)
                .expect("verify")
                .problem
                .is_none()
        );
    }
}
