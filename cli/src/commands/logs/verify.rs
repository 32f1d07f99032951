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
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
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

/// An export being read back a record at a time, whatever its size.
struct ExportReader {
    log: Log,
    source: Source,
}

enum Source {
    /// CSV, through one reused record buffer.
    Csv {
        csv: Box<csv::Reader<File>>,
        record: csv::ByteRecord,
    },
    /// JSON lines.
    Lines(std::io::Lines<BufReader<File>>),
    /// A workbook (read whole: workbooks are for spreadsheet-sized logs).
    Rows(std::vec::IntoIter<Row>),
}

/// Opens an export and tells which log it holds.
fn open_export(path: &Path) -> Result<ExportReader> {
    if crate::workbook::is_workbook(path)? {
        let (log, rows) = crate::workbook::read(path)?;
        return Ok(ExportReader {
            log,
            source: Source::Rows(rows.into_iter()),
        });
    }
    let open = || -> Result<BufReader<File>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        if reader.fill_buf()?.starts_with(UTF8_BOM) {
            reader.consume(UTF8_BOM.len());
        }
        Ok(reader)
    };
    let mut reader = open()?;
    let first = reader
        .fill_buf()?
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    if first == Some(b'{') {
        let first_line = open()?
            .lines()
            .find(|line| !matches!(line, Ok(l) if l.trim().is_empty()))
            .transpose()?;
        let Some(first_line) = first_line else {
            bail!("{} is empty", path.display())
        };
        let value: Value =
            serde_json::from_str(&first_line).context("the first line is not JSON")?;
        let log = if value.get("event_id").is_some() {
            Log::Connections
        } else if value.get("action").is_some() {
            Log::Admin
        } else {
            bail!("{} is not a Porta log export", path.display())
        };
        return Ok(ExportReader {
            log,
            source: Source::Lines(reader.lines()),
        });
    }
    // The CSV reader buffers by itself: it reads the file directly, past
    // the byte-order mark if there is one.
    drop(reader);
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut start = [0u8; 3];
    let skip = match file.read_exact(&mut start) {
        Ok(()) if start == *UTF8_BOM => 3,
        _ => 0,
    };
    file.seek(std::io::SeekFrom::Start(skip))?;
    let mut csv = csv::ReaderBuilder::new()
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let header: Vec<String> = csv.headers()?.iter().map(str::to_owned).collect();
    let log = Log::from_header(&header).with_context(|| {
        format!(
            "{} does not have the columns of a Porta log export",
            path.display()
        )
    })?;
    let (csv, record) = (Box::new(csv), csv::ByteRecord::new());
    Ok(ExportReader {
        log,
        source: Source::Csv { csv, record },
    })
}

impl ExportReader {
    /// Adds the next record to `batch`, as read; false at the end of the
    /// file.
    fn read_into(&mut self, batch: &mut Batch) -> Result<bool> {
        let width = self.log.columns().len() + 2;
        match &mut self.source {
            Source::Csv { csv, record } => {
                if !csv
                    .read_byte_record(record)
                    .context("an unreadable CSV row")?
                {
                    return Ok(false);
                }
                let line = record.position().map_or(0, csv::Position::line);
                if record.len() != width {
                    bail!("line {line} has {} cells, not {width}", record.len());
                }
                batch.push(line, record.iter());
                Ok(true)
            }
            Source::Lines(lines) => {
                let line = loop {
                    match lines.next().transpose()? {
                        None => return Ok(false),
                        Some(line) if line.trim().is_empty() => continue,
                        Some(line) => break line,
                    }
                };
                let value: Value = serde_json::from_str(&line).context("a line is not JSON")?;
                let text = |name: &str| match value.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                let header = self.log.header();
                batch.push(0, header.iter().map(|column| text(column)));
                Ok(true)
            }
            Source::Rows(rows) => Ok(rows
                .next()
                .map(|row| {
                    let cells = row.cells.iter().chain([&row.previous_hash, &row.hash]);
                    batch.push(0, cells);
                })
                .is_some()),
        }
    }

    /// How to read back the cells of a batch of this export's records.
    fn decoder(&self) -> Decoder {
        Decoder {
            columns: column_checks(self.log),
            csv: matches!(self.source, Source::Csv { .. }),
        }
    }
}

/// Turns records as read into cells as Porta exported them.
struct Decoder {
    columns: Vec<(&'static str, Check)>,
    /// CSV cells carry the spreadsheet guards and may have been changed
    /// by a spreadsheet program; JSON and workbook cells are typed.
    csv: bool,
}

impl Decoder {
    /// Each record of `batch`: its cells followed by its `previous_hash`
    /// and `hash`.
    fn records<'b>(&self, batch: &'b Batch) -> impl Iterator<Item = Result<Vec<Cow<'b, str>>>> {
        let width = self.columns.len();
        batch
            .ends
            .chunks(width)
            .zip(&batch.lines)
            .scan(0, move |start, (ends, &line)| {
                let record = &batch.bytes[*start..ends[width - 1]];
                let first = *start;
                *start = ends[width - 1];
                Some(self.cells(line, record, first, ends))
            })
    }

    fn cells<'b>(
        &self,
        line: u64,
        record: &'b [u8],
        first: usize,
        ends: &[usize],
    ) -> Result<Vec<Cow<'b, str>>> {
        let not_text = || format!("line {line} is not UTF-8 text");
        let text = std::str::from_utf8(record).with_context(not_text)?;
        let mut cells = Vec::with_capacity(ends.len());
        let mut start = 0;
        for &end in ends {
            let cell = text.get(start..end - first).with_context(not_text)?;
            start = end - first;
            cells.push(if self.csv {
                audit::unneutralise(cell)
            } else {
                Cow::Borrowed(cell)
            });
        }
        if self.csv {
            as_exported(&self.columns, line, &mut cells)?;
        }
        Ok(cells)
    }
}

/// What a column of an export holds, for telling a cell a spreadsheet
/// program changed.
#[derive(Clone, Copy)]
enum Check {
    Hash,
    Count,
    Time,
    Text,
}

/// Each column of `log`'s export (hashes included) and what it holds.
fn column_checks(log: Log) -> Vec<(&'static str, Check)> {
    log.header()
        .into_iter()
        .map(|column| {
            let check = match crate::workbook::cell_kind(column) {
                _ if column == "previous_hash" || column == "hash" => Check::Hash,
                crate::workbook::CellKind::Count => Check::Count,
                crate::workbook::CellKind::Time => Check::Time,
                crate::workbook::CellKind::Text => Check::Text,
            };
            (column, check)
        })
        .collect()
}

/// A CSV row (cells, then the two hashes) as Porta wrote it, or a
/// verification failure naming the column a spreadsheet program changed
/// when it re-saved the file. The one change that loses nothing is
/// undone: the first record's 64-zero `previous_hash` read as the number 0.
fn as_exported(columns: &[(&str, Check)], line: u64, cells: &mut [Cow<'_, str>]) -> Result<()> {
    if let Some(previous_hash) = cells.len().checked_sub(2).map(|at| &mut cells[at])
        && *previous_hash == "0"
    {
        *previous_hash = Cow::Borrowed(audit::GENESIS);
    }
    for ((column, check), cell) in columns.iter().zip(cells.iter()) {
        let expected = match check {
            // Folds, not `all`: without an early exit the scan is vectorised.
            Check::Hash => (cell.len() == 64
                && cell
                    .bytes()
                    .fold(true, |hex, b| hex & b.is_ascii_hexdigit()))
            .then_some(())
            .ok_or("64 hexadecimal digits"),
            Check::Count => (!cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit()))
                .then_some(())
                .ok_or("a whole number"),
            Check::Time => (cell.is_empty() || humantime::parse_rfc3339(cell).is_ok())
                .then_some(())
                .ok_or("a UTC time like 2026-11-23T14:05:00Z"),
            Check::Text => Ok(()),
        };
        if let Err(expected) = expected {
            bail!(VerificationFailed(format!(
                "line {line}, column {column}: {cell:?} is not as Porta exported it ({expected}); \
                 a spreadsheet program probably changed it when saving the file. Verify the \
                 original export, or export with --format xlsx to open logs in a spreadsheet"
            )));
        }
    }
    Ok(())
}

pub(super) fn verify_file(ctx: &Ctx, path: &Path, partial: bool) -> Result<()> {
    // One pass, a few thousand records in memory at a time; only a gap in
    // the sequence numbers reads the file again, to tell records deleted
    // from records moved further down.
    let mut reader = open_export(path)?;
    let log = reader.log;
    let gaps = if partial {
        Gaps::Allowed
    } else {
        Gaps::Forbidden
    };
    let outcome = match check_all(&mut reader, audit::Verifier::new(gaps, None))? {
        Ok(verified) => Ok(verified),
        Err(problem) => Err(moved_or_deleted(path, problem)?),
    };
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

/// Records handed from the reading thread to the checking thread at once.
const BATCH: usize = 1_024;

/// Checks every record `reader` yields with `verifier`: this thread splits
/// the file into records, another decodes, hashes and checks them,
/// [`BATCH`] records at a time (on two cores, as fast as `sha256sum`
/// reads the same file). The first problem in file order wins: a record
/// that breaks the chain before an unreadable row is the answer, else the
/// unreadable row's error.
fn check_all(
    reader: &mut ExportReader,
    mut verifier: audit::Verifier,
) -> Result<Result<audit::Verified, audit::Break>> {
    let decoder = reader.decoder();
    let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(4);
    std::thread::scope(|scope| {
        let checker = scope.spawn(move || -> Result<Result<audit::Verified, audit::Break>> {
            for batch in received {
                for cells in decoder.records(&batch) {
                    let cells = cells?;
                    let (record, hashes) = cells.split_at(cells.len() - 2);
                    if let Err(problem) = verifier.check(record, &hashes[0], &hashes[1]) {
                        return Ok(Err(problem));
                    }
                }
            }
            Ok(Ok(verifier.finish()))
        });
        let read = (|| -> Result<()> {
            let mut batch = Batch::default();
            while reader.read_into(&mut batch)? {
                // A failed send: the checker stopped at a broken record.
                if batch.lines.len() == BATCH && batches.send(std::mem::take(&mut batch)).is_err() {
                    return Ok(());
                }
            }
            if !batch.lines.is_empty() {
                let _ = batches.send(batch);
            }
            Ok(())
        })();
        drop(batches);
        let checked = checker
            .join()
            .map_err(|_| anyhow::anyhow!("checking the records failed unexpectedly"))?;
        match (checked, read) {
            (Ok(Ok(_)), Err(error)) => Err(error),
            (checked, _) => checked,
        }
    })
}

/// Records as read (each one's cells, then its two hashes), laid end to
/// end.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Where each cell ends in `bytes`.
    ends: Vec<usize>,
    /// The line each record starts on (CSV), else 0.
    lines: Vec<u64>,
}

impl Batch {
    fn push<C: AsRef<[u8]>>(&mut self, line: u64, cells: impl Iterator<Item = C>) {
        for cell in cells {
            self.bytes.extend_from_slice(cell.as_ref());
            self.ends.push(self.bytes.len());
        }
        self.lines.push(line);
    }
}

/// [`audit::moved_or_deleted`] over every sequence number in the file.
fn moved_or_deleted(path: &Path, problem: audit::Break) -> Result<audit::Break> {
    if !matches!(problem, audit::Break::Deleted { .. }) {
        return Ok(problem);
    }
    let mut reader = open_export(path)?;
    let decoder = reader.decoder();
    let mut found = Vec::new();
    loop {
        let mut batch = Batch::default();
        while batch.lines.len() < BATCH && reader.read_into(&mut batch)? {}
        if batch.lines.is_empty() {
            break;
        }
        for cells in decoder.records(&batch) {
            found.extend(cells?[0].parse::<u64>().ok());
        }
        // Only the sequences inside the gap matter; keep memory flat.
        let problem = audit::moved_or_deleted(problem.clone(), found.drain(..));
        if !matches!(problem, audit::Break::Deleted { .. }) {
            return Ok(problem);
        }
    }
    Ok(problem)
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
        let mut reader = open_export(path).unwrap();
        assert_eq!(reader.log, Log::Admin);
        let mut batch = Batch::default();
        while reader.read_into(&mut batch).unwrap() {}
        let rows: Vec<Row> = reader
            .decoder()
            .records(&batch)
            .map(|cells| {
                let cells = cells.unwrap();
                let (record, hashes) = cells.split_at(cells.len() - 2);
                Row {
                    cells: record.iter().map(|c| c.to_string()).collect(),
                    previous_hash: hashes[0].to_string(),
                    hash: hashes[1].to_string(),
                }
            })
            .collect();
        let expected: Vec<Vec<String>> = tricky_rows().into_iter().map(|r| r.0).collect();
        assert_eq!(
            rows.iter().map(|r| r.cells.clone()).collect::<Vec<_>>(),
            expected
        );
        assert!(audit::verify(rows, Gaps::Forbidden, None).is_ok());
    }

    fn write(format: ExportFormat) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export");
        let mut writer = Writer::new(Log::Admin, format, Some(&path)).unwrap();
        for (cells, previous, hash) in tricky_rows() {
            writer.row(&cells, &previous, &hash).unwrap();
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
        fn row<'a>(cells: &'a [String], previous: &'a str, hash: &'a str) -> Vec<Cow<'a, str>> {
            cells
                .iter()
                .map(String::as_str)
                .chain([previous, hash])
                .map(Cow::Borrowed)
                .collect()
        }
        // 64 zeros read as the number 0: undone.
        assert_eq!(previous, audit::GENESIS);
        let mut undone = row(&cells, "0", &hash);
        as_exported(&column_checks(Log::Admin), 2, &mut undone).unwrap();
        assert_eq!(undone[cells.len()], audit::GENESIS);
        // A time reformatted: named, with its line and column.
        let mut reformatted = cells;
        reformatted[1] = "23/11/2026 14:05".into();
        let error = as_exported(
            &column_checks(Log::Admin),
            2,
            &mut row(&reformatted, audit::GENESIS, &hash),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2, column at"), "{message}");
        assert!(error.is::<VerificationFailed>());
    }
}
