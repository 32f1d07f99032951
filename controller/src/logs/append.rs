//! Appending to the logs' hash chains, inside the caller's transaction:
//! the one place a record gets its sequence and the hash it chains to.

use super::*;

fn head(t: &Txn<'_>, key: &[u8]) -> Result<Head, TxError> {
    Ok(t.get(T::Meta, key)?.unwrap_or_else(Head::genesis))
}

/// Writes `record` under its sequence in its stored form.
fn put_record<E: Serialize>(
    t: &Txn<'_>,
    tree: T,
    sequence: u64,
    record: &E,
) -> Result<(), TxError> {
    let bytes = stored::encode(record).map_err(|reason| Error::Corrupt {
        tree: tree.name(),
        key: sequence.to_string(),
        reason,
    })?;
    t.put_raw(tree, &sequence.to_be_bytes(), &bytes)
}

/// Appends an admin record to `t`, the change's own transaction.
/// `before`/`after` are the object's JSON; never pass secrets.
pub fn log_admin(
    t: &Txn<'_>,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
    now: u64,
) -> Result<(), TxError> {
    let last = head(t, meta::ADMIN_HEAD)?;
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
    put_record(t, T::AdminLog, entry.sequence, &entry)?;
    t.put(
        T::Meta,
        meta::ADMIN_HEAD,
        &Head {
            sequence: entry.sequence,
            hash: entry.hash,
        },
    )
}

/// Appends a connection record to `t`, remembering its event id.
pub(super) fn log_connection(t: &Txn<'_>, mut entry: ConnectionEntry) -> Result<(), TxError> {
    let last = head(t, meta::CONNECTION_HEAD)?;
    entry.sequence = last.sequence + 1;
    entry.previous_hash = last.hash;
    entry.hash = audit::record_hash(&entry.previous_hash, &entry.cells());
    put_record(t, T::ConnectionLog, entry.sequence, &entry)?;
    t.put_raw(
        T::EventIds,
        entry.event_id.as_bytes(),
        &entry.sequence.to_be_bytes(),
    )?;
    t.put(
        T::Meta,
        meta::CONNECTION_HEAD,
        &Head {
            sequence: entry.sequence,
            hash: entry.hash,
        },
    )
}
