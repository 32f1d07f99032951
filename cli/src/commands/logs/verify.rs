//! `logs verify`: the controller's chain (and that it did not go back
//! since this computer last looked), or an exported file offline —
//! CSV, JSON lines or xlsx, whole or filtered.

use super::super::Ctx;
use super::UTF8_BOM;
use crate::args::LogKind;
use crate::error::VerificationFailed;
use crate::profile::{ProfileFile, VerifiedHead};
use anyhow::{Context, Result, bail};
use porta_proto::audit::{self, Gaps, Log, Row};
use porta_proto::pb;
use porta_proto::pb::audit_client::AuditClient;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

pub(super) async fn verify_controller(
    ctx: &Ctx,
    kind: Option<LogKind>,
    accept_rollback: bool,
) -> Result<()> {
    let mut audit = AuditClient::new(ctx.channel().await?);
    let kinds = match kind {
        Some(kind) => vec![kind],
        None => vec![LogKind::Connections, LogKind::Admin],
    };
    let mut results = Vec::new();
    let mut broken = Vec::new();
    for kind in kinds {
        let wire = match kind {
            LogKind::Connections => pb::LogKind::Connections,
            LogKind::Admin => pb::LogKind::Admin,
        };
        let r = audit
            .verify_log(pb::VerifyLogRequest { kind: wire as i32 })
            .await?
            .into_inner();
        let name = match kind {
            LogKind::Connections => "connections",
            LogKind::Admin => "admin",
        };
        if !r.ok {
            broken.push(format!("{name} log: {}", r.problem));
        }
        results.push((name, r));
    }
    // Held against the heads this profile verified before: a store that
    // went back (damaged, or restored from an older copy) verifies
    // cleanly on its own.
    let mut file = ProfileFile::load(&ctx.config)?;
    let (profile_name, _) = file.select(ctx.profile.as_deref())?;
    let mut remembered = file.profiles[&profile_name].verified.clone();
    let mut went_back = false;
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    for (name, r) in &mut results {
        if !r.ok {
            continue;
        }
        let key = (*name).to_owned();
        if let Some(why) = remembered
            .get(&key)
            .and_then(|head| head.went_back(r.last_sequence, &r.last_hash))
            .filter(|_| !accept_rollback)
        {
            r.ok = false;
            r.problem = why;
            broken.push(format!("{name} log: {}", r.problem));
            went_back = true;
        } else {
            remembered.insert(
                key,
                VerifiedHead {
                    sequence: r.last_sequence,
                    hash: r.last_hash.clone(),
                    at: now.clone(),
                },
            );
        }
    }
    // What went back stays remembered as it was, so that every later
    // verification says so too.
    if !went_back && let Some(profile) = file.profiles.get_mut(&profile_name) {
        profile.verified = remembered;
        file.save(&ctx.config)?;
    }
    if ctx.json {
        let value: Vec<Value> = results
            .iter()
            .map(|(name, r)| {
                json!({"log": name, "ok": r.ok, "records": r.records, "first_sequence": r.first_sequence,
                       "last_sequence": r.last_sequence, "last_hash": r.last_hash,
                       "first_bad_sequence": if r.ok { Value::Null } else { r.first_bad_sequence.into() },
                       "problem": r.problem})
            })
            .collect();
        println!("{}", Value::Array(value));
    } else {
        for (name, r) in &results {
            if r.ok {
                println!(
                    "{name} log: OK, {} ({}–{}), last hash {}",
                    porta_proto::terminal::count(r.records, "record", "records"),
                    r.first_sequence,
                    r.last_sequence,
                    r.last_hash
                );
            } else {
                println!("{name} log: BROKEN: {}", r.problem);
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        bail!(VerificationFailed(broken.join("; ")))
    }
}

/// An export read back: which log, and its rows in file order.
/// Rows read back from an export, in file order.
type Rows = Box<dyn Iterator<Item = Result<Row>>>;

fn read_export(path: &Path) -> Result<(Log, Rows)> {
    if crate::workbook::is_workbook(path)? {
        let (log, rows) = crate::workbook::read(path)?;
        return Ok((log, Box::new(rows.into_iter().map(Ok))));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    if reader.fill_buf()?.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
    }
    let first = reader
        .fill_buf()?
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    if first == Some(b'{') {
        let mut lines = reader.lines().peekable();
        let log = match lines.peek() {
            Some(Ok(line)) => {
                let value: Value =
                    serde_json::from_str(line).context("the first line is not JSON")?;
                if value.get("event_id").is_some() {
                    Log::Connections
                } else if value.get("action").is_some() {
                    Log::Admin
                } else {
                    bail!("{} is not a Porta log export", path.display())
                }
            }
            _ => bail!("{} is empty", path.display()),
        };
        let rows = lines
            .filter(|line| !matches!(line, Ok(l) if l.trim().is_empty()))
            .map(move |line| {
                let value: Value = serde_json::from_str(&line?).context("a line is not JSON")?;
                let text = |name: &str| match value.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                Ok(Row {
                    cells: log.columns().iter().map(|c| text(c)).collect(),
                    previous_hash: text("previous_hash"),
                    hash: text("hash"),
                })
            });
        return Ok((log, Box::new(rows)));
    }
    let mut csv = csv::ReaderBuilder::new().from_reader(reader);
    let header: Vec<String> = csv.headers()?.iter().map(str::to_owned).collect();
    let log = Log::from_header(&header).with_context(|| {
        format!(
            "{} does not have the columns of a Porta log export",
            path.display()
        )
    })?;
    let width = log.columns().len();
    let rows = csv.into_records().map(move |record| {
        let record = record.context("an unreadable CSV row")?;
        let line = record.position().map_or(0, csv::Position::line);
        let cells: Vec<String> = record
            .iter()
            .map(|c| audit::unneutralise(c).to_owned())
            .collect();
        if cells.len() != width + 2 {
            bail!("line {line} has {} cells, not {}", cells.len(), width + 2);
        }
        as_exported(
            log,
            line,
            Row {
                previous_hash: cells[width].clone(),
                hash: cells[width + 1].clone(),
                cells: cells[..width].to_vec(),
            },
        )
    });
    Ok((log, Box::new(rows)))
}

/// A CSV row as Porta wrote it, or a verification failure naming the
/// column a spreadsheet program changed when it re-saved the file. The one
/// change that loses nothing is undone: the first record's 64-zero
/// `previous_hash` read as the number 0.
fn as_exported(log: Log, line: u64, mut row: Row) -> Result<Row> {
    if row.previous_hash == "0" {
        row.previous_hash = audit::GENESIS.to_owned();
    }
    let header = log.header();
    let cells = row.cells.iter().chain([&row.previous_hash, &row.hash]);
    for (column, cell) in header.iter().zip(cells) {
        let expected = match crate::workbook::cell_kind(column) {
            _ if *column == "previous_hash" || *column == "hash" => (cell.len() == 64
                && cell.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(())
            .ok_or("64 hexadecimal digits"),
            crate::workbook::CellKind::Count => (!cell.is_empty()
                && cell.bytes().all(|b| b.is_ascii_digit()))
            .then_some(())
            .ok_or("a whole number"),
            crate::workbook::CellKind::Time => (cell.is_empty()
                || humantime::parse_rfc3339(cell).is_ok())
            .then_some(())
            .ok_or("a UTC time like 2026-11-23T14:05:00Z"),
            crate::workbook::CellKind::Text => Ok(()),
        };
        if let Err(expected) = expected {
            bail!(VerificationFailed(format!(
                "line {line}, column {column}: {cell:?} is not as Porta exported it ({expected}); \
                 a spreadsheet program probably changed it when saving the file. Verify the \
                 original export, or export with --format xlsx to open logs in a spreadsheet"
            )));
        }
    }
    Ok(row)
}

pub(super) fn verify_file(ctx: &Ctx, path: &Path, partial: bool) -> Result<()> {
    // First pass: which sequence numbers the file holds (to tell a record
    // moved elsewhere from one deleted); second pass: the chain.
    let (log, rows) = read_export(path)?;
    let mut sequences = HashSet::new();
    for row in rows {
        if let Some(sequence) = row?.sequence() {
            sequences.insert(sequence);
        }
    }
    let (_, rows) = read_export(path)?;
    let mut read_error = None;
    let rows = rows.map_while(|row| match row {
        Ok(row) => Some(row),
        Err(error) => {
            read_error = Some(error);
            None
        }
    });
    let gaps = if partial {
        Gaps::Allowed
    } else {
        Gaps::Forbidden
    };
    let outcome = audit::verify(rows, &sequences, gaps, None);
    if let Some(error) = read_error {
        return Err(error);
    }
    let name = match log {
        Log::Connections => "connection",
        Log::Admin => "admin",
    };
    match outcome {
        Ok(verified) => {
            let (first, last) = verified.range.unwrap_or_default();
            if ctx.json {
                println!(
                    "{}",
                    json!({"file": path, "log": name, "ok": true, "records": verified.records,
                           "first_sequence": first, "last_sequence": last, "last_hash": verified.last_hash})
                );
            } else {
                println!(
                    "{}: OK, {} ({first}–{last}), last hash {}",
                    path.display(),
                    porta_proto::terminal::count(
                        verified.records,
                        &format!("{name} record"),
                        &format!("{name} records")
                    ),
                    verified.last_hash
                );
                println!(
                    "The file is consistent; it is the controller's log if this hash appears in `portactl logs verify` or a later export."
                );
            }
            Ok(())
        }
        Err(problem) => {
            if ctx.json {
                println!(
                    "{}",
                    json!({"file": path, "log": name, "ok": false, "first_bad_sequence": problem.sequence(),
                           "problem": problem.to_string()})
                );
            }
            let hint = if !partial && matches!(problem, audit::Break::Deleted { .. }) {
                "; if this export was filtered (--user, --device, --from, --to), records are \
                 missing on purpose: verify it with --partial"
            } else {
                ""
            };
            bail!(VerificationFailed(format!(
                "{}: {problem}{hint}",
                path.display()
            )))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::export::Writer;
    use super::*;
    use crate::args::ExportFormat;
    use porta_proto::audit::Log;
    use std::path::PathBuf;

    /// Admin records whose cells hold what spreadsheets trip on.
    fn tricky_rows() -> Vec<(Vec<String>, String, String)> {
        let targets = [
            "plain",
            "comma, inside",
            "\"quoted\"",
            "two\nlines",
            "=HYPERLINK(\"http://example.invalid\")",
            "+1",
            "-2",
            "@home",
            "'already quoted",
            "Núria Puig i Solà",
        ];
        let mut previous = audit::GENESIS.to_owned();
        targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let cells = vec![
                    (i + 1).to_string(),
                    "2026-11-23T08:00:00Z".into(),
                    "admin".into(),
                    "127.0.0.1:5555".into(),
                    "user.create".into(),
                    (*target).to_owned(),
                    String::new(),
                    format!(
                        "{{\"display_name\":{}}}",
                        serde_json::to_string(target).unwrap()
                    ),
                ];
                let hash = audit::record_hash(&previous, &cells);
                let row = (cells, previous.clone(), hash.clone());
                previous = hash;
                row
            })
            .collect()
    }

    /// The export at `path` reads back to the rows written, and verifies.
    fn reads_back_and_verifies(path: &Path) {
        let (log, rows) = read_export(path).unwrap();
        assert_eq!(log, Log::Admin);
        let rows: Vec<Row> = rows.map(Result::unwrap).collect();
        let expected: Vec<Vec<String>> = tricky_rows().into_iter().map(|r| r.0).collect();
        assert_eq!(
            rows.iter().map(|r| r.cells.clone()).collect::<Vec<_>>(),
            expected
        );
        let sequences = rows.iter().filter_map(Row::sequence).collect();
        assert!(audit::verify(rows, &sequences, Gaps::Forbidden, None).is_ok());
    }

    fn write(format: ExportFormat) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export");
        let mut writer = Writer::new(Log::Admin, format, Some(&path)).unwrap();
        for (cells, previous, hash) in tricky_rows() {
            writer.row(cells, &previous, &hash).unwrap();
        }
        writer.finish().unwrap();
        (dir, path)
    }

    #[test]
    fn csv_exports_are_spreadsheet_safe_and_verify_offline() {
        let (_dir, path) = write(ExportFormat::Csv);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.starts_with(UTF8_BOM),
            "UTF-8 byte-order mark for Excel"
        );
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        assert!(text.starts_with("sequence,at,actor,"), "a header row");
        assert!(text.contains("\r\n"), "RFC 4180 line ends");
        // Read it the way a spreadsheet would: no cell starts a formula.
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let targets: Vec<String> = reader
            .records()
            .map(|r| r.unwrap().get(5).unwrap().to_owned())
            .collect();
        assert_eq!(targets.len(), 10);
        for target in &targets {
            assert!(!target.starts_with(['=', '+', '-', '@']), "{target}");
        }
        assert_eq!(targets[3], "two\nlines", "a newline survives inside quotes");
        assert_eq!(targets[9], "Núria Puig i Solà");
        assert_eq!(targets[4], "'=HYPERLINK(\"http://example.invalid\")");

        reads_back_and_verifies(&path);
    }

    #[test]
    fn jsonl_exports_read_back_to_the_same_cells_and_verify() {
        let (_dir, path) = write(ExportFormat::Jsonl);
        let first_line = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let value: Value = serde_json::from_str(&first_line).unwrap();
        assert_eq!(value["sequence"], 1, "numbers stay numbers");
        reads_back_and_verifies(&path);
    }

    #[test]
    fn xlsx_exports_read_back_to_the_same_cells_and_verify() {
        let (_dir, path) = write(ExportFormat::Xlsx);
        reads_back_and_verifies(&path);
    }

    #[test]
    fn a_spreadsheets_changes_to_a_csv_are_undone_or_named() {
        let (cells, previous, hash) = tricky_rows().remove(0);
        let row = |cells: Vec<String>, previous: &str| Row {
            cells,
            previous_hash: previous.to_owned(),
            hash: hash.clone(),
        };
        // 64 zeros read as the number 0: undone.
        assert_eq!(previous, audit::GENESIS);
        let undone = as_exported(Log::Admin, 2, row(cells.clone(), "0")).unwrap();
        assert_eq!(undone.previous_hash, audit::GENESIS);
        // A time reformatted: named, with its line and column.
        let mut reformatted = cells;
        reformatted[1] = "23/11/2026 14:05".into();
        let error = as_exported(Log::Admin, 2, row(reformatted, &previous)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2, column at"), "{message}");
        assert!(error.is::<VerificationFailed>());
    }
}
