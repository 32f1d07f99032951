//! Where the feed is: the sequence of the last record of each log the
//! collector has, kept in the store (so a restart resumes there), and
//! the next records after it.

use crate::error::Result;
use crate::logs::query::{admin_actions_after, connections_after};
use crate::store::{Store, T, meta};
use porta_proto::audit::{Log, iso};
use serde::{Deserialize, Serialize};

/// The last record of each log delivered (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Connection log.
    pub connection: u64,
    /// Admin log.
    pub admin: u64,
}

impl Position {
    /// The sequence for `log`.
    pub fn of(&self, log: Log) -> u64 {
        match log {
            Log::Connections => self.connection,
            Log::Admin => self.admin,
        }
    }

    fn slot(&mut self, log: Log) -> &mut u64 {
        match log {
            Log::Connections => &mut self.connection,
            Log::Admin => &mut self.admin,
        }
    }

    /// `log`'s record `sequence` is delivered (never moves back).
    pub fn advance(&mut self, log: Log, sequence: u64) {
        let slot = self.slot(log);
        *slot = (*slot).max(sequence);
    }

    /// Sends `log` again from after `sequence` (moves back only).
    pub fn rewind(&mut self, log: Log, sequence: u64) {
        let slot = self.slot(log);
        *slot = (*slot).min(sequence);
    }
}

/// What is saved: the position and the target it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    target: String,
    position: Position,
}

/// The saved position for `target`; a new target starts from the first
/// record the logs still hold.
pub fn load(store: &Store, target: &str) -> Result<Position> {
    Ok(match store.get::<Saved>(T::Meta, meta::FEED_CURSOR)? {
        Some(saved) if saved.target == target => saved.position,
        _ => Position::default(),
    })
}

/// Saves `position` for `target` (durably, without a new revision).
pub async fn save(store: &Store, target: &str, position: Position) -> Result<()> {
    let saved = Saved {
        target: target.to_owned(),
        position,
    };
    store
        .append(|t| {
            t.put(T::Meta, meta::FEED_CURSOR, &saved)?;
            Ok(())
        })
        .await
}

/// A record on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its log.
    pub log: Log,
    /// Its sequence.
    pub sequence: u64,
    /// When it happened, ISO 8601 UTC.
    pub at: String,
    /// [`porta_proto::feed::record_json`]'s line.
    pub json: String,
}

/// Up to `limit` records after `position`: each log in order, the two
/// interleaved by time.
pub fn next_batch(store: &Store, position: Position, limit: usize) -> Result<Vec<Outgoing>> {
    let connections = connections_after(store, position.connection)
        .take(limit)
        .map(|entry| {
            entry.map(|e| {
                let json = porta_proto::feed::record_json(
                    Log::Connections,
                    &e.cells(),
                    &e.previous_hash,
                    &e.hash,
                );
                (
                    e.at,
                    Outgoing {
                        log: Log::Connections,
                        sequence: e.sequence,
                        at: iso(e.at),
                        json,
                    },
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let admin = admin_actions_after(store, position.admin)
        .take(limit)
        .map(|entry| {
            entry.map(|e| {
                let json = porta_proto::feed::record_json(
                    Log::Admin,
                    &e.cells(),
                    &e.previous_hash,
                    &e.hash,
                );
                (
                    e.at,
                    Outgoing {
                        log: Log::Admin,
                        sequence: e.sequence,
                        at: iso(e.at),
                        json,
                    },
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(merge_by_time(connections, admin, limit))
}

/// Merges two lists, each kept in its own order, by time (`a` first on
/// ties), up to `limit`.
fn merge_by_time<R>(a: Vec<(u64, R)>, b: Vec<(u64, R)>, limit: usize) -> Vec<R> {
    let mut merged = Vec::with_capacity(limit.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while merged.len() < limit {
        let take_a = match (a.peek(), b.peek()) {
            (Some((at_a, _)), Some((at_b, _))) => at_a <= at_b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        merged.extend(next.map(|(_, record)| record));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_each_log_in_its_own_order() {
        // Connection events carry the gateway's time, which need not rise
        // with the sequence: each log's order wins over time.
        let connections = vec![(10, "c1"), (5, "c2"), (30, "c3")];
        let admin = vec![(7, "a1"), (20, "a2")];
        assert_eq!(
            merge_by_time(connections.clone(), admin.clone(), 10),
            ["a1", "c1", "c2", "a2", "c3"]
        );
        assert_eq!(merge_by_time(connections, admin, 2), ["a1", "c1"]);
    }

    #[test]
    fn a_position_advances_and_rewinds_one_way_each() {
        let mut position = Position::default();
        position.advance(Log::Admin, 5);
        position.advance(Log::Admin, 3);
        assert_eq!(position.of(Log::Admin), 5);
        position.rewind(Log::Admin, 7);
        position.rewind(Log::Connections, 2);
        assert_eq!(
            position,
            Position {
                connection: 0,
                admin: 5
            }
        );
        position.rewind(Log::Admin, 2);
        assert_eq!(position.of(Log::Admin), 2);
    }
}
