//! logs export|verify|sessions|feed: [`export`], [`verify`], [`feed`],
//! and the open sessions here.
//!
//! Exports are streamed from the controller to the file row by row (memory
//! stays flat for millions of rows). Every exported cell is exactly what
//! the record's hash covers (see `porta_proto::audit`), so an export can be
//! verified offline; CSV cells that a spreadsheet would run as a formula
//! get a leading `'`, which verification removes again.

mod export;
mod feed;
mod verify;

use super::Ctx;
use crate::args::{FeedCommand, LogsCommand};
use crate::output::{self, Listing};
use anyhow::Result;
use export::export;
use porta_proto::pb;
use porta_proto::pb::audit_client::AuditClient;
use serde_json::json;
use verify::{verify_controller, verify_file};

/// The byte-order mark spreadsheets want before UTF-8 CSV.
pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) async fn run(ctx: &Ctx, command: LogsCommand) -> Result<()> {
    match command {
        LogsCommand::Export {
            kind,
            from,
            to,
            user,
            device,
            format,
            out,
        } => {
            let request = pb::ExportRequest {
                from: from.unwrap_or(0),
                to: to.unwrap_or(0),
                user: user.unwrap_or_default(),
                device: device.unwrap_or_default(),
            };
            export(ctx, kind, request, format, out).await
        }
        LogsCommand::Verify {
            kind,
            file: Some(file),
            partial,
            ..
        } => {
            let _ = kind;
            verify_file(ctx, &file, partial)
        }
        LogsCommand::Verify {
            kind,
            file: None,
            accept_rollback,
            ..
        } => verify_controller(ctx, kind, accept_rollback).await,
        LogsCommand::Sessions => sessions(ctx).await,
        LogsCommand::Feed(FeedCommand::Status) => feed::status(ctx).await,
        LogsCommand::Feed(FeedCommand::Extract { files, kind, out }) => {
            feed::extract(&files, export::log_of(kind), out.as_deref())
        }
    }
}

async fn sessions(ctx: &Ctx) -> Result<()> {
    let mut audit = AuditClient::new(ctx.channel().await?);
    let sessions = audit
        .list_sessions(pb::ListSessionsRequest {})
        .await?
        .into_inner()
        .sessions;
    Listing {
        headers: &[
            "user",
            "device",
            "tunnel address",
            "from",
            "gateway",
            "since",
        ],
        rows: sessions
            .iter()
            .map(|s| {
                vec![
                    s.user.clone(),
                    s.device.clone(),
                    s.tunnel_address.clone(),
                    s.public_address.clone(),
                    s.gateway.clone(),
                    output::time(s.since),
                ]
            })
            .collect(),
        json: sessions
            .iter()
            .map(|s| {
                json!({"user": s.user, "device": s.device, "tunnel_address": s.tunnel_address,
                       "public_address": s.public_address, "gateway": s.gateway,
                       "since": output::time_json(s.since)})
            })
            .collect(),
    }
    .print(ctx.json);
    Ok(())
}
