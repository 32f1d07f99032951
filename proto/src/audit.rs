//! The audit logs' hash chain: the columns of each log, how a record's hash
//! is computed, and a verifier that names the first record that breaks the
//! chain. Shared by the controller (which writes and verifies its logs)
//! and `portactl` (which verifies exported files offline), so the two can
//! never disagree.
//!
//! A record is a row of text cells, exactly as exported (times as ISO 8601
//! UTC, numbers in decimal). Its hash is
//! `hex(SHA-256(previous_hash + "\n" + JSON array of the cells))`, and its
//! `previous_hash` is the hash of the record before it ([`GENESIS`] for the
//! first). Editing a record breaks its own hash; deleting, inserting or
//! reordering records breaks the sequence numbers or the links. Like every
//! hash chain, it proves a file consistent, not authentic: compare its last
//! hash with the controller's (`portactl logs verify`) to know it is the
//! controller's log.

use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// The `previous_hash` of a log's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Connection events from gateways.
    Connections,
    /// Administrative actions.
    Admin,
}

/// Columns of the connection log, in order (then `previous_hash`, `hash`).
pub const CONNECTION_COLUMNS: &[&str] = &[
    "sequence",
    "event_id",
    "kind",
    "at",
    "user",
    "device",
    "tunnel_address",
    "public_address",
    "previous_public_address",
    "gateway",
    "session_start",
    "rx_bytes",
    "tx_bytes",
    "reason",
];

/// Columns of the admin log, in order (then `previous_hash`, `hash`).
pub const ADMIN_COLUMNS: &[&str] = &[
    "sequence",
    "at",
    "actor",
    "actor_address",
    "action",
    "target",
    "before",
    "after",
];

impl Log {
    /// The record columns (without the two hash columns).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Log::Connections => CONNECTION_COLUMNS,
            Log::Admin => ADMIN_COLUMNS,
        }
    }

    /// The full header of an export: the record columns, `previous_hash`,
    /// `hash`.
    pub fn header(self) -> Vec<&'static str> {
        let mut header = self.columns().to_vec();
        header.extend(["previous_hash", "hash"]);
        header
    }

    /// Which log an export's header belongs to.
    pub fn from_header(header: &[String]) -> Option<Log> {
        [Log::Connections, Log::Admin]
            .into_iter()
            .find(|log| log.header().iter().eq(header.iter()))
    }
}

/// Unix seconds as exported: ISO 8601 UTC to the second, or empty for 0.
pub fn iso(unix: u64) -> String {
    if unix == 0 {
        return String::new();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// A connection record's cells, in [`CONNECTION_COLUMNS`] order.
pub fn connection_cells(r: &crate::pb::ConnectionRecord) -> Vec<String> {
    vec![
        r.sequence.to_string(),
        r.event_id.clone(),
        r.kind.clone(),
        iso(r.at),
        r.user.clone(),
        r.device.clone(),
        r.tunnel_address.clone(),
        r.public_address.clone(),
        r.previous_public_address.clone(),
        r.gateway.clone(),
        iso(r.session_start),
        r.rx_bytes.to_string(),
        r.tx_bytes.to_string(),
        r.reason.clone(),
    ]
}

/// An admin record's cells, in [`ADMIN_COLUMNS`] order.
pub fn admin_cells(r: &crate::pb::AdminActionRecord) -> Vec<String> {
    vec![
        r.sequence.to_string(),
        iso(r.at),
        r.actor.clone(),
        r.actor_address.clone(),
        r.action.clone(),
        r.target.clone(),
        r.before_json.clone(),
        r.after_json.clone(),
    ]
}

/// The hash of a record with `cells` whose predecessor's hash is
/// `previous_hash`.
pub fn record_hash(previous_hash: &str, cells: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(cells).as_bytes());
    hex::encode(hasher.finalize())
}

/// The cells as a JSON array of strings (escaping written out here so that
/// the exact bytes hashed are specified by this file alone).
fn canonical(cells: &[String]) -> String {
    let mut out = String::from("[");
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in cell.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// One record as read back: its cells, `previous_hash` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The record cells, in [`Log::columns`] order; the first is the
    /// sequence number.
    pub cells: Vec<String>,
    /// The predecessor's hash, as the record claims.
    pub previous_hash: String,
    /// The record's hash, as stored.
    pub hash: String,
}

impl Row {
    /// The sequence number (the first cell), if it is one.
    pub fn sequence(&self) -> Option<u64> {
        self.cells.first().and_then(|s| s.parse().ok())
    }
}

/// What is wrong with a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// A record's content does not match its hash.
    #[error("record {sequence} was edited: its content does not match its hash")]
    Edited {
        /// The record.
        sequence: u64,
    },
    /// Records are missing.
    #[error("record {first} was deleted{}", if last > first { format!(" (records {first} to {last} are missing)") } else { String::new() })]
    Deleted {
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// A sequence number appears twice, or a record does not follow its
    /// predecessor although the numbers say it should.
    #[error("a record was inserted at {sequence}: {detail}")]
    Inserted {
        /// Where.
        sequence: u64,
        /// How it shows.
        detail: String,
    },
    /// Records are out of order.
    #[error("record {sequence} is out of order (it comes after record {after})")]
    Reordered {
        /// The record out of place.
        sequence: u64,
        /// The record it follows in the file.
        after: u64,
    },
    /// A row that is not a record of this log.
    #[error("row {row} is not a valid record: {detail}")]
    Malformed {
        /// 1-based position among the records.
        row: u64,
        /// What is wrong.
        detail: String,
    },
    /// The log's first record does not start from its anchor.
    #[error("the log does not start where it should: {detail}")]
    Anchor {
        /// What is wrong.
        detail: String,
    },
}

impl Break {
    /// The sequence number to name as the first bad record.
    pub fn sequence(&self) -> u64 {
        match self {
            Break::Edited { sequence }
            | Break::Inserted { sequence, .. }
            | Break::Reordered { sequence, .. } => *sequence,
            Break::Deleted { first, .. } => *first,
            Break::Malformed { row, .. } => *row,
            Break::Anchor { .. } => 0,
        }
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers, if any.
    pub range: Option<(u64, u64)>,
    /// The last record's hash (compare with the controller's).
    pub last_hash: String,
}

/// How strict to be about gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gaps {
    /// A whole log or an unfiltered export: every gap is a deletion.
    Forbidden,
    /// An export filtered by user or device: records between are absent
    /// by design; hashes and order are still checked, and links wherever
    /// two records are consecutive.
    Allowed,
}

/// Checks `rows` (in file or store order) and names the first record that
/// breaks the chain. `sequences` must list every row's sequence number
/// (used to tell a reordered record from a deleted one); `anchor`, if
/// given, is the `previous_hash` the first record must carry.
pub fn verify(
    rows: impl IntoIterator<Item = Row>,
    sequences: &HashSet<u64>,
    gaps: Gaps,
    anchor: Option<&str>,
) -> Result<Verified, Break> {
    let mut previous: Option<(u64, String)> = None;
    let mut seen = HashSet::new();
    let mut records = 0u64;
    let mut first = None;
    for row in rows {
        records += 1;
        let sequence = row.sequence().ok_or_else(|| Break::Malformed {
            row: records,
            detail: "the sequence number is not a number".into(),
        })?;
        if record_hash(&row.previous_hash, &row.cells) != row.hash {
            return Err(Break::Edited { sequence });
        }
        if !seen.insert(sequence) {
            return Err(Break::Inserted {
                sequence,
                detail: format!("sequence number {sequence} appears more than once"),
            });
        }
        match &previous {
            None => {
                first = Some(sequence);
                if let Some(&smallest) = sequences.iter().filter(|s| **s < sequence).min() {
                    return Err(Break::Reordered {
                        sequence: smallest,
                        after: sequence,
                    });
                }
                if let Some(anchor) = anchor
                    && row.previous_hash != anchor
                {
                    return Err(Break::Anchor {
                        detail: format!(
                            "record {sequence} should follow hash {anchor}, not {}",
                            row.previous_hash
                        ),
                    });
                }
            }
            Some((last, last_hash)) => {
                if sequence < *last {
                    return Err(Break::Reordered {
                        sequence,
                        after: *last,
                    });
                }
                if sequence > last + 1 {
                    if let Some(missing) = (last + 1..sequence).find(|s| sequences.contains(s)) {
                        return Err(Break::Reordered {
                            sequence: missing,
                            after: sequence,
                        });
                    }
                    if gaps == Gaps::Forbidden {
                        return Err(Break::Deleted {
                            first: last + 1,
                            last: sequence - 1,
                        });
                    }
                } else if row.previous_hash != *last_hash {
                    return Err(Break::Inserted {
                        sequence,
                        detail: format!("it does not follow record {last} (the link is broken)"),
                    });
                }
            }
        }
        previous = Some((sequence, row.hash));
    }
    Ok(Verified {
        records,
        range: first.zip(previous.as_ref().map(|(s, _)| *s)),
        last_hash: previous.map(|(_, h)| h).unwrap_or_else(|| GENESIS.into()),
    })
}

/// Makes a CSV cell safe to open in a spreadsheet: a cell starting with
/// `=`, `+`, `-`, `@`, a tab, a carriage return or `'` gets a leading `'`
/// (so the spreadsheet shows text, never runs a formula). Reversible with
/// [`unneutralise`], which verification uses.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Undoes [`neutralise`].
pub fn unneutralise(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Row> {
        let mut previous = GENESIS.to_owned();
        (1..=n)
            .map(|s| {
                let cells = vec![
                    s.to_string(),
                    format!("event {s}"),
                    "a \"quoted\", comma".into(),
                ];
                let hash = record_hash(&previous, &cells);
                let row = Row {
                    cells,
                    previous_hash: previous.clone(),
                    hash: hash.clone(),
                };
                previous = hash;
                row
            })
            .collect()
    }

    fn check(rows: Vec<Row>) -> Result<Verified, Break> {
        let sequences = rows.iter().filter_map(Row::sequence).collect();
        verify(rows, &sequences, Gaps::Forbidden, None)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let verified = check(chain(5)).unwrap();
        assert_eq!(verified.records, 5);
        assert_eq!(verified.range, Some((1, 5)));
        assert_eq!(verified.last_hash, chain(5)[4].hash);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let mut edited = chain(5);
        edited[2].cells[1] = "changed".into();
        assert_eq!(check(edited), Err(Break::Edited { sequence: 3 }));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(check(deleted), Err(Break::Deleted { first: 2, last: 2 }));

        let mut first_moved = chain(3);
        first_moved.swap(0, 2);
        assert_eq!(
            check(first_moved),
            Err(Break::Reordered {
                sequence: 1,
                after: 3
            })
        );

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        assert_eq!(
            check(reordered),
            Err(Break::Reordered {
                sequence: 2,
                after: 3
            })
        );

        let mut inserted = chain(5);
        let forged_cells = vec!["3".to_string(), "forged".into(), String::new()];
        let forged = Row {
            hash: record_hash(&inserted[1].hash, &forged_cells),
            previous_hash: inserted[1].hash.clone(),
            cells: forged_cells,
        };
        inserted.insert(2, forged);
        assert!(matches!(
            check(inserted),
            Err(Break::Inserted { sequence: 3, .. })
        ));

        // A record re-hashed after editing breaks the next link.
        let mut rehashed = chain(5);
        rehashed[2].cells[1] = "changed".into();
        rehashed[2].hash = record_hash(&rehashed[2].previous_hash, &rehashed[2].cells);
        assert!(matches!(
            check(rehashed),
            Err(Break::Inserted { sequence: 4, .. })
        ));
    }

    #[test]
    fn filtered_exports_allow_gaps_but_not_disorder() {
        let rows: Vec<Row> = chain(6)
            .into_iter()
            .filter(|r| r.sequence() != Some(3))
            .collect();
        let sequences = rows.iter().filter_map(Row::sequence).collect();
        assert!(verify(rows.clone(), &sequences, Gaps::Allowed, None).is_ok());
        let mut swapped = rows;
        swapped.swap(0, 1);
        assert!(verify(swapped, &sequences, Gaps::Allowed, None).is_err());
    }

    #[test]
    fn neutralising_is_reversible_and_covers_formula_starts() {
        for cell in [
            "=SUM(A1)", "+1", "-2", "@x", "'quoted", "plain", "", "Núria",
        ] {
            let safe = neutralise(cell);
            assert!(!safe.starts_with(['=', '+', '-', '@']), "{safe}");
            assert_eq!(unneutralise(&safe), cell);
        }
    }

    #[test]
    fn the_canonical_form_is_json() {
        let cells = vec!["a\"b\\c\nd".to_string(), "\u{1}".into(), "Núria".into()];
        assert_eq!(canonical(&cells), r#"["a\"b\\c\nd","\u0001","Núria"]"#);
    }
}
