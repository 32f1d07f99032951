//! Whether a gateway's peer set belongs to this store's history (sans-IO).
//!
//! A revision number alone cannot say so: a store restored from a backup
//! writes revisions 17, 18, … again, with other changes than the ones the
//! gateway applied before the restore. So every revision also has a
//! random *mark*, written with it ([`crate::store::Store::revision_mark`]),
//! sent to the gateway with the revision and returned by it. A claim is
//! this history's when the store holds that mark for that revision.

/// What a gateway's claim ("I applied `revision`, marked `history`") is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It holds nothing yet.
    New,
    /// This store wrote that revision with that mark.
    Same,
    /// The gateway sent no mark (it is older than marks) and the revision
    /// is not ahead of the store: taken on trust, as before marks existed
    /// (only a claim ahead of the store can be caught without them).
    Unmarked,
    /// Another history: a revision this store never reached, or reached
    /// with other changes.
    Diverged,
}

/// Judges a claim against the store at `current`, which holds `mark` for
/// the claimed revision (`None` if it holds none).
pub fn judge(revision: u64, history: u64, current: u64, mark: Option<u64>) -> Claim {
    if revision == 0 {
        Claim::New
    } else if revision > current {
        Claim::Diverged
    } else if history != 0 && mark == Some(history) {
        Claim::Same
    } else if history == 0 {
        Claim::Unmarked
    } else {
        Claim::Diverged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_this_history_only_with_this_stores_mark() {
        assert_eq!(judge(0, 0, 16, None), Claim::New);
        assert_eq!(judge(12, 77, 16, Some(77)), Claim::Same);
        // Ahead of a restored store, marked or not.
        assert_eq!(judge(34, 77, 16, None), Claim::Diverged);
        assert_eq!(judge(34, 0, 16, None), Claim::Diverged);
        // The store passed it again, with other changes.
        assert_eq!(judge(34, 77, 40, Some(78)), Claim::Diverged);
        // A mark the store lacks for that revision.
        assert_eq!(judge(12, 77, 16, None), Claim::Diverged);
        // A gateway older than marks: trusted unless it is ahead.
        assert_eq!(judge(12, 0, 16, None), Claim::Unmarked);
        assert_eq!(judge(12, 0, 16, Some(78)), Claim::Unmarked);
    }
}
