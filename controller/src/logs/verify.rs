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
    let mut sequences = std::collections::HashSet::new();
    for key in store.tree(tree).iter().keys() {
        let key = key?;
        sequences.insert(key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0));
    }
    let records = sequences.len() as u64;
    let first_expected = anchor.sequence + 1;
    if let Some(&first) = sequences.iter().min()
        && first > first_expected
    {
        // The oldest records are gone but no retention run pruned them.
        return Ok(Verification {
            records,
            range: None,
            last_hash: head.hash,
            problem: Some(audit::Break::Deleted {
                first: first_expected,
                last: first - 1,
            }),
        });
    }
    let rows = store.tree(tree).iter().values().map(|bytes| -> Row {
        let bytes = bytes.map(|b| b.to_vec()).unwrap_or_default();
        row_of(log, &bytes)
    });
    let outcome = audit::verify(rows, &sequences, audit::Gaps::Forbidden, Some(&anchor.hash));
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
        Log::Connections => serde_json::from_slice::<ConnectionEntry>(bytes)
            .map(|e| (e.cells(), e.previous_hash, e.hash)),
        Log::Admin => serde_json::from_slice::<AdminEntry>(bytes)
            .map(|e| (e.cells(), e.previous_hash, e.hash)),
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
