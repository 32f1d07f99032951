//! The fan-out: how every gateway learns what changed and how the
//! controller learns that it applied it.
//!
//! It holds only what that takes — the peer [`journal`] (the peer set as
//! revisioned changes), the journal's latest revision, and each running
//! gateway's last acknowledgement — and none of the store: the controller
//! feeds it what each change did to the peers ([`Fanout::apply`], or the
//! whole set with [`Fanout::advance`]); a
//! gateway (embedded, or remote over `Gateway.WatchPeers`) asks for its
//! [`Fanout::updates`] and acknowledges ([`Fanout::applied`]); a
//! revocation waits on those acknowledgements ([`Fanout::wait_for`]).

pub mod history;
pub mod journal;

use journal::{HISTORY, PeerJournal};
use porta_gateway::peer::{GatewayPeer, Update};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A gateway's last confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayAck {
    /// Every peer change up to this revision is applied.
    pub revision: u64,
    /// Unix seconds.
    pub at: u64,
    /// Whether it is connected now (the embedded gateway always is).
    pub connected: bool,
}

/// The journal and the acknowledgements, shared by every clone.
#[derive(Clone)]
pub struct Fanout {
    journal: Arc<Mutex<PeerJournal>>,
    /// The journal's latest revision, for gateways waiting on it.
    revision: watch::Sender<u64>,
    /// Gateways running since this process started, by name.
    acks: watch::Sender<BTreeMap<String, GatewayAck>>,
}

impl Fanout {
    /// A fan-out whose history starts at `revision` with `peers`.
    pub fn new(revision: u64, peers: Vec<GatewayPeer>) -> Self {
        Self {
            journal: Arc::new(Mutex::new(PeerJournal::new(revision, peers, HISTORY))),
            revision: watch::Sender::new(revision),
            acks: watch::Sender::new(BTreeMap::new()),
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, PeerJournal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store at `revision` wants `peers`: record the difference and
    /// wake the gateways.
    pub fn advance(&self, revision: u64, peers: Vec<GatewayPeer>) {
        self.journal().advance(revision, peers);
        self.revision.send_replace(revision);
    }

    /// The store at `revision` changed these devices' peers only: record
    /// that (see [`PeerJournal::apply`]) and wake the gateways.
    pub fn apply(&self, revision: u64, changes: Vec<(String, Option<GatewayPeer>)>) {
        self.journal().apply(revision, changes);
        self.revision.send_replace(revision);
    }

    /// What `gateway` must apply after revision `after` (see
    /// [`PeerJournal::updates`]).
    pub fn updates(&self, gateway: &str, after: u64) -> Vec<Update> {
        self.journal().updates(gateway, after)
    }

    /// A receiver that sees the journal's revision after every change.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// `gateway` has applied every peer change up to `revision` (at `now`).
    pub fn applied(&self, gateway: &str, revision: u64, now: u64) {
        self.acks.send_modify(|acks| {
            acks.insert(
                gateway.to_owned(),
                GatewayAck {
                    revision,
                    at: now,
                    connected: true,
                },
            );
        });
    }

    /// A remote gateway's peer stream ended at `now`.
    pub fn disconnected(&self, gateway: &str, now: u64) {
        self.acks.send_modify(|acks| {
            if let Some(ack) = acks.get_mut(gateway) {
                ack.connected = false;
                ack.at = now;
            }
        });
    }

    /// Each running gateway's last acknowledgement.
    pub fn acks(&self) -> BTreeMap<String, GatewayAck> {
        self.acks.borrow().clone()
    }

    /// Waits, at most `timeout`, until each of `expected` has applied
    /// `revision` or is disconnected (it cannot confirm now; it catches up
    /// — and drops what it must — before it serves again). Returns those
    /// that confirmed and those that did not.
    pub async fn wait_for(
        &self,
        expected: Vec<String>,
        revision: u64,
        timeout: std::time::Duration,
    ) -> (Vec<String>, Vec<String>) {
        let confirmed_or_away = |acks: &BTreeMap<String, GatewayAck>| {
            expected.iter().all(|g| {
                acks.get(g)
                    .is_none_or(|a| !a.connected || a.revision >= revision)
            })
        };
        let mut acks = self.acks.subscribe();
        let _ = tokio::time::timeout(timeout, acks.wait_for(confirmed_or_away)).await;
        let acks = acks.borrow();
        expected
            .into_iter()
            .partition(|g| acks.get(g).is_some_and(|a| a.revision >= revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_revision_is_confirmed_by_those_that_applied_it_and_the_away_do_not_hold_it_up() {
        let fanout = Fanout::new(1, Vec::new());
        fanout.applied("town", 1, 100);
        fanout.applied("annex", 1, 100);
        fanout.applied("branch", 1, 100);
        fanout.disconnected("branch", 101);
        let waiting = fanout.clone();
        let wait = tokio::spawn(async move {
            waiting
                .wait_for(
                    vec!["town".into(), "annex".into(), "branch".into()],
                    2,
                    Duration::from_secs(30),
                )
                .await
        });
        fanout.applied("town", 2, 102);
        fanout.applied("annex", 2, 102);
        let (confirmed, pending) = wait.await.expect("the wait ends");
        assert_eq!(confirmed, ["town", "annex"]);
        assert_eq!(pending, ["branch"], "away: reported pending at once");
        assert_eq!(fanout.acks()["branch"].at, 101);
    }
}
