//! Audit-log exports as Excel workbooks (`logs export --format xlsx`), and
//! reading them back for `logs verify --file`.
//!
//! Auditors open exports in LibreOffice and Excel. A CSV leaves every type
//! to the program's guess: the first record's 64-zero `previous_hash`
//! becomes the number 0, times stay text, and a file saved back no longer
//! verifies. A workbook says what each cell is: times are dates (UTC),
//! counts are numbers, hashes and names are text. Reading back undoes the
//! typing column by column, giving exactly the text cells the hash chain
//! covers (`porta_proto::audit`), so a workbook a spreadsheet re-saved
//! still verifies.

use anyhow::{Context, Result, bail};
use calamine::{Data, Reader};
use porta_proto::audit::{self, Log, Row};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet};
use std::path::{Path, PathBuf};

/// How a column's cells are typed in a workbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// A whole number (sequence numbers, byte counts).
    Count,
    /// A time, written as a date in UTC.
    Time,
    /// Text, never interpreted.
    Text,
}

/// The kind of the column named `column`.
pub fn cell_kind(column: &str) -> CellKind {
    match column {
        "sequence" | "rx_bytes" | "tx_bytes" => CellKind::Count,
        "at" | "session_start" => CellKind::Time,
        _ => CellKind::Text,
    }
}

/// Largest count a spreadsheet's double holds exactly; larger counts are
/// written as text so that no digit is lost.
const EXACT_COUNT: u64 = 1 << 53;

/// Days from the spreadsheet epoch (1899-12-30) to the Unix epoch.
const UNIX_EPOCH_SERIAL: f64 = 25_569.0;

/// Display width of a column, in characters.
fn width(column: &str) -> f64 {
    match column {
        "sequence" => 10.0,
        "at" | "session_start" => 20.0,
        "rx_bytes" | "tx_bytes" => 14.0,
        "public_address" | "previous_public_address" | "actor_address" => 22.0,
        "before" | "after" => 40.0,
        "previous_hash" | "hash" => 24.0,
        _ => 16.0,
    }
}

/// A workbook being written, one row per record; rows go to disk as they
/// come (rust_xlsxwriter's constant-memory mode), so memory stays flat.
pub struct LogWorkbook {
    workbook: Workbook,
    path: PathBuf,
    columns: Vec<&'static str>,
    next_row: u32,
    time_format: Format,
}

impl LogWorkbook {
    /// Starts `path` for `log`: the header (bold, frozen) and column widths.
    pub fn create(path: &Path, log: Log) -> Result<Self> {
        let mut workbook = Workbook::new();
        let columns = log.header();
        let bold = Format::new().set_bold();
        {
            let sheet = workbook.add_worksheet_with_constant_memory()?;
            sheet.set_name(match log {
                Log::Connections => "connections",
                Log::Admin => "admin",
            })?;
            for (index, column) in columns.iter().enumerate() {
                let index = u16::try_from(index)?;
                sheet.set_column_width(index, width(column))?;
                sheet.write_string_with_format(0, index, *column, &bold)?;
            }
            sheet.set_freeze_panes(1, 0)?;
        }
        Ok(Self {
            workbook,
            path: path.to_owned(),
            columns,
            next_row: 1,
            // True date-times, shown with their zone named.
            time_format: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss \"UTC\""),
        })
    }

    /// Appends one record: its cells, then the two hashes.
    pub fn row<S: AsRef<str>>(
        &mut self,
        cells: &[S],
        previous_hash: &str,
        hash: &str,
    ) -> Result<()> {
        let row = self.next_row;
        let sheet: &mut Worksheet = self.workbook.worksheet_from_index(0)?;
        let all = cells.iter().map(AsRef::as_ref).chain([previous_hash, hash]);
        for (index, (column, cell)) in self.columns.iter().zip(all).enumerate() {
            let index = u16::try_from(index)?;
            if cell.is_empty() {
                continue;
            }
            match cell_kind(column) {
                CellKind::Count => match cell.parse::<u64>() {
                    // Exact below 2^53, so the conversion loses nothing.
                    #[allow(clippy::cast_precision_loss)]
                    Ok(n) if n < EXACT_COUNT => {
                        sheet.write_number(row, index, n as f64)?;
                    }
                    _ => {
                        sheet.write_string(row, index, cell)?;
                    }
                },
                CellKind::Time => match humantime::parse_rfc3339(cell) {
                    Ok(time) => {
                        let unix = time
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        let date = ExcelDateTime::from_timestamp(i64::try_from(unix)?)?;
                        sheet.write_datetime_with_format(row, index, &date, &self.time_format)?;
                    }
                    Err(_) => {
                        sheet.write_string(row, index, cell)?;
                    }
                },
                CellKind::Text => {
                    sheet.write_string(row, index, cell)?;
                }
            }
        }
        self.next_row += 1;
        Ok(())
    }

    /// Writes the file.
    pub fn finish(mut self) -> Result<()> {
        self.workbook
            .save(&self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// True if `path` is a workbook (by its ZIP signature, whatever its name).
pub fn is_workbook(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let read = file.read(&mut magic)?;
    Ok(read == 4 && magic == *b"PK\x03\x04")
}

/// Reads the first sheet of a workbook export back into records.
pub fn read(path: &Path) -> Result<(Log, Vec<Row>)> {
    let mut workbook = calamine::open_workbook_auto(path)
        .with_context(|| format!("{} is not a readable workbook", path.display()))?;
    let range = workbook
        .worksheet_range_at(0)
        .with_context(|| format!("{} has no sheet", path.display()))??;
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .with_context(|| format!("{} is empty", path.display()))?
        .iter()
        .map(|cell| cell.to_string().trim().to_owned())
        .collect();
    let log = Log::from_header(&header).with_context(|| {
        format!(
            "{} does not have the columns of a Porta log export",
            path.display()
        )
    })?;
    let columns = log.header();
    let width = log.columns().len();
    let mut records = Vec::new();
    for (index, cells) in rows.enumerate() {
        if cells.iter().all(|c| matches!(c, Data::Empty)) {
            continue;
        }
        let texts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let cell = cells.get(i).unwrap_or(&Data::Empty);
                cell_text(cell, cell_kind(column)).with_context(|| {
                    format!(
                        "row {}, column {column}: {cell:?} is not what Porta exported",
                        index + 2
                    )
                })
            })
            .collect::<Result<_>>()?;
        records.push(Row {
            previous_hash: texts[width].clone(),
            hash: texts[width + 1].clone(),
            cells: texts[..width].to_vec(),
        });
    }
    Ok((log, records))
}

/// A cell back as the text the hash covers.
fn cell_text(cell: &Data, kind: CellKind) -> Result<String> {
    Ok(match (cell, kind) {
        (Data::Empty, _) => String::new(),
        (Data::String(text), _) => text.clone(),
        (Data::Int(n), CellKind::Count) => n.to_string(),
        (Data::Float(f), CellKind::Count) if f.fract() == 0.0 && *f >= 0.0 => {
            // Whole and below 2^53 (anything larger was written as text).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = *f as u64;
            n.to_string()
        }
        (Data::DateTime(date), CellKind::Time) => serial_to_iso(date.as_f64())?,
        (Data::Float(serial), CellKind::Time) => serial_to_iso(*serial)?,
        (Data::DateTimeIso(text), CellKind::Time) => {
            // Some writers store ISO text ("2026-11-23T14:05:00"), in UTC.
            let text = if text.ends_with('Z') {
                text.clone()
            } else {
                format!("{text}Z")
            };
            let time = humantime::parse_rfc3339(&text)?;
            audit::iso(
                time.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            )
        }
        (other, _) => bail!("unexpected cell {other:?}"),
    })
}

/// A spreadsheet date (days since 1899-12-30, UTC) as an export's time.
fn serial_to_iso(serial: f64) -> Result<String> {
    let seconds = ((serial - UNIX_EPOCH_SERIAL) * 86_400.0).round();
    if !(1.0..=4.0e12).contains(&seconds) {
        bail!("{serial} is not a time Porta exported");
    }
    // Checked to be a positive whole number of seconds in range above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(audit::iso(seconds as u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn admin_row(sequence: u64, at: &str, previous_hash: &str) -> (Vec<String>, String) {
        let cells: Vec<String> = [
            &sequence.to_string(),
            at,
            "admin",
            "127.0.0.1:5000",
            "group.create",
            "00123",
            "",
            "{\"name\":\"00123\"}",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
        let hash = audit::record_hash(previous_hash, &cells);
        (cells, hash)
    }

    #[test]
    fn a_workbook_reads_back_to_the_cells_the_hashes_cover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.xlsx");
        let (first, first_hash) = admin_row(1, "2026-11-23T14:05:00Z", audit::GENESIS);
        let (second, second_hash) = admin_row(2, "2026-11-23T23:59:59Z", &first_hash);
        let mut book = LogWorkbook::create(&path, Log::Admin).unwrap();
        book.row(&first, audit::GENESIS, &first_hash).unwrap();
        book.row(&second, &first_hash, &second_hash).unwrap();
        book.finish().unwrap();

        assert!(is_workbook(&path).unwrap());
        let (log, rows) = read(&path).unwrap();
        assert_eq!(log, Log::Admin);
        assert_eq!(
            rows,
            vec![
                Row {
                    cells: first,
                    previous_hash: audit::GENESIS.into(),
                    hash: first_hash
                },
                Row {
                    cells: second,
                    previous_hash: rows[0].hash.clone(),
                    hash: second_hash
                },
            ]
        );
    }

    #[test]
    fn counts_and_times_are_typed_text_stays_text() {
        assert_eq!(cell_kind("rx_bytes"), CellKind::Count);
        assert_eq!(cell_kind("at"), CellKind::Time);
        assert_eq!(cell_kind("previous_hash"), CellKind::Text);
        assert_eq!(
            cell_text(&Data::Float(45_984.586_805_555_56), CellKind::Time).unwrap(),
            "2025-11-23T14:05:00Z"
        );
        assert_eq!(
            cell_text(&Data::Float(1e15), CellKind::Count).unwrap(),
            "1000000000000000"
        );
        assert!(cell_text(&Data::Float(0.5), CellKind::Count).is_err());
    }
}
