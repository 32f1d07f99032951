//! The sync's shell: read the directory, plan, check the threshold, apply,
//! wait for the gateways; every interval, and when an admin asks.
//!
//! A sync that fails (directory unreachable, bind refused, a mapped group
//! missing) or is refused (over the threshold) changes nothing; the
//! controller's log says why each time, the admin log when the reason is
//! new (so an outage of a day is one record, not 288). `status()` is what
//! `portactl directory status` shows.

use super::Directory;
use super::plan::{self, Plan};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::state::Controller;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a sync that disabled users waits for the gateways.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How a sync was asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// Plan only.
    pub dry_run: bool,
    /// Apply even over the threshold (a human looked at the plan).
    pub force: bool,
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What it found to change.
    pub plan: Plan,
    /// Whether the changes are in the store.
    pub applied: bool,
    /// Why it was not applied, when refused by the threshold.
    pub refused: Option<String>,
    /// It crossed the threshold and `force` applied it anyway.
    pub forced: bool,
    /// New users whose first invitation was e-mailed (`auto_invite`).
    pub invited: Vec<String>,
    /// Gateways that confirmed the change.
    pub confirmed_gateways: Vec<String>,
    /// Gateways that had not confirmed within the wait.
    pub pending_gateways: Vec<String>,
}

/// The last syncs, for `portactl directory status`.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Unix seconds of the last sync that ran (not dry runs).
    pub last_attempt_at: u64,
    /// Unix seconds of the last sync that completed (applied or nothing to
    /// do).
    pub last_success_at: u64,
    /// "applied", "no changes", "refused" or "failed".
    pub result: String,
    /// Why the last sync failed or was refused.
    pub error: String,
    /// The last plan made (applied or refused).
    pub plan: Option<Plan>,
}

/// The directory sync of one controller. Cheap to clone.
#[derive(Clone)]
pub struct DirectorySync {
    dir: Arc<Directory>,
    ctl: Controller,
    status: Arc<Mutex<Status>>,
    /// One sync at a time.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl DirectorySync {
    /// A sync of `ctl`'s users with `dir`.
    pub fn new(dir: Directory, ctl: Controller) -> Self {
        Self {
            dir: Arc::new(dir),
            ctl,
            status: Arc::default(),
            running: Arc::default(),
        }
    }

    /// The checked config.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The last syncs.
    pub fn status(&self) -> Status {
        self.lock_status().clone()
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The actor the admin log names for the directory's changes.
    fn actor(&self) -> Actor {
        Actor {
            name: "directory".into(),
            address: self.dir.host.clone(),
        }
    }

    /// Syncs now at the start, then every interval, until shutdown.
    pub async fn run_every_interval(self) {
        let mut every = tokio::time::interval(self.dir.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.ctl.shutdown_signal();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Failures are in the status and the logs already.
            let _ = self.run(Mode::default()).await;
        }
    }

    /// One sync. Errors are failures (nothing changed); a refusal is an
    /// `Ok` outcome with `refused` set.
    pub async fn run(&self, mode: Mode) -> Result<Outcome> {
        let _one_at_a_time = self.running.lock().await;
        let now = crate::clock::now();
        let outcome = self.plan_and_apply(mode, now).await;
        if mode.dry_run {
            return outcome;
        }
        let (result, error) = match &outcome {
            Ok(o) if o.refused.is_some() => ("refused", o.refused.clone().unwrap_or_default()),
            Ok(o) if o.applied => ("applied", String::new()),
            Ok(_) => ("no changes", String::new()),
            Err(e) => ("failed", e.to_string()),
        };
        let new_reason = {
            let mut status = self.lock_status();
            let new_reason =
                !error.is_empty() && (status.result != result || status.error != error);
            status.last_attempt_at = now;
            if error.is_empty() {
                status.last_success_at = now;
            }
            status.result = result.into();
            status.error = error.clone();
            if let Ok(o) = &outcome {
                status.plan = Some(o.plan.clone());
            }
            new_reason
        };
        match &outcome {
            Ok(o) if o.applied => tracing::info!(
                changes = o.plan.changes.len(),
                disabled = o.plan.disables(),
                confirmed = ?o.confirmed_gateways,
                pending = ?o.pending_gateways,
                "directory sync applied"
            ),
            Ok(_) if error.is_empty() => tracing::debug!("directory sync: nothing to change"),
            _ => tracing::warn!(result, reason = %error, "directory sync changed nothing"),
        }
        if new_reason {
            let action = format!("directory.sync.{result}");
            if let Err(e) = self
                .ctl
                .log_directory_outcome(&self.actor(), &action, &error, now)
                .await
            {
                tracing::error!(error = %e, "cannot record the directory sync's outcome");
            }
        }
        outcome
    }

    /// E-mails each user the plan created an invitation for a first
    /// device, `<login>-laptop`; returns who got one. A failure is logged
    /// and recorded on the token (it stays valid, `portactl tokens resend`
    /// retries); it never undoes the sync.
    async fn invite_newcomers(&self, plan: &Plan, now: u64) -> Vec<String> {
        let mut invited = Vec::new();
        let actor = self.actor();
        let newcomers = plan
            .changes
            .iter()
            .filter(|c| c.action == plan::Action::Create && !c.after.email.is_empty());
        for change in newcomers {
            let user = change.user();
            let device = format!("{user}-laptop");
            let delivery = match self
                .ctl
                .create_enrollment_token(&actor, user, &device, None, 0, now)
                .await
            {
                Ok((token, invitation)) => {
                    self.ctl
                        .email_invitation(&actor, &token, &invitation, now)
                        .await
                }
                Err(error) => Err(error),
            };
            match delivery {
                Ok(d) if d.sent => invited.push(user.to_owned()),
                Ok(d) => {
                    tracing::warn!(user, error = %d.error, "directory newcomer's invitation not e-mailed")
                }
                Err(error) => {
                    tracing::warn!(user, %error, "no invitation for a directory newcomer")
                }
            }
        }
        invited
    }

    async fn plan_and_apply(&self, mode: Mode, now: u64) -> Result<Outcome> {
        let mapped: BTreeSet<String> = self.dir.groups.values().cloned().collect();
        for (dn, group) in &self.dir.groups {
            if self.ctl.store().group(group)?.is_none() {
                return Err(Error::FailedPrecondition(format!(
                    "[directory.groups] maps {dn:?} to Porta group {group:?}, which does not \
                     exist; create it (`portactl groups create {group}`) or fix the mapping"
                )));
            }
        }
        let snapshot = super::ldap::read(&self.dir)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let users = self.ctl.list_users()?;
        let plan = plan::plan(&snapshot, &users, &mapped, now);
        let mut outcome = Outcome {
            refused: plan.refusal(self.dir.max_disable_fraction),
            plan,
            applied: false,
            forced: false,
            invited: Vec::new(),
            confirmed_gateways: Vec::new(),
            pending_gateways: Vec::new(),
        };
        if mode.force && outcome.refused.is_some() {
            outcome.refused = None;
            outcome.forced = true;
        }
        if mode.dry_run || outcome.refused.is_some() || outcome.plan.changes.is_empty() {
            return Ok(outcome);
        }
        let groups: Vec<String> = mapped.into_iter().collect();
        let revision = self
            .ctl
            .apply_directory_plan(&self.actor(), &outcome.plan, &groups, now)
            .await?;
        outcome.applied = true;
        if self.dir.auto_invite {
            outcome.invited = self.invite_newcomers(&outcome.plan, now).await;
        }
        if outcome.plan.disables() > 0 {
            let (confirmed, pending) = self
                .ctl
                .wait_for_gateways(revision, CONFIRM_TIMEOUT)
                .await?;
            outcome.confirmed_gateways = confirmed;
            outcome.pending_gateways = pending;
        }
        Ok(outcome)
    }
}
