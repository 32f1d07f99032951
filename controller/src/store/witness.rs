//! The store's witness: what the controller last acknowledged as durable,
//! kept outside sled, so that a store that silently lost acknowledged
//! writes is noticed.
//!
//! sled recovers from a damaged log (a flipped byte, a truncated file) by
//! treating everything after the damage as never written: the store opens,
//! but a revocation, a user or admin records may be gone, and the hash
//! chains still verify because their heads went back too. So with every
//! group commit the store also writes, after sled's flush, a small file
//! next to it (`store.witness`): the configuration revision and both logs'
//! head sequence and hash as they were before that flush. On open, a store
//! behind its witness is refused with what was lost; an operator who
//! restores an older backup on purpose says so
//! (`serve --accept-store-rollback`), and the witness starts again from
//! the store.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// A log's head as witnessed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Sequence of its newest record.
    pub sequence: u64,
    /// That record's hash.
    pub hash: String,
}

/// What was durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The configuration revision.
    pub revision: u64,
    /// The admin log's head.
    pub admin: Mark,
    /// The connection log's head.
    pub connections: Mark,
}

impl Witness {
    /// What `found` (the store as opened) lost against this witness, in
    /// words; `None` if it holds everything witnessed.
    pub fn lost_in(&self, found: &Witness) -> Option<String> {
        let mut lost = Vec::new();
        if found.revision < self.revision {
            lost.push(format!(
                "{} configuration change(s) (revision {} of {})",
                self.revision - found.revision,
                found.revision,
                self.revision
            ));
        }
        for (what, witnessed, have) in [
            ("admin log", &self.admin, &found.admin),
            ("connection log", &self.connections, &found.connections),
        ] {
            if have.sequence < witnessed.sequence {
                lost.push(format!(
                    "the {what} ends at record {} but record {} was written",
                    have.sequence, witnessed.sequence
                ));
            } else if have.sequence == witnessed.sequence && have.hash != witnessed.hash {
                lost.push(format!(
                    "the {what}'s record {} is not the one written",
                    have.sequence
                ));
            }
        }
        (!lost.is_empty()).then(|| lost.join("; "))
    }
}

/// Reads the witness at `path` (`None` if there is none yet).
pub fn load(path: &Path) -> crate::error::Result<Option<Witness>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| crate::error::Error::Corrupt {
                    tree: "store.witness",
                    key: path.display().to_string(),
                    reason: e.to_string(),
                })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(crate::error::Error::Store(sled::Error::Io(error))),
    }
}

/// Writes `witness` to `path` durably (replaced atomically).
pub fn save(path: &Path, witness: &Witness) -> crate::error::Result<()> {
    let bytes = serde_json::to_vec(witness).expect("a witness serialises");
    porta_proto::files::replace_private(path, &bytes)
        .map_err(|e| crate::error::Error::Store(sled::Error::Io(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(revision: u64, admin: u64, connections: u64) -> Witness {
        Witness {
            revision,
            admin: Mark {
                sequence: admin,
                hash: format!("a{admin}"),
            },
            connections: Mark {
                sequence: connections,
                hash: format!("c{connections}"),
            },
        }
    }

    #[test]
    fn a_store_behind_its_witness_is_described() {
        let written = witness(12, 9, 40);
        assert_eq!(written.lost_in(&written), None);
        assert_eq!(written.lost_in(&witness(13, 10, 41)), None, "ahead is fine");
        let lost = written.lost_in(&witness(10, 7, 40)).expect("behind");
        assert!(lost.contains("2 configuration change(s)"), "{lost}");
        assert!(
            lost.contains("admin log ends at record 7 but record 9"),
            "{lost}"
        );
        let mut replaced = written.clone();
        replaced.connections.hash = "other".into();
        assert!(
            written
                .lost_in(&replaced)
                .expect("differs")
                .contains("not the one written")
        );
    }
}
