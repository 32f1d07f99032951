//! The controller's store: sled on disk, one tree per entity.
//!
//! # Layout
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `schema_version`, `settings`, `revision`, `ipv4_hint` | see [`meta`] |
//! | `users` | name | [`UserRecord`](records::UserRecord) |
//! | `groups` | name | [`GroupRecord`](records::GroupRecord) |
//! | `invites` | secret id | [`InviteRecord`](records::InviteRecord) |
//! | `credentials` | secret id | [`CredentialRecord`](records::CredentialRecord) |
//! | `devices` | device id | [`DeviceRecord`](records::DeviceRecord) |
//! | `device_names` | name of a live device | device id |
//! | `token_names` | device name an enrollment token will give | invite id |
//! | `device_keys` | WireGuard public key (32 bytes), live or revoked | device id |
//! | `addresses` | IPv4 octets | [`AddressLease`](records::AddressLease) |
//! | `gateways` | gateway id | [`GatewayRecord`](records::GatewayRecord) |
//! | `connection_log` | sequence (u64 big-endian) | [`ConnectionEntry`](crate::logs::ConnectionEntry), in its [stored form](crate::logs::stored) |
//! | `admin_log` | sequence (u64 big-endian) | [`AdminEntry`](crate::logs::AdminEntry), in its [stored form](crate::logs::stored) |
//! | `event_ids` | a gateway's event id | sequence of the record it became |
//! | `sessions` | device id | [`OpenSession`](crate::logs::OpenSession) |
//! | `name_skeletons` | kind byte, 0, TR39 skeleton | the name holding it ([`crate::names`]) |
//!
//! Every change goes through [`Store::write`] (or [`Store::append`] for log
//! records, which change no configuration): one sled transaction over all
//! trees (so invariants that span trees — token consumed, device recorded,
//! address leased — hold together or not at all), serialised by a process
//! lock, bumping the `revision` counter, and flushed to disk before it
//! returns, so an acknowledged change survives `kill -9`.
//!
//! The schema version is checked on open and older stores are migrated by
//! ordered steps (`MIGRATIONS`); a store written by a newer Porta is
//! refused rather than misread.

mod disk_full;
mod flusher;
pub mod records;
mod tables;
mod wire;
pub mod witness;

use disk_full::storage_error;

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// sled's page cache. Its accounting counts nodes as stored, not as held
/// in memory: with 50,000 devices a 64 MiB cache kept the controller at
/// 260–280 MiB resident, 16 MiB at 200–230, with revocations and
/// enrollments as fast (docs/BENCHMARKS.md, fleet).
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 3;

/// Ordered migrations: entry `i` upgrades a store from version `i + 1` to
/// `i + 2`.
const MIGRATIONS: &[fn(&sled::Db) -> Result<()>] = &[index_name_skeletons, compact_log_records];

/// 1 → 2: the `name_skeletons` index of every user, group and device name
/// (live devices and open tokens), so lookalikes of names made before are
/// refused too.
/// 2 → 3: new log records are stored compactly
/// ([`crate::logs::stored`]). Nothing is rewritten — records from before
/// read as they are — but the version moves so that an older controller
/// refuses the store instead of calling the new records corrupt.
fn compact_log_records(_: &sled::Db) -> Result<()> {
    Ok(())
}

fn index_name_skeletons(db: &sled::Db) -> Result<()> {
    use crate::names::{Kind, skeleton_key};
    let index = db.open_tree(T::NameSkeletons.name())?;
    for (tree, kind) in [
        (T::Users, Kind::User),
        (T::Groups, Kind::Group),
        (T::DeviceNames, Kind::Device),
        (T::TokenNames, Kind::Device),
    ] {
        for key in db.open_tree(tree.name())?.iter().keys() {
            let key = key?;
            let name = String::from_utf8_lossy(&key);
            index.insert(skeleton_key(kind, &name), key.as_ref())?;
        }
    }
    Ok(())
}

/// Keys of the `meta` tree.
pub mod meta {
    /// u32 big-endian.
    pub const SCHEMA_VERSION: &[u8] = b"schema_version";
    /// JSON [`crate::settings::Settings`].
    pub const SETTINGS: &[u8] = b"settings";
    /// u64 big-endian; bumped by every write.
    pub const REVISION: &[u8] = b"revision";
    /// IPv4 octets: where the next address search starts.
    pub const IPV4_HINT: &[u8] = b"ipv4_hint";
    /// JSON [`crate::logs::Head`]: the connection log's newest record.
    pub const CONNECTION_HEAD: &[u8] = b"connection_log_head";
    /// JSON [`crate::logs::Head`]: the admin log's newest record.
    pub const ADMIN_HEAD: &[u8] = b"admin_log_head";
    /// JSON [`crate::logs::Head`]: the connection log's last pruned record.
    pub const CONNECTION_ANCHOR: &[u8] = b"connection_log_anchor";
    /// JSON [`crate::logs::Head`]: the admin log's last pruned record.
    pub const ADMIN_ANCHOR: &[u8] = b"admin_log_anchor";
    /// JSON: the SIEM feed's target and what it has delivered there.
    pub const FEED_CURSOR: &[u8] = b"feed_cursor";
}

/// The trees, in the order [`Store::write`] hands them to a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    /// Settings and counters.
    Meta,
    /// Users by name.
    Users,
    /// Groups by name.
    Groups,
    /// One-time tokens by id.
    Invites,
    /// Credentials by id.
    Credentials,
    /// Devices by id.
    Devices,
    /// Live device name → id.
    DeviceNames,
    /// Device name reserved by an enrollment token → invite id.
    TokenNames,
    /// Public key → device id.
    DeviceKeys,
    /// IPv4 → lease.
    Addresses,
    /// Gateways by id.
    Gateways,
    /// Connection log records by sequence.
    ConnectionLog,
    /// Admin log records by sequence.
    AdminLog,
    /// Gateway event ids already recorded.
    EventIds,
    /// Sessions open now, by device id.
    Sessions,
    /// Lookalike index of names.
    NameSkeletons,
    /// Revision → its history mark (see [`Store::revision_mark`]).
    RevisionMarks,
}

const ALL_TREES: [T; 17] = [
    T::Meta,
    T::Users,
    T::Groups,
    T::Invites,
    T::Credentials,
    T::Devices,
    T::DeviceNames,
    T::TokenNames,
    T::DeviceKeys,
    T::Addresses,
    T::Gateways,
    T::ConnectionLog,
    T::AdminLog,
    T::EventIds,
    T::Sessions,
    T::NameSkeletons,
    T::RevisionMarks,
];

impl T {
    /// The tree's name in sled (and in errors).
    pub fn name(self) -> &'static str {
        match self {
            T::Meta => "meta",
            T::Users => "users",
            T::Groups => "groups",
            T::Invites => "invites",
            T::Credentials => "credentials",
            T::Devices => "devices",
            T::DeviceNames => "device_names",
            T::TokenNames => "token_names",
            T::DeviceKeys => "device_keys",
            T::Addresses => "addresses",
            T::Gateways => "gateways",
            T::ConnectionLog => "connection_log",
            T::AdminLog => "admin_log",
            T::EventIds => "event_ids",
            T::Sessions => "sessions",
            T::NameSkeletons => "name_skeletons",
            T::RevisionMarks => "revision_marks",
        }
    }
}

/// The open sled database and its trees.
struct Opened {
    db: sled::Db,
    trees: Vec<Tree>,
}

impl Opened {
    fn open(dir: &Path) -> Result<Self> {
        // What a start interrupted by a full disk left half-written.
        porta_gateway::sled_files::remove_unfinished_snapshots(dir)
            .map_err(|error| storage_error(dir, sled::Error::Io(error)))?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB: far more than a town's
            // configuration needs, and the logs are read in one pass.
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|error| match &error {
                // sled takes an exclusive file lock: only then is another
                // process the reason.
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    Error::FailedPrecondition(format!(
                        "the store in {} is in use by another porta-controller (its lock is held)",
                        dir.display()
                    ))
                }
                _ => storage_error(dir, error),
            })?;
        let trees = ALL_TREES
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { db, trees })
    }
}

/// A cheap-to-clone handle on the open store.
///
/// When its disk fills, sled refuses every later write, even once space is
/// freed (it keeps the first I/O error for good). So a write that finds the
/// disk full marks the store, and the next write (at most once a second)
/// closes sled and opens it again from what is on disk — which is exactly
/// what was acknowledged, since the writes that failed were reported as
/// failed. Callers see `RESOURCE_EXHAUSTED` until then, and never a
/// restart.
#[derive(Clone)]
pub struct Store {
    opened: Arc<std::sync::RwLock<Option<Arc<Opened>>>>,
    dir: Arc<std::path::PathBuf>,
    /// Set when the disk filled; the last reopen attempt.
    disk_full: Arc<Mutex<Option<std::time::Instant>>>,
    write_lock: Arc<Mutex<()>>,
    /// Transactions committed (maybe not yet durable), counted in this
    /// process; log appends commit without bumping the revision.
    commits: Arc<AtomicU64>,
    /// Highest commit number known durable; held while a flush runs.
    durable: Arc<tokio::sync::Mutex<u64>>,
    /// Where the witness of what is durable is kept ([`witness`]).
    witness_path: Arc<std::path::PathBuf>,
    /// The witness of a store that holds data was missing at open: the
    /// rollback check is off, said at start and by every log
    /// verification, and the witness is not written again until an
    /// operator says so (`--accept-store-rollback`).
    witness_missing: Arc<AtomicBool>,
    /// What committed writes changed, for the peer journal.
    touched: Arc<Mutex<Touched>>,
    /// The thread flushes run on.
    flusher: flusher::Flusher,
}

/// What a store holds ([`Store::usage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// sled's files.
    pub bytes_on_disk: u64,
    /// Free space on the store's file system (for unprivileged users).
    pub free_bytes: u64,
    /// Admin-log records ever appended (the newest's sequence).
    pub admin_records: u64,
    /// Connection-log records ever appended.
    pub connection_records: u64,
}

/// Errors inside a transaction: conflicts retry, our errors abort.
pub type TxError = ConflictableTransactionError<Error>;

impl From<Error> for TxError {
    fn from(error: Error) -> Self {
        ConflictableTransactionError::Abort(error)
    }
}

/// The view of all trees inside one write transaction.
pub struct Txn<'a> {
    trees: &'a [TransactionalTree],
    /// What this attempt wrote that peers depend on.
    touched: std::cell::RefCell<Touched>,
}

/// What committed writes changed that the gateways' peers depend on,
/// since the last [`Store::take_touched`]: the peer journal recomputes
/// only these devices (and those of these users), or everything.
///
/// Only [`Store::write`]s count (they bump the revision); an
/// [`Store::append`] must not change what peers depend on. Writes are
/// serialised and recorded as they commit, so what is taken covers every
/// write up to `revision`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// The newest write recorded.
    pub revision: u64,
    /// Device ids written.
    pub devices: std::collections::BTreeSet<String>,
    /// User names written.
    pub users: std::collections::BTreeSet<String>,
    /// Something any peer may depend on changed: a group, a gateway, the
    /// settings.
    pub everything: bool,
}

impl Touched {
    fn record(&mut self, t: T, key: &[u8]) {
        let text = || String::from_utf8_lossy(key).into_owned();
        match t {
            T::Devices => {
                self.devices.insert(text());
            }
            T::Users => {
                self.users.insert(text());
            }
            T::Groups | T::Gateways => self.everything = true,
            T::Meta if key == meta::SETTINGS => self.everything = true,
            _ => {}
        }
    }

    fn merge(&mut self, other: Touched) {
        self.revision = self.revision.max(other.revision);
        self.devices.extend(other.devices);
        self.users.extend(other.users);
        self.everything |= other.everything;
    }

    /// Whether it may change what `device_id` of `user` runs.
    pub fn concerns(&self, device_id: &str, user: &str) -> bool {
        self.everything || self.devices.contains(device_id) || self.users.contains(user)
    }

    /// Nothing peers depend on changed.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.devices.is_empty() && self.users.is_empty()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, checking and migrating
    /// its schema, and refusing it if it lost writes its witness saw.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, false)
    }

    /// Like [`Store::open`] for a store an operator restored from an older
    /// backup on purpose: a store behind its witness is accepted (logged)
    /// and the witness starts again from it.
    pub fn open_accepting_rollback(dir: &Path) -> Result<Self> {
        Self::open_with(dir, true)
    }

    fn open_with(dir: &Path, accept_rollback: bool) -> Result<Self> {
        let store = Self {
            opened: Arc::new(std::sync::RwLock::new(Some(Arc::new(Opened::open(dir)?)))),
            dir: Arc::new(dir.to_owned()),
            disk_full: Arc::new(Mutex::new(None)),
            write_lock: Arc::new(Mutex::new(())),
            commits: Arc::new(AtomicU64::new(0)),
            durable: Arc::new(tokio::sync::Mutex::new(0)),
            witness_path: Arc::new(dir.with_extension("witness")),
            witness_missing: Arc::default(),
            touched: Arc::default(),
            flusher: flusher::Flusher::start().map_err(|e| Error::Store(sled::Error::Io(e)))?,
        };
        store.check_schema()?;
        store.check_witness(dir, accept_rollback)?;
        Ok(store)
    }

    /// What committed writes changed since the last call (peer-relevant
    /// trees only); empties the record.
    pub fn take_touched(&self) -> Touched {
        std::mem::take(&mut *self.touched.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What the store holds and the room left on its disk, for monitoring.
    pub fn usage(&self) -> Result<Usage> {
        let witness = self.current_witness()?;
        let free_bytes = nix::sys::statvfs::statvfs(self.dir.as_path())
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0);
        Ok(Usage {
            bytes_on_disk: self.opened().db.size_on_disk()?,
            free_bytes,
            admin_records: witness.admin.sequence,
            connection_records: witness.connections.sequence,
        })
    }

    /// The store's own account of what it holds.
    fn current_witness(&self) -> Result<witness::Witness> {
        let meta = self.tree(T::Meta);
        let mark = |key: &[u8]| -> Result<witness::Mark> {
            match meta.get(key)? {
                Some(bytes) => decode(T::Meta, key, &bytes),
                None => Ok(witness::Mark::default()),
            }
        };
        Ok(witness::Witness {
            revision: self.meta_u64(meta::REVISION)?,
            admin: mark(meta::ADMIN_HEAD)?,
            connections: mark(meta::CONNECTION_HEAD)?,
        })
    }

    /// Whether the witness was missing at open (see `witness_missing`).
    pub fn witness_missing(&self) -> Option<String> {
        self.witness_missing.load(Ordering::Acquire).then(|| {
            format!(
                "the store's witness ({}) is missing, so a store that went back (lost \
                 acknowledged changes, or was replaced by an older copy) would not be noticed. \
                 Put it back from the backup the store came from, or start the controller once \
                 with --accept-store-rollback to rebuild it from the store as it is",
                self.witness_path.display()
            )
        })
    }

    fn check_witness(&self, dir: &Path, accept_rollback: bool) -> Result<()> {
        let found = self.current_witness()?;
        let witnessed = witness::load(&self.witness_path)?;
        if witnessed.is_none() && found != witness::Witness::default() && !accept_rollback {
            self.witness_missing.store(true, Ordering::Release);
            tracing::error!(
                problem = %self.witness_missing().unwrap_or_default(),
                "STARTING WITHOUT THE STORE'S ROLLBACK CHECK"
            );
            return Ok(());
        }
        if witnessed.is_none() && found != witness::Witness::default() {
            tracing::warn!(path = %self.witness_path.display(), "the store's witness was missing; rebuilt from the store as it is, as asked (--accept-store-rollback)");
        }
        if let Some(witnessed) = witnessed
            && let Some(lost) = witnessed.lost_in(&found)
        {
            if !accept_rollback {
                return Err(Error::FailedPrecondition(format!(
                    "the store in {} is behind what this controller acknowledged: {lost}. It was \
                     damaged or replaced by an older copy, and would undo acknowledged changes \
                     (revocations among them). Stop and restore the latest backup (admin guide, \
                     \"Backups and restore\"); if you restored an older backup on purpose, start \
                     once with --accept-store-rollback",
                    dir.display()
                )));
            }
            tracing::warn!(%lost, "starting on a store behind its witness, as asked (--accept-store-rollback)");
        }
        witness::save(&self.witness_path, &found)
    }

    fn check_schema(&self) -> Result<()> {
        let meta = self.tree(T::Meta);
        let found = match meta.get(meta::SCHEMA_VERSION)? {
            None => {
                meta.insert(meta::SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
                return Ok(());
            }
            Some(bytes) => {
                u32::from_be_bytes(bytes.as_ref().try_into().map_err(|_| Error::Corrupt {
                    tree: "meta",
                    key: "schema_version".into(),
                    reason: "not 4 bytes".into(),
                })?)
            }
        };
        if found > SCHEMA_VERSION {
            return Err(Error::FailedPrecondition(format!(
                "this data directory was written by a newer Porta (schema {found}, this build knows \
                 up to {SCHEMA_VERSION}); upgrade porta-controller"
            )));
        }
        for version in found..SCHEMA_VERSION {
            MIGRATIONS[(version - 1) as usize](&self.opened().db)?;
            meta.insert(meta::SCHEMA_VERSION, &(version + 1).to_be_bytes())?;
            tracing::info!(from = version, to = version + 1, "migrated store schema");
        }
        Ok(())
    }

    #[cfg(test)]
    fn meta_u32_schema(&self) -> u32 {
        self.tree(T::Meta)
            .get(meta::SCHEMA_VERSION)
            .ok()
            .flatten()
            .and_then(|b| b.as_ref().try_into().ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// The sled tree for `t`, for reads.
    pub fn tree(&self, t: T) -> Tree {
        self.opened().trees[t as usize].clone()
    }

    fn opened(&self) -> Arc<Opened> {
        self.opened
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .expect("the store is open")
            .clone()
    }

    /// Reads and decodes one record.
    pub fn get<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> Result<Option<V>> {
        self.tree(t)
            .get(key)?
            .map(|bytes| decode(t, key, &bytes))
            .transpose()
    }

    /// Reads and decodes every record of a tree, in key order.
    pub fn list<V: DeserializeOwned>(&self, t: T) -> Result<Vec<V>> {
        self.tree(t)
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(t, &key, &bytes)
            })
            .collect()
    }

    /// The history mark of `revision`: random, written with the revision,
    /// so that the same revision number written twice — before a backup
    /// was restored and after — has two marks. A gateway returns the mark
    /// it was sent; one this store does not hold for that revision comes
    /// from another history. `None` for revisions written before marks.
    pub fn revision_mark(&self, revision: u64) -> Result<Option<u64>> {
        Ok(self
            .tree(T::RevisionMarks)
            .get(revision.to_be_bytes())?
            .map(|b| be_u64(&b)))
    }

    /// Reads a big-endian u64 from `meta`.
    pub fn meta_u64(&self, key: &[u8]) -> Result<u64> {
        Ok(self
            .tree(T::Meta)
            .get(key)?
            .map(|b| be_u64(&b))
            .unwrap_or(0))
    }

    /// Runs `change` as one atomic transaction over every tree, bumps the
    /// revision, and flushes to disk before returning the new revision and
    /// `change`'s result. `change` may run more than once (on conflict), so
    /// it must only touch the store through `Txn`.
    pub async fn write<R>(
        &self,
        change: impl Fn(&Txn<'_>) -> Result<R, TxError>,
    ) -> Result<(u64, R)> {
        self.transact(change, true).await
    }

    /// Like [`Store::write`], for changes that alter no configuration (log
    /// records): the revision stays, so nothing watching it wakes up.
    pub async fn append<R>(&self, change: impl Fn(&Txn<'_>) -> Result<R, TxError>) -> Result<R> {
        Ok(self.transact(change, false).await?.1)
    }

    async fn transact<R>(
        &self,
        change: impl Fn(&Txn<'_>) -> Result<R, TxError>,
        bump: bool,
    ) -> Result<(u64, R)> {
        self.recover()?;
        let outcome = {
            // Writes are serialised; a poisoned lock only means another
            // writer panicked, and sled's transaction kept the store whole.
            let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            let opened = self.opened();
            opened
                .trees
                .as_slice()
                .transaction(|trees| {
                    let txn = Txn {
                        trees,
                        touched: std::cell::RefCell::default(),
                    };
                    let result = change(&txn)?;
                    let mut revision = be_u64_opt(txn.tree(T::Meta).get(meta::REVISION)?);
                    if bump {
                        revision += 1;
                        txn.tree(T::Meta)
                            .insert(meta::REVISION, &revision.to_be_bytes())?;
                        txn.tree(T::RevisionMarks)
                            .insert(&revision.to_be_bytes(), &new_mark().to_be_bytes())?;
                    }
                    Ok((revision, result, txn.touched.take()))
                })
                .map(|(revision, result, mut touched)| {
                    // Still under the write lock, in commit order, and
                    // before the revision is announced.
                    if bump {
                        touched.revision = revision;
                        self.touched
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .merge(touched);
                    }
                    let commit = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
                    (commit, (revision, result))
                })
        };
        let (commit, outcome) = outcome.map_err(|e| match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => self.failed(e),
        })?;
        self.make_durable(commit).await?;
        Ok(outcome)
    }

    /// Returns once every transaction up to commit number `commit` is on
    /// disk.
    async fn make_durable(&self, commit: u64) -> Result<()> {
        let mut durable = self.durable.lock().await;
        if *durable >= commit {
            return Ok(()); // a flush that started after our commit covered it
        }
        let covers = self.commits.load(Ordering::SeqCst);
        self.blocking_flush().await?;
        *durable = covers;
        Ok(())
    }

    /// Flushes everything to disk, whatever was written.
    pub async fn flush(&self) -> Result<()> {
        let mut durable = self.durable.lock().await;
        let covers = self.commits.load(Ordering::SeqCst);
        self.blocking_flush().await?;
        *durable = covers;
        Ok(())
    }

    /// Flushes sled, then records in the witness what was committed before
    /// the flush began (so the witness never claims more than is durable).
    async fn blocking_flush(&self) -> Result<()> {
        let before = self.current_witness()?;
        let (opened, path) = (self.opened(), self.witness_path.clone());
        let keep_witness = !self.witness_missing.load(Ordering::Acquire);
        self.flusher
            .run(move || -> Result<(), sled::Error> {
                opened.db.flush()?;
                // The changes are durable now, whatever happens to the witness:
                // one that could not be written only lags behind (it is a lower
                // bound), and the caller is told the truth.
                if keep_witness && let Err(error) = witness::save(&path, &before) {
                    tracing::warn!(%error, "could not update the store's witness");
                }
                Ok(())
            })
            .await
            .ok_or_else(|| {
                Error::Store(sled::Error::ReportableBug(
                    "the store's flush thread stopped".into(),
                ))
            })?
            .map_err(|e| self.failed(e))
    }
}

impl Txn<'_> {
    fn tree(&self, t: T) -> &TransactionalTree {
        &self.trees[t as usize]
    }

    /// Reads and decodes one record.
    pub fn get<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> Result<Option<V>, TxError> {
        match self.tree(t).get(key)? {
            Some(bytes) => Ok(Some(decode(t, key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// True if `key` exists in `t`.
    pub fn contains(&self, t: T, key: &[u8]) -> Result<bool, TxError> {
        Ok(self.tree(t).get(key)?.is_some())
    }

    /// Reads raw bytes.
    pub fn get_raw(&self, t: T, key: &[u8]) -> Result<Option<sled::IVec>, TxError> {
        Ok(self.tree(t).get(key)?)
    }

    /// Encodes and writes one record.
    pub fn put<V: Serialize>(&self, t: T, key: &[u8], value: &V) -> Result<(), TxError> {
        self.touched.borrow_mut().record(t, key);
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Corrupt {
            tree: t.name(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })?;
        self.tree(t).insert(key, bytes)?;
        Ok(())
    }

    /// Writes raw bytes.
    pub fn put_raw(&self, t: T, key: &[u8], value: &[u8]) -> Result<(), TxError> {
        self.touched.borrow_mut().record(t, key);
        self.tree(t).insert(key, value)?;
        Ok(())
    }

    /// Removes a key.
    pub fn remove(&self, t: T, key: &[u8]) -> Result<(), TxError> {
        self.touched.borrow_mut().record(t, key);
        self.tree(t).remove(key)?;
        Ok(())
    }
}

/// A history mark: random and never 0 (0 means "none" on the wire).
fn new_mark() -> u64 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u64().max(1)
}

fn decode<V: DeserializeOwned>(t: T, key: &[u8], bytes: &[u8]) -> Result<V> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree: t.name(),
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn be_u64_opt(bytes: Option<sled::IVec>) -> u64 {
    bytes.map(|b| be_u64(&b)).unwrap_or(0)
}

#[cfg(test)]
mod tests;
