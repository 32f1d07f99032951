//! Verifying a whole log: every record's hash and every link.

use super::*;

/// The result of verifying a log in the store.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Records read.
    pub records: u64,
    /// First and last sequence numbers.
    pub range: Option<(u64, u64)>,
    /// The newest record's hash.
    pub last_hash: String,
    /// The first break, if any.
    pub problem: Option<audit::Break>,
}

/// Walks a whole log in the store: every record's hash, every link, the
/// start against the retention anchor and the end against the head.
///
/// Admins and gateways keep writing while an auditor verifies, so the walk
/// reads a fixed snapshot: the head is read first and the walk stops there
/// (every record up to the head was committed in the head's transaction),
/// and a walk that a retention run overtook (the anchor moved while it
/// read) is done again. A false tamper alarm is as bad as a missed one.
pub fn verify(store: &Store, log: Log) -> Result<Verification> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let anchor = read_head(store, anchor_key(log))?;
        let head = read_head(store, head_key(log))?;
        let verification = verify_up_to(store, log, &anchor, &head)?;
        let overtaken = verification.problem.is_some()
            && attempt < ATTEMPTS
            && read_head(store, anchor_key(log))? != anchor;
        if !overtaken {
            return Ok(verification);
        }
        attempt += 1;
    }
}

fn head_key(log: Log) -> &'static [u8] {
    match log {
        Log::Connections => meta::CONNECTION_HEAD,
        Log::Admin => meta::ADMIN_HEAD,
    }
}

fn anchor_key(log: Log) -> &'static [u8] {
    match log {
        Log::Connections => meta::CONNECTION_ANCHOR,
        Log::Admin => meta::ADMIN_ANCHOR,
    }
}

fn read_head(store: &Store, key: &[u8]) -> Result<Head> {
    Ok(store.get(T::Meta, key)?.unwrap_or_else(Head::genesis))
}

/// One walk from just after `anchor` to `head`, both read before it began.
fn verify_up_to(store: &Store, log: Log, anchor: &Head, head: &Head) -> Result<Verification> {
    let tree = match log {
        Log::Connections => T::ConnectionLog,
        Log::Admin => T::AdminLog,
    };
    let sequence_of =
        |key: sled::IVec| key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
    let first_expected = anchor.sequence + 1;
    if let Some((key, _)) = store.tree(tree).first()?
        && sequence_of(key.clone()) > first_expected
    {
        // The oldest records are gone but no retention run pruned them.
        return Ok(Verification {
            records: store.tree(tree).len() as u64,
            range: None,
            last_hash: head.hash.clone(),
            problem: Some(audit::Break::Deleted {
                first: first_expected,
                last: sequence_of(key) - 1,
            }),
        });
    }
    // One record at a time, in key order: memory stays flat however long
    // the log is.
    let mut verifier = audit::Verifier::new(audit::Gaps::Forbidden, Some(&anchor.hash));
    let mut outcome = Ok(());
    let written = store
        .tree(tree)
        .range(..=head.sequence.to_be_bytes())
        .values();
    for bytes in written {
        let row = row_of(log, &bytes.map(|b| b.to_vec()).unwrap_or_default());
        if let Err(problem) = verifier.check(&row.cells, &row.previous_hash, &row.hash) {
            // A gap: were the missing records deleted, or stored under
            // other keys?
            let sequences = store
                .tree(tree)
                .iter()
                .keys()
                .filter_map(|k| k.ok())
                .map(sequence_of);
            outcome = Err(audit::moved_or_deleted(problem, sequences));
            break;
        }
    }
    let records = verifier.clone().finish().records;
    let outcome = outcome.map(|()| verifier.finish());
    Ok(match outcome {
        Err(problem) => Verification {
            records,
            range: None,
            last_hash: head.hash.clone(),
            problem: Some(problem),
        },
        Ok(verified) => {
            let problem = match verified.range {
                Some((first, _)) if first != first_expected => Some(audit::Break::Deleted {
                    first: first_expected,
                    last: first - 1,
                }),
                _ if verified.last_hash != head.hash
                    || verified.range.map(|r| r.1).unwrap_or(anchor.sequence) != head.sequence =>
                {
                    Some(audit::Break::Deleted {
                        first: verified.range.map(|r| r.1 + 1).unwrap_or(first_expected),
                        last: head.sequence,
                    })
                }
                _ => None,
            };
            Verification {
                records: verified.records,
                range: verified.range,
                last_hash: verified.last_hash,
                problem,
            }
        }
    })
}

/// A stored record as a verifier row; a record that does not decode
/// becomes a row whose hash cannot match.
fn row_of(log: Log, bytes: &[u8]) -> Row {
    let decoded = match log {
        Log::Connections => {
            stored::decode::<ConnectionEntry>(bytes).map(|e| (e.cells(), e.previous_hash, e.hash))
        }
        Log::Admin => {
            stored::decode::<AdminEntry>(bytes).map(|e| (e.cells(), e.previous_hash, e.hash))
        }
    };
    match decoded {
        Ok((cells, previous_hash, hash)) => Row {
            cells,
            previous_hash,
            hash,
        },
        Err(_) => Row {
            cells: vec!["0".into()],
            previous_hash: String::new(),
            hash: "undecodable".into(),
        },
    }
}
