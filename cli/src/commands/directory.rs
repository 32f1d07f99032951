//! directory status|sync.

use super::Ctx;
use crate::args::DirectoryCommand;
use crate::error::SyncRefused;
use crate::output::{self, Listing};
use anyhow::Result;
use porta_proto::pb::{self, directory_client::DirectoryClient};
use serde_json::{Value, json};

pub(super) async fn run(ctx: &Ctx, command: DirectoryCommand) -> Result<()> {
    let mut directory = DirectoryClient::new(ctx.channel().await?);
    match command {
        DirectoryCommand::Status => {
            let status = directory
                .get_directory_status(pb::GetDirectoryStatusRequest {})
                .await?
                .into_inner();
            if ctx.json {
                println!("{}", status_json(&status));
                return Ok(());
            }
            println!("directory:     {} ({})", status.url, status.preset);
            println!(
                "interval:      {}",
                porta_proto::terminal::duration(std::time::Duration::from_secs(
                    status.interval_seconds
                ))
            );
            println!(
                "threshold:     at most {:.0}% of synced users disabled per sync",
                status.max_disable_fraction * 100.0
            );
            for mapping in &status.mapped_groups {
                println!("group:         {mapping}");
            }
            let result = if status.last_result.is_empty() {
                "(no sync yet)"
            } else {
                status.last_result.as_str()
            };
            println!(
                "last sync:     {} at {}",
                result,
                output::time(status.last_attempt_at)
            );
            println!("last success:  {}", output::time(status.last_success_at));
            if !status.last_error.is_empty() {
                println!("error:         {}", status.last_error);
            }
            if let Some(plan) = &status.last_plan {
                println!();
                print_plan(plan);
            }
        }
        DirectoryCommand::Sync { dry_run, force } => {
            let outcome = directory
                .sync_directory(pb::SyncDirectoryRequest { dry_run, force })
                .await?
                .into_inner();
            let plan = outcome.plan.clone().unwrap_or_default();
            if ctx.json {
                let mut value = plan_json(&plan);
                value["applied"] = outcome.applied.into();
                value["refused"] = outcome.refused.clone().into();
                value["confirmed_gateways"] = outcome.confirmed_gateways.clone().into();
                value["pending_gateways"] = outcome.pending_gateways.clone().into();
                value["invited"] = outcome.invited.clone().into();
                println!("{value}");
            } else {
                print_plan(&plan);
                if outcome.applied {
                    println!("Applied {} change(s).", plan.changes.len());
                    if !outcome.invited.is_empty() {
                        println!("Invitations e-mailed to: {}", outcome.invited.join(", "));
                    }
                    if !outcome.confirmed_gateways.is_empty() {
                        println!(
                            "Confirmed by gateways: {}",
                            outcome.confirmed_gateways.join(", ")
                        );
                    }
                    if !outcome.pending_gateways.is_empty() {
                        println!(
                            "Not yet confirmed by: {} (they apply it when they reconnect)",
                            outcome.pending_gateways.join(", ")
                        );
                    }
                } else if dry_run {
                    println!("Dry run: nothing was changed.");
                } else if plan.changes.is_empty() && outcome.refused.is_empty() {
                    println!("Porta already follows the directory.");
                }
            }
            if !outcome.refused.is_empty() {
                return Err(SyncRefused(outcome.refused).into());
            }
        }
    }
    Ok(())
}

fn print_plan(plan: &pb::DirectoryPlan) {
    println!(
        "{} directory entries, {} synced users; {} change(s), disabling {:.0}% of synced users",
        plan.directory_entries,
        plan.synced_users,
        plan.changes.len(),
        plan.disable_fraction * 100.0
    );
    Listing {
        headers: &["user", "action", "groups added", "groups removed", "reason"],
        rows: plan
            .changes
            .iter()
            .map(|c| {
                vec![
                    c.user.clone(),
                    c.action.clone(),
                    c.groups_added.join(", "),
                    c.groups_removed.join(", "),
                    c.reason.clone(),
                ]
            })
            .collect(),
        json: Vec::new(),
    }
    .print(false);
    for skipped in &plan.skipped {
        println!("skipped: {skipped}");
    }
}

fn plan_json(plan: &pb::DirectoryPlan) -> Value {
    json!({
        "directory_entries": plan.directory_entries,
        "synced_users": plan.synced_users,
        "disable_fraction": plan.disable_fraction,
        "changes": plan.changes.iter().map(|c| json!({
            "user": c.user, "action": c.action, "display_name": c.display_name,
            "email": c.email, "groups_added": c.groups_added,
            "groups_removed": c.groups_removed, "reason": c.reason,
            "directory_dn": c.directory_dn,
        })).collect::<Vec<_>>(),
        "skipped": plan.skipped,
    })
}

fn status_json(s: &pb::DirectoryStatus) -> Value {
    json!({
        "url": s.url, "preset": s.preset, "interval_seconds": s.interval_seconds,
        "max_disable_fraction": s.max_disable_fraction, "mapped_groups": s.mapped_groups,
        "last_attempt_at": output::time_json(s.last_attempt_at),
        "last_success_at": output::time_json(s.last_success_at),
        "last_result": s.last_result, "last_error": s.last_error,
        "last_plan": s.last_plan.as_ref().map(plan_json),
    })
}
