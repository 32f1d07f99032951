//! The SIEM feed's record format, shared by the controller (which sends
//! it) and `portactl logs feed extract` (which turns what a collector
//! received back into exports `logs verify --file` accepts).
//!
//! Every record travels as one JSON object: `"log"` (`connection` or
//! `admin`) and then exactly the fields of a `logs export --format jsonl`
//! line — every column, `previous_hash`, `hash` ([`record_json`]). Over
//! syslog it is the MSG of an RFC 5424 message whose structured data
//! repeats the fields a SIEM filters on ([`syslog_message`]); over
//! `jsonl` it is the line itself. A quote inside a JSON string or an
//! SD-PARAM is escaped, so ` {"log"` occurs in a line only where the
//! object begins: [`parse_line`] finds it in any line a collector writes
//! — the raw message, rsyslog's file format, or a JSON line.

use crate::audit::Log;
use serde_json::{Map, Value};

/// The structured-data ID: `porta` at enterprise number 32473, which RFC
/// 5612 reserves for documentation and examples (Porta has no number of
/// its own; a SIEM matches the whole ID).
pub const SD_ID: &str = "porta@32473";

/// The syslog facility: 10, security/authorization (authpriv).
const FACILITY: u8 = 10;

/// A log's name in the feed.
pub fn log_name(log: Log) -> &'static str {
    match log {
        Log::Connections => "connection",
        Log::Admin => "admin",
    }
}

fn log_of_name(name: &str) -> Option<Log> {
    match name {
        "connection" => Some(Log::Connections),
        "admin" => Some(Log::Admin),
        _ => None,
    }
}

/// A record as exported: every column by name (the sequence and byte
/// counters as numbers), then `previous_hash` and `hash`.
pub fn export_object<S: AsRef<str>>(
    log: Log,
    cells: &[S],
    previous_hash: &str,
    hash: &str,
) -> Map<String, Value> {
    let mut object = Map::new();
    for (name, cell) in log.columns().iter().zip(cells) {
        let cell = cell.as_ref();
        let value = match cell.parse::<u64>() {
            Ok(n) if matches!(*name, "sequence" | "rx_bytes" | "tx_bytes") => n.into(),
            _ => cell.into(),
        };
        object.insert((*name).into(), value);
    }
    object.insert("previous_hash".into(), previous_hash.into());
    object.insert("hash".into(), hash.into());
    object
}

/// A record as the feed carries it: [`export_object`] with `"log"`, as
/// one line of compact JSON.
pub fn record_json<S: AsRef<str>>(
    log: Log,
    cells: &[S],
    previous_hash: &str,
    hash: &str,
) -> String {
    // `"log"` first, whatever order the map keeps its keys in: the object
    // is never empty, so its text starts with `{"`.
    let rest = Value::Object(export_object(log, cells, previous_hash, hash)).to_string();
    format!("{{\"log\":\"{}\",{}", log_name(log), &rest[1..])
}

/// One RFC 5424 message (without framing): `<PRI>1 TIMESTAMP HOST
/// porta-controller - MSGID [porta@32473 …] JSON`. MSGID is the log;
/// the structured data carries `seq`, `hash` and the record's fields a
/// SIEM filters on; the MSG is [`record_json`]'s line. Connection events
/// are `info`, admin actions `notice`.
pub fn syslog_message(hostname: &str, at_iso: &str, json: &str) -> String {
    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let log = value["log"].as_str().and_then(log_of_name);
    let severity = if log == Some(Log::Admin) { 5 } else { 6 };
    let mut sd = format!("[{SD_ID}");
    let fields: &[&str] = match log {
        Some(Log::Admin) => &["log", "sequence", "hash", "action", "actor", "target"],
        _ => &[
            "log", "sequence", "hash", "kind", "user", "device", "gateway", "reason",
        ],
    };
    for field in fields {
        let text = match &value[*field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let name = if *field == "sequence" { "seq" } else { field };
        sd.push_str(&format!(" {name}=\"{}\"", sd_escape(&text)));
    }
    sd.push(']');
    format!(
        "<{}>1 {} {} porta-controller - {} {sd} {json}",
        FACILITY * 8 + severity,
        if at_iso.is_empty() { "-" } else { at_iso },
        header_field(hostname),
        log.map_or("-", log_name),
    )
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII without spaces, at most 255 bytes,
/// `-` when empty.
fn header_field(value: &str) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if field.is_empty() { "-".into() } else { field }
}

/// A record found in a line a collector wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// Which log.
    pub log: Log,
    /// Its sequence number.
    pub sequence: u64,
    /// The export line's object (without `"log"`).
    pub record: Map<String, Value>,
}

/// Finds the feed record in `line`: `Ok(None)` for a line that carries
/// none (a collector's own messages), an error for one that carries a
/// damaged record.
pub fn parse_line(line: &str) -> Result<Option<Received>, String> {
    let start = if line.trim_start().starts_with("{\"log\"") {
        line.len() - line.trim_start().len()
    } else {
        match line.find(" {\"log\"") {
            Some(at) => at + 1,
            None => return Ok(None),
        }
    };
    let mut object: Map<String, Value> = serde_json::from_str(line[start..].trim_end())
        .map_err(|e| format!("a damaged record ({e})"))?;
    let log = object
        .remove("log")
        .and_then(|name| name.as_str().and_then(log_of_name))
        .ok_or("a record of no known log")?;
    let sequence = object
        .get("sequence")
        .and_then(Value::as_u64)
        .ok_or("a record without a sequence number")?;
    Ok(Some(Received {
        log,
        sequence,
        record: object,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn admin_json() -> String {
        let cells = [
            "7",
            "2026-12-04T10:00:00Z",
            "maria \"admin\"",
            "10.1.0.5:5000",
            "device.revoke",
            "anna-laptop]",
            "{\"user\":\"anna\"}",
            "",
        ]
        .map(String::from)
        .to_vec();
        record_json(Log::Admin, &cells, "ab", "cd")
    }

    #[test]
    fn a_syslog_message_is_rfc5424_with_the_record_as_its_message() {
        let json = admin_json();
        let message = syslog_message("town hall", "2026-12-04T10:00:00Z", &json);
        assert!(
            message.starts_with("<85>1 2026-12-04T10:00:00Z townhall porta-controller - admin [porta@32473 log=\"admin\" seq=\"7\" hash=\"cd\" action=\"device.revoke\" actor=\"maria \\\"admin\\\"\" target=\"anna-laptop\\]\"] {\"log\""),
            "{message}"
        );
        assert!(message.ends_with(&json));
    }

    #[test]
    fn a_received_line_gives_back_the_export_object() {
        let json = admin_json();
        let message = syslog_message("town", "2026-12-04T10:00:00Z", &json);
        // As rsyslog's default file format writes it, as a raw message,
        // and as a JSON line.
        for line in [
            format!("2026-12-04T10:00:01+00:00 town porta-controller {json}"),
            message.clone(),
            json.clone(),
        ] {
            let received = parse_line(&line).unwrap().unwrap();
            assert_eq!(received.log, Log::Admin);
            assert_eq!(received.sequence, 7);
            assert_eq!(received.record["actor"], "maria \"admin\"");
            assert_eq!(received.record["hash"], "cd");
            assert!(!received.record.contains_key("log"));
        }
        assert_eq!(parse_line("rsyslogd: started").unwrap(), None);
        assert!(parse_line(&message[..message.len() - 3]).is_err());
    }
}
