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
pub fn verify(store: &Store, log: Log) -> Result<Verification> {
    let (tree, head_key, anchor_key) = match log {
        Log::Connections => (
            T::ConnectionLog,
            meta::CONNECTION_HEAD,
            meta::CONNECTION_ANCHOR,
        ),
        Log::Admin => (T::AdminLog, meta::ADMIN_HEAD, meta::ADMIN_ANCHOR),
    };
    let head: Head = store.get(T::Meta, head_key)?.unwrap_or_else(Head::genesis);
    let anchor: Head = store
        .get(T::Meta, anchor_key)?
        .unwrap_or_else(Head::genesis);
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
            last_hash: head.hash,
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
    for bytes in store.tree(tree).iter().values() {
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
            last_hash: head.hash,
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
