//! Connection events a remote gateway has not delivered yet, on disk.
//!
//! A sled tree in the gateway's data directory, flushed on every change:
//! a gateway that loses the controller, or its own process, loses no
//! event. Events leave it only once the controller has recorded them
//! (`Gateway.ReportEvents`), oldest first; the controller skips event ids
//! it already has, so a batch resent after a lost reply counts once.

use crate::event::GatewayEvent;
use porta_proto::pb;
use prost::Message;
use std::path::Path;

/// The undelivered events, in the order they were kept.
pub struct EventOutbox {
    db: sled::Db,
}

/// Where a batch sits in the outbox, to remove it once delivered.
pub type Keys = Vec<sled::IVec>;

impl EventOutbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(dir: &Path) -> sled::Result<Self> {
        Ok(Self {
            db: sled::open(dir)?,
        })
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.db.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    /// Keeps `events` after those already waiting, durably.
    pub fn push(&self, events: &[GatewayEvent]) -> sled::Result<()> {
        for event in events {
            let key = self.db.generate_id()?.to_be_bytes();
            self.db
                .insert(key, pb::ConnectionEvent::from(event).encode_to_vec())?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// The oldest `limit` events and where they sit. A damaged entry is
    /// logged and its key returned with the others, so that it leaves
    /// with the batch instead of blocking the outbox.
    pub fn peek(&self, limit: usize) -> sled::Result<(Keys, Vec<pb::ConnectionEvent>)> {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for item in self.db.iter().take(limit) {
            let (key, bytes) = item?;
            match pb::ConnectionEvent::decode(bytes.as_ref()) {
                Ok(event) => events.push(event),
                Err(error) => tracing::error!(%error, "dropping a damaged kept event"),
            }
            keys.push(key);
        }
        Ok((keys, events))
    }

    /// Removes a delivered batch, durably.
    pub fn remove(&self, keys: &[sled::IVec]) -> sled::Result<()> {
        for key in keys {
            self.db.remove(key)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(id: &str) -> GatewayEvent {
        GatewayEvent {
            event_id: id.into(),
            kind: EventKind::SessionStart,
            at: 1,
            device_id: "d".into(),
            public_address: "192.0.2.1:1".into(),
            previous_public_address: String::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            reason: None,
            session_start: 1,
        }
    }

    #[test]
    fn events_survive_a_restart_in_order_and_leave_only_when_removed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        {
            let outbox = EventOutbox::open(dir.path()).expect("opens");
            outbox
                .push(&[event("a"), event("b"), event("c")])
                .expect("kept");
        }
        let outbox = EventOutbox::open(dir.path()).expect("reopens");
        let (keys, events) = outbox.peek(2).expect("reads");
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        outbox.remove(&keys).expect("removed");
        let (_, rest) = outbox.peek(10).expect("reads");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].event_id, "c");
    }
}
