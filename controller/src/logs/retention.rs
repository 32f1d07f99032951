//! Retention: old records out, the log's anchor kept.

use super::*;

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
                    Log::Connections => stored::decode::<ConnectionEntry>(&bytes)
                        .map(|e| (e.at, e.sequence, e.hash, Some(e.event_id))),
                    Log::Admin => stored::decode::<AdminEntry>(&bytes)
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
            log_admin(
                t,
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
