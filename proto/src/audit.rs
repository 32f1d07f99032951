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
use std::borrow::Cow;

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

/// A connection record's cells, in [`CONNECTION_COLUMNS`] order (its text
/// borrowed, its numbers and times written out).
pub fn connection_cells(r: &crate::pb::ConnectionRecord) -> Vec<Cow<'_, str>> {
    vec![
        r.sequence.to_string().into(),
        r.event_id.as_str().into(),
        r.kind.as_str().into(),
        iso(r.at).into(),
        r.user.as_str().into(),
        r.device.as_str().into(),
        r.tunnel_address.as_str().into(),
        r.public_address.as_str().into(),
        r.previous_public_address.as_str().into(),
        r.gateway.as_str().into(),
        iso(r.session_start).into(),
        r.rx_bytes.to_string().into(),
        r.tx_bytes.to_string().into(),
        r.reason.as_str().into(),
    ]
}

/// An admin record's cells, in [`ADMIN_COLUMNS`] order.
pub fn admin_cells(r: &crate::pb::AdminActionRecord) -> Vec<Cow<'_, str>> {
    vec![
        r.sequence.to_string().into(),
        iso(r.at).into(),
        r.actor.as_str().into(),
        r.actor_address.as_str().into(),
        r.action.as_str().into(),
        r.target.as_str().into(),
        r.before_json.as_str().into(),
        r.after_json.as_str().into(),
    ]
}

/// The hash of a record with `cells` whose predecessor's hash is
/// `previous_hash`.
pub fn record_hash<S: AsRef<str>>(previous_hash: &str, cells: &[S]) -> String {
    hex::encode(record_digest(previous_hash, cells))
}

/// [`record_hash`] before it is written in hexadecimal.
pub fn record_digest<S: AsRef<str>>(previous_hash: &str, cells: &[S]) -> [u8; 32] {
    digest_with(&mut Vec::new(), previous_hash, cells)
}

/// [`record_digest`], the hashed bytes laid out in `scratch` (a verifier
/// reuses one buffer for every record).
fn digest_with<S: AsRef<str>>(scratch: &mut Vec<u8>, previous_hash: &str, cells: &[S]) -> [u8; 32] {
    scratch.clear();
    scratch.extend_from_slice(previous_hash.as_bytes());
    scratch.push(b'\n');
    canonical_into(scratch, cells);
    Sha256::digest(&scratch[..]).into()
}

/// A digest in lowercase hexadecimal, as hashes are written.
fn hex_of(digest: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 64];
    for (pair, byte) in text.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    text
}

/// Appends the cells as a JSON array of strings to `out` (escaping
/// written out here so that the exact bytes hashed are specified by this
/// file alone).
fn canonical_into<S: AsRef<str>>(out: &mut Vec<u8>, cells: &[S]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let needs_escape = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    out.push(b'[');
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        let bytes = cell.as_ref().as_bytes();
        // Not `any`: without an early exit the scan is vectorised.
        if !bytes
            .iter()
            .fold(false, |found, &b| found | needs_escape(b))
        {
            out.extend_from_slice(bytes);
        } else {
            for &b in bytes {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b if b < 0x20 => out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xf)],
                    ]),
                    b => out.push(b),
                }
            }
        }
        out.push(b'"');
    }
    out.push(b']');
}

/// One record as read back: its cells, `previous_hash` and `hash`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// Checks records one at a time, in file or store order, holding only the
/// last one's sequence number and hash: memory stays the same however
/// long the log. [`Verifier::check`] names the first record that breaks
/// the chain.
///
/// A gap in the sequence numbers is reported as [`Break::Deleted`]; whether
/// the missing records were deleted or moved further down is for the
/// caller to settle with [`moved_or_deleted`], which reads the sequence
/// numbers after the gap. A record that comes after a larger one is
/// [`Break::Reordered`] where it stands.
#[derive(Clone, Debug)]
pub struct Verifier {
    gaps: Gaps,
    anchor: Option<String>,
    records: u64,
    first: Option<u64>,
    /// The last record's sequence number and hash (as hexadecimal text).
    last: Option<(u64, [u8; 64])>,
    scratch: Vec<u8>,
}

impl Verifier {
    /// A verifier; `anchor`, if given, is the `previous_hash` the first
    /// record must carry.
    pub fn new(gaps: Gaps, anchor: Option<&str>) -> Self {
        Verifier {
            gaps,
            anchor: anchor.map(str::to_owned),
            records: 0,
            first: None,
            last: None,
            scratch: Vec::new(),
        }
    }

    /// Checks the next record: its `cells` (the first is the sequence
    /// number), the `previous_hash` it claims and its `hash`.
    pub fn check<S: AsRef<str>>(
        &mut self,
        cells: &[S],
        previous_hash: &str,
        hash: &str,
    ) -> Result<(), Break> {
        self.records += 1;
        let sequence = cells
            .first()
            .and_then(|s| s.as_ref().parse::<u64>().ok())
            .ok_or_else(|| Break::Malformed {
                row: self.records,
                detail: "the sequence number is not a number".into(),
            })?;
        let digest = hex_of(&digest_with(&mut self.scratch, previous_hash, cells));
        if hash.as_bytes() != digest {
            return Err(Break::Edited { sequence });
        }
        match &self.last {
            None => {
                self.first = Some(sequence);
                if let Some(anchor) = &self.anchor
                    && previous_hash != anchor
                {
                    return Err(Break::Anchor {
                        detail: format!(
                            "record {sequence} should follow hash {anchor}, not {previous_hash}"
                        ),
                    });
                }
            }
            Some((last, last_digest)) => {
                let last = *last;
                if sequence == last {
                    return Err(Break::Inserted {
                        sequence,
                        detail: format!("sequence number {sequence} appears more than once"),
                    });
                }
                if sequence < last {
                    return Err(Break::Reordered {
                        sequence,
                        after: last,
                    });
                }
                if sequence > last + 1 {
                    if self.gaps == Gaps::Forbidden {
                        return Err(Break::Deleted {
                            first: last + 1,
                            last: sequence - 1,
                        });
                    }
                } else if previous_hash.as_bytes() != last_digest {
                    return Err(Break::Inserted {
                        sequence,
                        detail: format!("it does not follow record {last} (the link is broken)"),
                    });
                }
            }
        }
        self.last = Some((sequence, digest));
        Ok(())
    }

    /// What the records checked so far cover.
    pub fn finish(self) -> Verified {
        Verified {
            records: self.records,
            range: self.first.zip(self.last.map(|(s, _)| s)),
            last_hash: self
                .last
                .map(|(_, digest)| String::from_utf8_lossy(&digest).into_owned())
                .unwrap_or_else(|| GENESIS.into()),
        }
    }
}

/// Checks `rows` with a [`Verifier`]; a gap is settled against the rows'
/// own sequence numbers (they are in memory already).
pub fn verify(
    rows: impl IntoIterator<Item = Row>,
    gaps: Gaps,
    anchor: Option<&str>,
) -> Result<Verified, Break> {
    let rows: Vec<Row> = rows.into_iter().collect();
    let mut verifier = Verifier::new(gaps, anchor);
    for row in &rows {
        verifier
            .check(&row.cells, &row.previous_hash, &row.hash)
            .map_err(|problem| moved_or_deleted(problem, rows.iter().filter_map(Row::sequence)))?;
    }
    Ok(verifier.finish())
}

/// Settles a gap ([`Break::Deleted`]) given every sequence number of the
/// file or log: if one of the missing records is there after all, it was
/// moved, and is named as out of order; otherwise the records were
/// deleted. Any other break is returned as it is.
pub fn moved_or_deleted(problem: Break, sequences: impl IntoIterator<Item = u64>) -> Break {
    let Break::Deleted { first, last } = problem else {
        return problem;
    };
    match sequences
        .into_iter()
        .filter(|s| (first..=last).contains(s))
        .min()
    {
        Some(moved) => Break::Reordered {
            sequence: moved,
            after: last + 1,
        },
        None => problem,
    }
}

/// Where a spreadsheet may start a cell inside ours: a CSV is opened with
/// whichever separator the person (or the locale: `;` in Catalan, Spanish
/// and Italian) picks, and a line split at a separator our quoting did not
/// expect is no longer quoted, so its line breaks end rows too.
fn splits_cells(c: char) -> bool {
    matches!(c, ',' | ';' | '\t' | '\r' | '\n')
}

/// What a spreadsheet reads as the start of a formula (and `'`, the mark
/// itself, so that marking stays reversible).
fn starts_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\'' | '\t' | '\r')
}

/// The byte positions in `cell` where a spreadsheet could begin a cell:
/// the start, and after every character any separator choice splits at,
/// each moved past spaces and quotes (which a spreadsheet skips or takes
/// as a text delimiter before it looks for a formula).
fn cell_starts(cell: &str) -> impl Iterator<Item = usize> + '_ {
    let after_splits = cell
        .char_indices()
        .filter(|&(_, c)| splits_cells(c))
        .map(|(at, c)| at + c.len_utf8());
    std::iter::once(0)
        .chain(after_splits)
        .map(move |at| at + cell[at..].len() - cell[at..].trim_start_matches([' ', '"']).len())
}

/// Makes a CSV cell safe to open in a spreadsheet with any separator
/// (comma, semicolon, tab): wherever a spreadsheet could begin a cell
/// ([`cell_starts`]) and the text there starts with `=`, `+`, `-`, `@`, a
/// tab, a carriage return or `'`, a `'` goes in front (the spreadsheet then
/// shows text, never runs a formula). So `pc;=1+1` becomes `pc;'=1+1`.
/// Reversible with [`unneutralise`], which verification uses.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let mut marked: Option<String> = None;
    let mut copied = 0;
    for at in cell_starts(cell) {
        if cell[at..].starts_with(starts_formula) {
            let out = marked.get_or_insert_with(|| String::with_capacity(cell.len() + 4));
            out.push_str(&cell[copied..at]);
            out.push('\'');
            copied = at;
        }
    }
    match marked {
        Some(mut out) => {
            out.push_str(&cell[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(cell),
    }
}

/// Undoes [`neutralise`] (and the `'` export puts before text a
/// spreadsheet would read as a number): a `'` where a cell could begin is
/// always one that was added, because a `'` there is itself marked.
pub fn unneutralise(cell: &str) -> Cow<'_, str> {
    // Most cells hold no mark: no allocation, one scan.
    if !cell.contains('\'') {
        return Cow::Borrowed(cell);
    }
    let mut plain: Option<String> = None;
    let mut copied = 0;
    for at in cell_starts(cell) {
        // Starts are found in the marked text; a removed mark does not
        // move the ones after it, which are searched in `cell` too.
        if at >= copied && cell[at..].starts_with('\'') {
            let out = plain.get_or_insert_with(|| String::with_capacity(cell.len()));
            out.push_str(&cell[copied..at]);
            copied = at + 1;
        }
    }
    match plain {
        Some(mut out) => {
            out.push_str(&cell[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(cell),
    }
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
        verify(rows, Gaps::Forbidden, None)
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
                sequence: 2,
                after: 3
            })
        );

        let mut moved_down = chain(5);
        let second = moved_down.remove(1);
        moved_down.push(second);
        assert_eq!(
            check(moved_down),
            Err(Break::Reordered {
                sequence: 2,
                after: 3
            })
        );

        let mut repeated = chain(3);
        repeated.push(repeated[1].clone());
        assert_eq!(
            check(repeated),
            Err(Break::Reordered {
                sequence: 2,
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
        assert!(verify(rows.clone(), Gaps::Allowed, None).is_ok());
        let mut swapped = rows;
        swapped.swap(0, 1);
        assert!(verify(swapped, Gaps::Allowed, None).is_err());
    }

    #[test]
    fn neutralising_is_reversible_and_covers_formula_starts() {
        for cell in [
            "=SUM(A1)", "+1", "-2", "@x", "'quoted", "plain", "", "Núria", "a'b", "x;'",
        ] {
            let safe = neutralise(cell);
            assert!(!safe.starts_with(['=', '+', '-', '@']), "{safe}");
            assert_eq!(unneutralise(&safe), cell);
        }
    }

    #[test]
    fn no_separator_a_spreadsheet_offers_uncovers_a_formula() {
        for cell in [
            "pc;=1+1;",
            "Windows 11;=2*21;",
            r#"{"hostname":"pc;=1+1;","os":"a,+2\t-3"}"#,
            "a,\"=HYPERLINK(\"\"x\"\")\"",
            "one\n@two\r\n-three",
            "x; ;'';=;",
            "tab\t=1",
        ] {
            let safe = neutralise(cell);
            for separator in [',', ';', '\t', '\n', '\r'] {
                for piece in safe.split(separator) {
                    let piece = piece.trim_start_matches([' ', '"']);
                    assert!(
                        !piece.starts_with(['=', '+', '-', '@']),
                        "{cell:?} → {safe:?} splits at {separator:?} into {piece:?}"
                    );
                }
            }
            assert_eq!(unneutralise(&safe), cell, "{safe:?}");
        }
        assert_eq!(neutralise("pc;=1+1;"), "pc;'=1+1;");
        assert!(matches!(neutralise("Windows 11 Pro"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_canonical_form_is_json() {
        let cells = ["a\"b\\c\nd", "\u{1}\t\r", "Núria"];
        let canonical = r#"["a\"b\\c\nd","\u0001\t\r","Núria"]"#;
        let expected: [u8; 32] = Sha256::digest(format!("{GENESIS}\n{canonical}")).into();
        assert_eq!(record_digest(GENESIS, &cells), expected);
        assert_eq!(record_hash(GENESIS, &cells), hex::encode(expected));
        // It is what serde_json writes for the same strings.
        assert_eq!(serde_json::to_string(&cells).unwrap(), canonical);
    }
}
