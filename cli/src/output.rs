//! How results are shown: aligned columns for people (like `wg show` and
//! `ip`), JSON for scripts. Every listing goes through [`Listing`] so that
//! both forms always carry the same rows.

use porta_proto::pb;
use serde_json::{Value, json};

/// Rows for people and for scripts.
pub struct Listing {
    /// Column headers.
    pub headers: &'static [&'static str],
    /// Table cells, one Vec per row.
    pub rows: Vec<Vec<String>>,
    /// The same rows as JSON objects.
    pub json: Vec<Value>,
}

impl Listing {
    /// Prints the table or, with `json`, a JSON array.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", Value::Array(self.json.clone()));
            return;
        }
        if self.rows.is_empty() {
            println!("(none)");
            return;
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        if let Some(width) = table_width() {
            // Long cells wrap inside their column instead of pushing the
            // line past the edge.
            table
                .set_width(width)
                .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        }
        table.set_header(self.headers.iter().map(|h| h.to_uppercase()));
        // The first column is the name people copy into the next command:
        // never wrapped.
        if let Some(names) = table.column_mut(0) {
            names.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
        // Cells are shown escaped: a stored U+202E or zero-width character
        // must not make one name look like another.
        for row in &self.rows {
            table.add_row(
                row.iter()
                    .map(|cell| porta_proto::terminal::printable(cell)),
            );
        }
        for line in table.to_string().lines() {
            println!("{}", line.trim_end());
        }
    }
}

/// How wide a table may be: `COLUMNS` when set (as shells and `watch`
/// set it), else the terminal's width when stdout is one, else unlimited
/// (a pipe gets whole lines).
fn table_width() -> Option<u16> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(width, _)| width.0)
}

/// Prints `value` as JSON, or `text` for people.
pub fn show(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        for line in text().lines() {
            println!("{}", porta_proto::terminal::printable(line));
        }
    }
}

/// Unix seconds as RFC 3339 UTC, or "-" for 0.
pub fn time(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// A Unix time as JSON: an ISO 8601 UTC string, or null for "never".
pub fn time_json(unix: u64) -> Value {
    if unix == 0 {
        Value::Null
    } else {
        Value::String(time(unix))
    }
}

/// A role's lower-case name.
pub fn role(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Admin) => "admin",
        Ok(pb::Role::Auditor) => "auditor",
        Ok(pb::Role::Device) => "device",
        Ok(pb::Role::Gateway) => "gateway",
        _ => "unknown",
    }
}

/// A destination as people write it: `10.1.20.0/24 tcp 443,3389`.
pub fn destination(d: &pb::Destination) -> String {
    match d.protocol_and_ports() {
        what if what.is_empty() => d.cidr.clone(),
        what => format!("{} {what}", d.cidr),
    }
}

/// JSON for a user.
pub fn user_json(u: &pb::User) -> Value {
    json!({
        "name": u.name, "display_name": u.display_name, "email": u.email,
        "disabled": u.disabled, "groups": u.groups, "created_at": time_json(u.created_at),
        "language": u.language, "directory_dn": u.directory_dn,
        "suspended_by_directory": u.suspended_by_directory,
    })
}

/// JSON for a group.
pub fn group_json(g: &pb::Group) -> Value {
    json!({
        "name": g.name, "description": g.description, "members": g.members,
        "destinations": g.destinations.iter().map(destination).collect::<Vec<_>>(),
        "created_at": time_json(g.created_at),
    })
}

/// JSON for a device.
pub fn device_json(d: &pb::DeviceInfo) -> Value {
    json!({
        "id": d.id, "name": d.name, "user": d.user, "public_key": d.public_key,
        "addresses": d.addresses, "hostname": d.hostname, "os": d.os,
        "enrolled_at": time_json(d.enrolled_at), "last_seen_at": time_json(d.last_seen_at),
        "revoked": d.revoked, "revoked_at": time_json(d.revoked_at), "revoked_by": d.revoked_by,
        "client_version": d.client_version, "gateway": d.gateway,
        "last_handshake_at": time_json(d.last_handshake_at),
        "reach": d.reach.iter().map(|r| json!({
            "destination": r.destination.as_ref().map(destination).unwrap_or_default(),
            "because": r.because,
            "covered_by": (!r.covered_by.is_empty()).then_some(&r.covered_by),
        })).collect::<Vec<_>>(),
    })
}

/// JSON for an enrollment token (never the secret: the controller does
/// not have it).
pub fn token_json(t: &pb::EnrollmentToken) -> Value {
    json!({
        "id": t.id, "user": t.user, "device": t.device_name, "created_by": t.created_by,
        "created_at": time_json(t.created_at), "expires_at": time_json(t.expires_at),
        "email_to": t.email_to, "emailed_at": time_json(t.emailed_at), "email_error": t.email_error,
    })
}

/// JSON for an API credential.
pub fn credential_json(c: &pb::ApiCredential) -> Value {
    json!({
        "id": c.id, "name": c.name, "role": role(c.role), "pending": c.pending, "revoked": c.revoked,
        "created_by": c.created_by, "created_at": time_json(c.created_at), "client_name": c.client_name,
    })
}
