//! `logs export`: streamed from the controller to a file row by row, in
//! the chosen format, every cell exactly what the record's hash covers.

use super::super::Ctx;
use super::UTF8_BOM;
use crate::args::{ExportFormat, LogKind};
use crate::error::Usage;
use anyhow::{Context, Result, bail};
use porta_proto::audit::{self, Log};
use porta_proto::pb;
use porta_proto::pb::audit_client::AuditClient;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) fn log_of(kind: LogKind) -> Log {
    match kind {
        LogKind::Connections => Log::Connections,
        LogKind::Admin => Log::Admin,
    }
}

/// Writes rows as CSV, JSON lines or a workbook.
pub(super) enum Writer {
    Csv(Log, Box<csv::Writer<Box<dyn Write>>>),
    Jsonl(Log, Box<dyn Write>),
    Xlsx(Box<crate::workbook::LogWorkbook>),
}

impl Writer {
    /// A writer to `out` (stdout when `None`; a workbook needs a file).
    pub(super) fn new(log: Log, format: ExportFormat, out: Option<&Path>) -> Result<Self> {
        let sink = || -> Result<Box<dyn Write>> {
            Ok(match out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            })
        };
        Ok(match format {
            ExportFormat::Csv => {
                let mut sink = sink()?;
                // The byte-order mark tells Excel the file is UTF-8
                // (LibreOffice does not need it and ignores it).
                sink.write_all(UTF8_BOM)?;
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(sink);
                csv.write_record(log.header())?;
                Self::Csv(log, Box::new(csv))
            }
            ExportFormat::Jsonl => Self::Jsonl(log, sink()?),
            ExportFormat::Xlsx => {
                let Some(path) = out else {
                    bail!(Usage(
                        "--format xlsx writes a file: add --out FILE.xlsx".into()
                    ));
                };
                Self::Xlsx(Box::new(crate::workbook::LogWorkbook::create(path, log)?))
            }
        })
    }

    pub(super) fn row<S: AsRef<str>>(
        &mut self,
        cells: &[S],
        previous_hash: &str,
        hash: &str,
    ) -> Result<()> {
        match self {
            Self::Csv(log, csv) => {
                for (column, cell) in log.columns().iter().zip(cells) {
                    csv.write_field(spreadsheet_safe(column, cell.as_ref()).as_bytes())?;
                }
                csv.write_field(previous_hash)?;
                csv.write_field(hash)?;
                csv.write_record(None::<&[u8]>)?;
            }
            Self::Jsonl(log, out) => {
                let object = porta_proto::feed::export_object(*log, cells, previous_hash, hash);
                serde_json::to_writer(&mut *out, &Value::Object(object))?;
                out.write_all(b"\n")?;
            }
            Self::Xlsx(book) => book.row(cells, previous_hash, hash)?,
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<()> {
        match self {
            Self::Csv(_, mut csv) => csv.flush()?,
            Self::Jsonl(_, mut out) => out.flush()?,
            Self::Xlsx(book) => book.finish()?,
        }
        Ok(())
    }
}

/// A CSV cell a spreadsheet opens and saves back unchanged: formulas are
/// neutralised (`porta_proto::audit::neutralise`), and so is text that it
/// would read as a number and rewrite ("00123" → "123", "1e5" → "100000"),
/// with the same leading `'`, which verification removes. LibreOffice
/// shows that `'` in the cell, so only text a spreadsheet really reads as a
/// number gets it ([`reads_as_number`]): a tunnel address such as
/// 10.160.64.2 is shown as it is.
fn spreadsheet_safe<'a>(column: &str, cell: &'a str) -> Cow<'a, str> {
    if reads_as_number(cell)
        && crate::workbook::cell_kind(column) == crate::workbook::CellKind::Text
    {
        format!("'{cell}").into()
    } else {
        audit::neutralise(cell)
    }
}

/// Whether a spreadsheet, in some locale, reads `cell` as a number: digits
/// ("00123"), with a decimal part after `.` or `,` ("1.5", "1,5"), with
/// thousands grouped in threes by the other separator ("1.234,5",
/// "1,234.5", "1.234.567"), and an exponent ("1e5"). A dotted address
/// whose groups are not all threes (10.160.64.2) is none of these and
/// LibreOffice keeps it as text; 10.160.164.200 is grouped in threes and
/// Calc in Spanish reads it as 10160164200, so it counts as a number.
fn reads_as_number(cell: &str) -> bool {
    let (mantissa, exponent) = match cell.find(['e', 'E']) {
        Some(at) => (&cell[..at], Some(&cell[at + 1..])),
        None => (cell, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if exponent.is_some_and(|e| !digits(e)) {
        return false;
    }
    // Digits grouped in threes by `separator` (or not grouped at all).
    let grouped = |part: &str, separator: char| {
        let mut groups = part.split(separator);
        let first = groups.next().unwrap_or_default();
        digits(first)
            && (first.len() <= 3 || !part.contains(separator))
            && groups.all(|group| group.len() == 3 && digits(group))
    };
    if grouped(mantissa, '.') || grouped(mantissa, ',') {
        return true;
    }
    // The last separator starts the decimal part; the other may group.
    let Some(at) = mantissa.rfind(['.', ',']) else {
        return false;
    };
    let (whole, fraction) = (&mantissa[..at], &mantissa[at + 1..]);
    let grouping = if mantissa[at..].starts_with('.') {
        ','
    } else {
        '.'
    };
    digits(fraction) && grouped(whole, grouping)
}

/// Numbers stay numbers in JSON lines; everything else is text.
pub(super) async fn export(
    ctx: &Ctx,
    kind: LogKind,
    request: pb::ExportRequest,
    format: ExportFormat,
    out: Option<PathBuf>,
) -> Result<()> {
    let log = log_of(kind);
    let mut audit = AuditClient::new(ctx.channel().await?);
    let mut writer = Writer::new(log, format, out.as_deref())?;
    let progress = match &out {
        Some(_) => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos} records ({per_sec}) {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        }
        None => indicatif::ProgressBar::hidden(),
    };
    let (count, last_hash) = match log {
        Log::Connections => {
            let stream = audit.export_connections(request).await?.into_inner();
            copy(
                stream,
                &mut writer,
                &progress,
                |page: pb::ConnectionRecords| page.records,
                |r: &pb::ConnectionRecord| (audit::connection_cells(r), &r.previous_hash, &r.hash),
            )
            .await?
        }
        Log::Admin => {
            let stream = audit.export_admin_actions(request).await?.into_inner();
            copy(
                stream,
                &mut writer,
                &progress,
                |page: pb::AdminActionRecords| page.records,
                |r: &pb::AdminActionRecord| (audit::admin_cells(r), &r.previous_hash, &r.hash),
            )
            .await?
        }
    };
    writer.finish()?;
    progress.finish_and_clear();
    if let Some(path) = out {
        if ctx.json {
            println!(
                "{}",
                json!({"file": path, "records": count, "last_hash": last_hash})
            );
        } else {
            eprintln!(
                "Exported {} to {} (last hash {}).",
                porta_proto::terminal::count(count, "record", "records"),
                path.display(),
                if last_hash.is_empty() {
                    "-"
                } else {
                    &last_hash
                }
            );
        }
    }
    Ok(())
}

/// Writes every record of `stream` (pages of records) as it arrives;
/// returns how many and the last one's hash.
async fn copy<P, R>(
    mut stream: tonic::Streaming<P>,
    writer: &mut Writer,
    progress: &indicatif::ProgressBar,
    records: impl Fn(P) -> Vec<R>,
    parts: impl Fn(&R) -> (Vec<Cow<'_, str>>, &String, &String),
) -> Result<(u64, String)> {
    let (mut count, mut last_hash) = (0u64, String::new());
    while let Some(page) = stream.message().await? {
        let page = records(page);
        for record in &page {
            let (cells, previous_hash, hash) = parts(record);
            writer.row(&cells, previous_hash, hash)?;
        }
        if let Some(last) = page.last() {
            last_hash.clone_from(parts(last).2);
        }
        count += page.len() as u64;
        progress.inc(page.len() as u64);
    }
    Ok((count, last_hash))
}

#[cfg(test)]
mod tests {
    use super::reads_as_number;

    #[test]
    fn numbers_in_any_locale_are_told_from_addresses_and_names() {
        for number in [
            "00123",
            "1.5",
            "1,5",
            "1e5",
            "1.234.567",
            "1,234.5",
            "1.234,5",
            "10.160.164.200",
        ] {
            assert!(reads_as_number(number), "{number}");
        }
        for text in [
            "10.160.64.2",
            "172.31.1.2:51820",
            "pc-12",
            "e5",
            "1.2.3",
            "",
            "12,34,5",
        ] {
            assert!(!reads_as_number(text), "{text}");
        }
    }
}
