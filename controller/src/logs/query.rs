//! Reading the logs for exports, and the sessions open now.

use super::*;

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
    entries_after(store, tree, 0)
}

/// The connection records after sequence `after`, oldest first, lazily
/// (the SIEM feed's reader).
pub fn connections_after(
    store: &Store,
    after: u64,
) -> impl Iterator<Item = Result<ConnectionEntry>> + use<> {
    entries_after(store, T::ConnectionLog, after)
}

/// The admin records after sequence `after`, oldest first, lazily.
pub fn admin_actions_after(
    store: &Store,
    after: u64,
) -> impl Iterator<Item = Result<AdminEntry>> + use<> {
    entries_after(store, T::AdminLog, after)
}

/// The records of `tree` after sequence `after` (keys are big-endian
/// sequences), oldest first, decoded lazily.
fn entries_after<E: serde::de::DeserializeOwned>(
    store: &Store,
    tree: T,
    after: u64,
) -> impl Iterator<Item = Result<E>> + use<E> {
    let start = after.saturating_add(1).to_be_bytes();
    store.tree(tree).range(start..).map(move |item| {
        let (key, bytes) = item?;
        stored::decode::<E>(&bytes).map_err(|reason| Error::Corrupt {
            tree: tree.name(),
            key: format!("{:?}", key.as_ref()),
            reason,
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

/// Open sessions, oldest first.
pub fn sessions(store: &Store) -> Result<Vec<OpenSession>> {
    let mut sessions: Vec<OpenSession> = store.list(T::Sessions)?;
    sessions.sort_by(|a, b| a.since.cmp(&b.since).then(a.device.cmp(&b.device)));
    Ok(sessions)
}
