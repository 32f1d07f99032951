//! Directory: the sync's status and an admin's "sync now". Admins only.

use super::auth::{ADMIN, authorize};
use crate::directory::Preset;
use crate::directory::plan::Plan;
use crate::directory::sync::{DirectorySync, Mode};
use crate::error::Error;
use crate::logs::Actor;
use crate::state::Controller;
use porta_proto::pb::{self, directory_server::Directory};
use tonic::{Request, Response, Status};

/// The Directory service; `sync` is `None` when the config has no
/// `[directory]` section.
pub struct DirectoryApi {
    pub(super) ctl: Controller,
    pub(super) sync: Option<DirectorySync>,
}

type Reply<T> = Result<Response<T>, Status>;

impl DirectoryApi {
    fn sync(&self) -> Result<&DirectorySync, Error> {
        self.sync.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(
                "this controller follows no directory: its config file has no [directory] section"
                    .into(),
            )
        })
    }
}

impl From<&Plan> for pb::DirectoryPlan {
    fn from(plan: &Plan) -> Self {
        pb::DirectoryPlan {
            changes: plan
                .changes
                .iter()
                .map(|c| pb::DirectoryChange {
                    user: c.user().to_owned(),
                    action: c.action.as_str().to_owned(),
                    display_name: c.after.display_name.clone(),
                    email: c.after.email.clone(),
                    groups_added: c.groups_added(),
                    groups_removed: c.groups_removed(),
                    reason: c.reason.clone(),
                    directory_dn: c
                        .after
                        .directory
                        .as_ref()
                        .map(|d| d.dn.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            synced_users: plan.synced_users as u64,
            directory_entries: plan.directory_entries as u64,
            skipped: plan
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.dn, s.reason))
                .collect(),
            disable_fraction: plan.disable_fraction(),
        }
    }
}

#[tonic::async_trait]
impl Directory for DirectoryApi {
    async fn get_directory_status(
        &self,
        request: Request<pb::GetDirectoryStatusRequest>,
    ) -> Reply<pb::DirectoryStatus> {
        authorize(&self.ctl, &request, "see the directory sync", ADMIN)?;
        let sync = self.sync()?;
        let dir = sync.directory();
        let status = sync.status();
        Ok(Response::new(pb::DirectoryStatus {
            url: dir.url.clone(),
            preset: match dir.preset {
                Preset::ActiveDirectory => "active-directory",
                Preset::Openldap => "openldap",
            }
            .into(),
            interval_seconds: dir.interval.as_secs(),
            max_disable_fraction: dir.max_disable_fraction,
            mapped_groups: dir
                .groups
                .iter()
                .map(|(dn, group)| format!("{dn} = {group}"))
                .collect(),
            last_attempt_at: status.last_attempt_at,
            last_success_at: status.last_success_at,
            last_result: status.result,
            last_error: status.error,
            last_plan: status.plan.as_ref().map(pb::DirectoryPlan::from),
        }))
    }

    async fn sync_directory(
        &self,
        request: Request<pb::SyncDirectoryRequest>,
    ) -> Reply<pb::SyncDirectoryResponse> {
        let caller = authorize(&self.ctl, &request, "sync the directory", ADMIN)?;
        let r = request.into_inner();
        let sync = self.sync()?;
        let outcome = sync
            .run(Mode {
                dry_run: r.dry_run,
                force: r.force,
            })
            .await?;
        if outcome.forced {
            let reason = format!(
                "{} applied a sync disabling {} of {} synced users over the threshold",
                caller.name,
                outcome.plan.disables(),
                outcome.plan.synced_users
            );
            self.ctl
                .log_directory_outcome(
                    &Actor::from(&caller),
                    "directory.sync.forced",
                    &reason,
                    super::now(),
                )
                .await?;
        }
        tracing::info!(
            by = %caller.name,
            dry_run = r.dry_run,
            force = r.force,
            applied = outcome.applied,
            changes = outcome.plan.changes.len(),
            "directory sync requested"
        );
        Ok(Response::new(pb::SyncDirectoryResponse {
            plan: Some(pb::DirectoryPlan::from(&outcome.plan)),
            applied: outcome.applied,
            refused: outcome.refused.unwrap_or_default(),
            confirmed_gateways: outcome.confirmed_gateways,
            pending_gateways: outcome.pending_gateways,
            invited: outcome.invited,
        }))
    }
}
