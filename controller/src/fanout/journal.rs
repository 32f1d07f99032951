//! The peer journal: what every gateway should have, as ordered, revisioned
//! changes.
//!
//! After each change in the store the controller computes the peers of the
//! devices the change touched (`Controller::peers_of`), and
//! [`PeerJournal::apply`] turns their differences into changes stamped with
//! the store revision; a change any peer may depend on (a group, a gateway,
//! the settings) computes the whole set (`Controller::gateway_peers`) for
//! [`PeerJournal::advance`]. A gateway — the embedded one in
//! this process, or a remote one over `Gateway.WatchPeers` — asks for
//! [`PeerJournal::updates`] after the last revision it applied and receives
//! only its own peers' changes, then an end marker carrying the revision to
//! acknowledge. A gateway that is new, or so far behind that the bounded
//! history no longer reaches back to it, receives a snapshot instead.
//!
//! The journal is plain data (no IO, no clock, no locks): the controller
//! keeps one behind a mutex and a task feeds it. It lives in memory; after
//! a controller restart its history starts at the current revision, and a
//! gateway that was behind gets a snapshot. Revisions are the store's, which
//! persist, so a gateway that was up to date resumes without one.

pub use porta_gateway::peer::{GatewayPeer, PeerChange, Update};
use std::collections::{BTreeMap, VecDeque};

/// How many changes the journal remembers before older gateways need a
/// snapshot. A change is one device added, changed or removed.
pub const HISTORY: usize = 20_000;

/// The current peer set and a bounded history of changes.
#[derive(Debug)]
pub struct PeerJournal {
    revision: u64,
    current: BTreeMap<String, GatewayPeer>,
    /// History covers every change after `base` up to `revision`.
    base: u64,
    history: VecDeque<(u64, PeerChange)>,
    limit: usize,
}

impl PeerJournal {
    /// A journal whose history starts at `revision` with `peers`.
    pub fn new(revision: u64, peers: Vec<GatewayPeer>, limit: usize) -> Self {
        Self {
            revision,
            current: peers
                .into_iter()
                .map(|p| (p.device_id.clone(), p))
                .collect(),
            base: revision,
            history: VecDeque::new(),
            limit,
        }
    }

    /// The latest revision recorded.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Records that the store at `revision` wants `peers`. Older or equal
    /// revisions are ignored (the change feed may repeat itself).
    pub fn advance(&mut self, revision: u64, peers: Vec<GatewayPeer>) {
        if revision <= self.revision {
            return;
        }
        let mut wanted: BTreeMap<String, GatewayPeer> = peers
            .into_iter()
            .map(|p| (p.device_id.clone(), p))
            .collect();
        for (device_id, old) in &self.current {
            match wanted.get(device_id) {
                Some(new) if new == old => {}
                Some(new) if new.gateway == old.gateway => {
                    self.history
                        .push_back((revision, PeerChange::Upsert(new.clone())));
                }
                // Gone, or moved to another gateway: the old one drops it.
                _ => self.history.push_back((
                    revision,
                    PeerChange::Removed {
                        device_id: device_id.clone(),
                        gateway: old.gateway.clone(),
                    },
                )),
            }
        }
        for (device_id, new) in &wanted {
            let moved = self
                .current
                .get(device_id)
                .is_some_and(|old| old.gateway != new.gateway);
            if moved || !self.current.contains_key(device_id) {
                self.history
                    .push_back((revision, PeerChange::Upsert(new.clone())));
            }
        }
        std::mem::swap(&mut self.current, &mut wanted);
        self.revision = revision;
        self.trim();
    }

    /// Records that the store at `revision` changed only these devices'
    /// peers (`None`: the device has none now) — a change costs what it
    /// touches, not the whole peer set. Older or equal revisions are
    /// ignored, as in [`PeerJournal::advance`].
    pub fn apply(&mut self, revision: u64, changes: Vec<(String, Option<GatewayPeer>)>) {
        if revision <= self.revision {
            return;
        }
        for (device_id, wanted) in changes {
            let old = self.current.remove(&device_id);
            match (&old, &wanted) {
                (Some(old), Some(new)) if old == new => {}
                (Some(old), Some(new)) if old.gateway == new.gateway => {
                    self.history
                        .push_back((revision, PeerChange::Upsert(new.clone())));
                }
                (old, new) => {
                    // Gone, or moved to another gateway: the old one drops it.
                    if let Some(old) = old {
                        self.history.push_back((
                            revision,
                            PeerChange::Removed {
                                device_id: device_id.clone(),
                                gateway: old.gateway.clone(),
                            },
                        ));
                    }
                    if let Some(new) = new {
                        self.history
                            .push_back((revision, PeerChange::Upsert(new.clone())));
                    }
                }
            }
            if let Some(new) = wanted {
                self.current.insert(device_id, new);
            }
        }
        self.revision = revision;
        self.trim();
    }

    /// Drops the oldest revisions until the history fits its limit; whole
    /// revisions only, so that `base` stays exact.
    fn trim(&mut self) {
        while self.history.len() > self.limit {
            let Some(&(oldest, _)) = self.history.front() else {
                break;
            };
            while self.history.front().is_some_and(|(r, _)| *r == oldest) {
                self.history.pop_front();
            }
            self.base = oldest;
        }
    }

    /// What `gateway`, having applied everything up to `after`, must apply
    /// to be current: nothing if it is, otherwise its changes (or a
    /// snapshot) followed by [`Update::End`].
    pub fn updates(&self, gateway: &str, after: u64) -> Vec<Update> {
        if after == self.revision && after != 0 {
            return Vec::new();
        }
        let mut updates = if after == 0 || after < self.base || after > self.revision {
            vec![Update::Snapshot(
                self.current
                    .values()
                    .filter(|p| p.gateway == gateway)
                    .cloned()
                    .collect(),
            )]
        } else {
            self.history
                .iter()
                .filter(|(r, change)| *r > after && change.gateway() == gateway)
                .map(|(_, change)| Update::Change(change.clone()))
                .collect()
        };
        updates.push(Update::End(self.revision));
        updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porta_gateway::destination::{Destination, PortRange, Protocol};
    use proptest::prelude::*;

    fn peer(n: u8, gateway: &str, port: u16) -> GatewayPeer {
        GatewayPeer {
            device_id: format!("d{n}"),
            gateway: gateway.to_owned(),
            public_key: porta_proto::PublicKey([n; 32]),
            allowed_ips: vec![format!("10.77.0.{n}/32").parse().expect("an address")],
            destinations: vec![Destination {
                cidr: "10.1.0.0/16".parse().expect("a prefix"),
                protocol: Protocol::Tcp,
                ports: vec![PortRange {
                    first: port,
                    last: port,
                }],
            }],
        }
    }

    /// What a gateway holds after applying `updates` to `held`.
    fn apply(held: &mut BTreeMap<String, GatewayPeer>, updates: &[Update]) -> Option<u64> {
        let mut end = None;
        for update in updates {
            match update {
                Update::Snapshot(peers) => {
                    *held = peers
                        .iter()
                        .map(|p| (p.device_id.clone(), p.clone()))
                        .collect();
                }
                Update::Change(PeerChange::Upsert(p)) => {
                    held.insert(p.device_id.clone(), p.clone());
                }
                Update::Change(PeerChange::Removed { device_id, .. }) => {
                    held.remove(device_id);
                }
                Update::End(r) => end = Some(*r),
            }
        }
        end
    }

    #[test]
    fn a_new_gateway_gets_a_snapshot_of_its_own_peers_only() {
        let journal = PeerJournal::new(7, vec![peer(1, "town", 1), peer(2, "branch", 1)], HISTORY);
        let updates = journal.updates("branch", 0);
        assert_eq!(
            updates,
            vec![Update::Snapshot(vec![peer(2, "branch", 1)]), Update::End(7)]
        );
        assert!(journal.updates("branch", 7).is_empty());
    }

    #[test]
    fn a_current_gateway_gets_only_what_changed_for_it() {
        let mut journal =
            PeerJournal::new(1, vec![peer(1, "town", 1), peer(2, "branch", 1)], HISTORY);
        journal.advance(2, vec![peer(1, "town", 2), peer(2, "branch", 1)]);
        journal.advance(3, vec![peer(1, "town", 2)]);
        assert_eq!(
            journal.updates("branch", 1),
            vec![
                Update::Change(PeerChange::Removed {
                    device_id: "d2".into(),
                    gateway: "branch".into()
                }),
                Update::End(3)
            ]
        );
        assert_eq!(
            journal.updates("town", 2),
            vec![Update::End(3)],
            "a revision without changes for a gateway still ends, to be acknowledged"
        );
        assert_eq!(
            journal.updates("town", 1),
            vec![
                Update::Change(PeerChange::Upsert(peer(1, "town", 2))),
                Update::End(3)
            ]
        );
    }

    #[test]
    fn a_gateway_behind_the_history_or_ahead_of_it_gets_a_snapshot() {
        let mut journal = PeerJournal::new(10, vec![], 2);
        journal.advance(11, vec![peer(1, "town", 1)]);
        journal.advance(12, vec![peer(1, "town", 1), peer(2, "town", 1)]);
        journal.advance(13, vec![peer(1, "town", 2), peer(2, "town", 2)]);
        assert!(matches!(
            journal.updates("town", 10)[0],
            Update::Snapshot(_)
        ));
        assert!(matches!(
            journal.updates("town", 99)[0],
            Update::Snapshot(_)
        ));
        assert_eq!(journal.updates("town", 12).len(), 3);
    }

    proptest! {
        /// Whatever revision a gateway stopped at, applying its updates
        /// gives exactly its share of the current peer set.
        #[test]
        fn catching_up_from_any_revision_gives_the_current_set(
            steps in prop::collection::vec(
                prop::collection::btree_map(0u8..12, (0u8..2, 1u16..4), 0..8), 1..12),
            limit in 1usize..30,
            stop in 0usize..12,
        ) {
            let as_peers = |step: &BTreeMap<u8, (u8, u16)>| -> Vec<GatewayPeer> {
                step.iter()
                    .map(|(n, (g, port))| peer(*n, if *g == 0 { "town" } else { "branch" }, *port))
                    .collect()
            };
            let mut journal = PeerJournal::new(1, as_peers(&steps[0]), limit);
            let stop = stop % steps.len();
            let mut held: BTreeMap<String, GatewayPeer> = BTreeMap::new();
            let mut held_revision = 0;
            for (i, step) in steps.iter().enumerate().skip(1) {
                if i == stop + 1 {
                    held_revision = apply(&mut held, &journal.updates("branch", 0)).expect("a snapshot ends");
                }
                journal.advance(i as u64 + 1, as_peers(step));
            }
            if held_revision == 0 {
                held_revision = apply(&mut held, &journal.updates("branch", 0)).expect("a snapshot ends");
            }
            let end = apply(&mut held, &journal.updates("branch", held_revision));
            prop_assert_eq!(end.unwrap_or(held_revision), journal.revision());
            let wanted: BTreeMap<String, GatewayPeer> = as_peers(steps.last().expect("at least one step"))
                .into_iter()
                .filter(|p| p.gateway == "branch")
                .map(|p| (p.device_id.clone(), p))
                .collect();
            prop_assert_eq!(held, wanted);
        }

        /// Feeding only the devices that changed ([`PeerJournal::apply`])
        /// records exactly what comparing whole peer sets
        /// ([`PeerJournal::advance`]) records.
        #[test]
        fn changes_by_device_record_what_whole_sets_record(
            steps in prop::collection::vec(
                prop::collection::btree_map(0u8..12, (0u8..2, 1u16..4), 0..8), 1..12),
        ) {
            let as_peers = |step: &BTreeMap<u8, (u8, u16)>| -> Vec<GatewayPeer> {
                step.iter()
                    .map(|(n, (g, port))| peer(*n, if *g == 0 { "town" } else { "branch" }, *port))
                    .collect()
            };
            let mut whole = PeerJournal::new(1, as_peers(&steps[0]), HISTORY);
            let mut by_device = PeerJournal::new(1, as_peers(&steps[0]), HISTORY);
            let mut before = steps[0].clone();
            for (i, step) in steps.iter().enumerate().skip(1) {
                let revision = i as u64 + 1;
                whole.advance(revision, as_peers(step));
                // Every device present before or after, in any order.
                let mut touched: Vec<u8> = before.keys().chain(step.keys()).copied().collect();
                touched.sort_unstable();
                touched.dedup();
                touched.reverse();
                let changes = touched
                    .into_iter()
                    .map(|n| {
                        let now = step.get(&n).map(|(g, port)| {
                            peer(n, if *g == 0 { "town" } else { "branch" }, *port)
                        });
                        (format!("d{n}"), now)
                    })
                    .collect();
                by_device.apply(revision, changes);
                before = step.clone();
            }
            prop_assert_eq!(&whole.current, &by_device.current);
            for gateway in ["town", "branch"] {
                for after in 1..=whole.revision() {
                    let mut a = BTreeMap::new();
                    let mut b = BTreeMap::new();
                    apply(&mut a, &whole.updates(gateway, after));
                    apply(&mut b, &by_device.updates(gateway, after));
                    prop_assert_eq!(a, b);
                }
            }
        }
    }
}
