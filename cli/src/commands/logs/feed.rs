//! logs feed status|extract: the SIEM feed's state, and a collector's
//! files turned back into an export (see `porta_proto::feed`).

use super::super::Ctx;
use crate::error::VerificationFailed;
use crate::output;
use anyhow::{Context, Result, bail};
use porta_proto::audit::Log;
use porta_proto::pb;
use porta_proto::pb::audit_client::AuditClient;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub(super) async fn status(ctx: &Ctx) -> Result<()> {
    let mut audit = AuditClient::new(ctx.channel().await?);
    let s = audit
        .get_feed_status(pb::GetFeedStatusRequest {})
        .await?
        .into_inner();
    if !s.configured {
        output::show(ctx.json, json!({"configured": false}), || {
            "No SIEM feed: the controller's config has no [feed] section.".into()
        });
        return Ok(());
    }
    let behind = |head: u64, delivered: u64| head.saturating_sub(delivered);
    let value = json!({
        "configured": true, "target": s.target, "acknowledged": s.acknowledged,
        "connected": s.connected,
        "connection": {"delivered": s.connection_delivered, "head": s.connection_head,
                       "behind": behind(s.connection_head, s.connection_delivered)},
        "admin": {"delivered": s.admin_delivered, "head": s.admin_head,
                  "behind": behind(s.admin_head, s.admin_delivered)},
        "last_error": s.last_error, "last_error_at": output::time_json(s.last_error_at),
        "last_delivery_at": output::time_json(s.last_delivery_at),
        "delivered_since_start": s.delivered_since_start,
    });
    output::show(ctx.json, value, || {
        let mut text = format!(
            "target:      {}{}\nconnected:   {}\n",
            s.target,
            if s.acknowledged {
                " (RELP: each record confirmed)"
            } else {
                " (no acknowledgements)"
            },
            if s.connected { "yes" } else { "no" }
        );
        for (name, delivered, head) in [
            ("connection", s.connection_delivered, s.connection_head),
            ("admin", s.admin_delivered, s.admin_head),
        ] {
            text.push_str(&format!(
                "{name:<12} delivered up to {delivered} of {head} ({} behind)\n",
                behind(head, delivered)
            ));
        }
        text.push_str(&format!(
            "last delivery: {}\n",
            output::time(s.last_delivery_at)
        ));
        if !s.last_error.is_empty() {
            text.push_str(&format!(
                "last error:  {} ({})\n",
                s.last_error,
                output::time(s.last_error_at)
            ));
        }
        text.trim_end().to_owned()
    });
    Ok(())
}

/// What the files held, for the summary.
#[derive(Debug, Default)]
struct Tally {
    records: usize,
    duplicates: usize,
    other_lines: usize,
}

pub(super) fn extract(files: &[PathBuf], log: Log, out: Option<&Path>) -> Result<()> {
    // By sequence: each record once; a resent copy must be the same.
    let mut records: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
    let mut tally = Tally::default();
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            let received = porta_proto::feed::parse_line(&line)
                .map_err(|e| anyhow::anyhow!("{}, line {}: {e}", path.display(), number + 1))?;
            let Some(received) = received else {
                tally.other_lines += 1;
                continue;
            };
            if received.log != log {
                continue;
            }
            match records.get(&received.sequence) {
                Some(kept) if *kept == received.record => tally.duplicates += 1,
                Some(_) => bail!(VerificationFailed(format!(
                    "{}, line {}: record {} was received twice with different contents",
                    path.display(),
                    number + 1,
                    received.sequence
                ))),
                None => {
                    records.insert(received.sequence, received.record);
                    tally.records += 1;
                }
            }
        }
    }
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    for record in records.into_values() {
        serde_json::to_writer(&mut sink, &Value::Object(record))?;
        sink.write_all(b"\n")?;
    }
    sink.flush()?;
    eprintln!(
        "{} {} record(s); {} duplicate(s) dropped; {} other line(s) skipped",
        tally.records,
        porta_proto::feed::log_name(log),
        tally.duplicates,
        tally.other_lines
    );
    Ok(())
}
