//! The controller's operations, over the store: [`Controller`], the one
//! cloneable handle every API handler and the embedded gateway share
//! (store, settings, identity, change feed, the gateways' [`Fanout`]).
//!
//! Its methods take already-validated inputs and the current time (`now`,
//! Unix seconds) as arguments — they never read the clock — and return
//! typed [`Error`]s; the gRPC layer (`api`) does authentication, wire
//! validation and conversion around them. Every change runs in one store
//! transaction through the typed per-entity store functions
//! (`store::tables`) and, once durable, is announced on a watch channel so
//! that config streams and the peer journal react.
//!
//! # Layout
//! One module per entity, each an `impl Controller` block:
//! [`auth`] (who is calling), [`users`], [`groups`], [`enrollment`]
//! (tokens made and redeemed), [`devices`] (and the peer set gateways
//! hold), [`credentials`], [`gateways`]. This file holds the handle, its
//! write path, and its link to the fan-out.

mod auth;
mod credentials;
mod devices;
mod directory;
mod enrollment;
mod gateways;
mod groups;
mod invitation_mail;
mod users;

pub use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::fanout::Fanout;
pub use crate::fanout::GatewayAck;
use crate::settings::Settings;
use crate::store::records::*;
use crate::store::{Store, TxError, Txn, meta};
pub use devices::Owners;
pub use enrollment::DeviceEnrollment;
pub use porta_gateway::peer::GatewayPeer;
use porta_proto::{CertFingerprint, Invitation, pb};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The shared controller state: store, settings, identity, change feed.
#[derive(Clone)]
pub struct Controller {
    store: Store,
    settings: Arc<Settings>,
    fingerprint: CertFingerprint,
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// What every gateway should have, and what each confirmed.
    fanout: Fanout,
    /// Failed authentication by source address.
    auth_failures: Arc<Mutex<crate::guard::Ledger>>,
    /// Unix seconds this process started.
    started_at: u64,
    /// How long a gateway may be gone before its sessions are shown ended.
    session_idle: std::time::Duration,
    /// Sends invitations by e-mail, if `[smtp]` is configured.
    mailer: Option<Arc<crate::mail::Mailer>>,
    /// The SIEM feed's state, if `[feed]` is configured.
    feed: Option<crate::feed::deliver::FeedMonitor>,
    /// What each processed change touched, for config streams.
    config_changes: tokio::sync::broadcast::Sender<Arc<crate::store::Touched>>,
    /// What is counted for Prometheus (served only with --metrics-listen).
    metrics: Arc<crate::metrics::ControllerMetrics>,
}

impl Controller {
    /// Wraps an open, initialised store at `now`. `fingerprint` is the TLS
    /// certificate's, written into the invitations this controller issues.
    pub fn new(store: Store, fingerprint: CertFingerprint, now: u64) -> Result<Self> {
        let settings = store.settings()?.ok_or_else(|| {
            Error::FailedPrecondition(
                "the data directory is not initialised; run `porta-controller init`".into(),
            )
        })?;
        let revision = store.meta_u64(meta::REVISION)?;
        let mut ctl = Self {
            store,
            settings: Arc::new(settings),
            fingerprint,
            changes: watch::Sender::new(revision),
            shutdown: watch::Sender::new(false),
            fanout: Fanout::new(revision, Vec::new()),
            auth_failures: Arc::default(),
            started_at: now,
            session_idle: porta_gateway::DEFAULT_SESSION_IDLE,
            mailer: None,
            metrics: Arc::default(),
            feed: None,
            config_changes: tokio::sync::broadcast::Sender::new(1_024),
        };
        ctl.fanout = Fanout::new(revision, ctl.gateway_peers()?);
        Ok(ctl)
    }

    /// Sets the session idle threshold (`serve --session-idle`).
    pub fn with_session_idle(mut self, idle: std::time::Duration) -> Self {
        self.session_idle = idle;
        self
    }

    /// Sends invitations by e-mail through `mailer` (`[smtp]`).
    pub fn with_mailer(mut self, mailer: crate::mail::Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Sessions open now. A session whose gateway has been gone (not
    /// connected) for longer than the idle threshold is over, whether or
    /// not its end was ever reported, and is not listed.
    pub fn live_sessions(&self, now: u64) -> Result<Vec<crate::logs::OpenSession>> {
        let acks = self.fanout.acks();
        let idle = self.session_idle.as_secs();
        Ok(crate::logs::sessions(&self.store)?
            .into_iter()
            .filter(|session| match acks.get(&session.gateway) {
                Some(ack) if ack.connected => true,
                Some(ack) => ack.at + idle >= now,
                None => self.started_at + idle >= now,
            })
            .collect())
    }

    /// Failed authentication by source address (see [`crate::guard`]).
    pub fn auth_failures(&self) -> std::sync::MutexGuard<'_, crate::guard::Ledger> {
        self.auth_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reports the SIEM feed's state through `monitor` (`[feed]`).
    pub fn with_feed(mut self, monitor: crate::feed::deliver::FeedMonitor) -> Self {
        self.feed = Some(monitor);
        self
    }

    /// The SIEM feed's state, if there is a feed.
    pub fn feed(&self) -> Option<&crate::feed::deliver::FeedMonitor> {
        self.feed.as_ref()
    }

    /// What is counted for Prometheus.
    pub fn metrics(&self) -> &Arc<crate::metrics::ControllerMetrics> {
        &self.metrics
    }

    /// The settings chosen at init.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store, for the rare caller that needs raw reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The gateways' fan-out: peer updates and acknowledgements.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// A receiver that sees the revision after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// What each change touched, once the peer journal has it: config
    /// streams read their config again only when it concerns them.
    pub fn config_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::store::Touched>> {
        self.config_changes.subscribe()
    }

    /// A receiver that turns `true` when the controller shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells long-lived streams to end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Keeps the fan-out in step with the store until shutdown. After each
    /// change only the peers it touched are computed again (a device's, or
    /// every device of a touched user); a change to a group, a gateway or
    /// the settings, and the first round, compute the whole set.
    pub async fn run_peer_journal(self) {
        let mut changes = self.subscribe();
        let mut shutdown = self.shutdown_signal();
        // Live devices by user, from the last full computation.
        let mut owners: Option<HashMap<String, BTreeSet<String>>> = None;
        loop {
            // What changed, and the newest revision it covers (writes are
            // recorded in commit order, before their revision is announced).
            let announced = *changes.borrow_and_update();
            let mut touched = self.store.take_touched();
            let revision = announced.max(touched.revision);
            let outcome = match owners.as_mut() {
                Some(owners) if !touched.everything => {
                    self.feed_changes(revision, &touched, owners)
                }
                _ => {
                    // The first round, or a failure before: every config too.
                    touched.everything = true;
                    self.gateway_peers_and_owners().map(|(peers, by_user)| {
                        owners = Some(by_user);
                        self.fanout.advance(revision, peers);
                    })
                }
            };
            if let Err(error) = outcome {
                // Next time, everything again: nothing is lost.
                owners = None;
                tracing::error!(%error, "cannot read the peer set; gateways keep theirs");
            }
            if !touched.is_empty() {
                let _ = self.config_changes.send(Arc::new(touched));
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Feeds the journal the peers of the devices `touched` names and of
    /// every live device of the users it names, keeping `owners` current.
    fn feed_changes(
        &self,
        revision: u64,
        touched: &crate::store::Touched,
        owners: &mut HashMap<String, BTreeSet<String>>,
    ) -> Result<()> {
        for id in &touched.devices {
            match self.store.device(id)? {
                Some(device) if device.revoked_at.is_none() => {
                    owners.entry(device.user).or_default().insert(id.clone());
                }
                Some(device) => {
                    if let Some(ids) = owners.get_mut(&device.user) {
                        ids.remove(id);
                    }
                }
                None => owners.values_mut().for_each(|ids| {
                    ids.remove(id);
                }),
            }
        }
        let mut affected = touched.devices.clone();
        for user in &touched.users {
            affected.extend(owners.get(user).into_iter().flatten().cloned());
        }
        let changes = self.peers_of(&affected)?;
        self.fanout.apply(revision, changes);
        Ok(())
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Waits, at most `timeout`, until every gateway has applied
    /// `revision`: each registered remote gateway, and the embedded one if
    /// it runs. Returns the names of gateways that confirmed and of those
    /// that did not.
    pub async fn wait_for_gateways(
        &self,
        revision: u64,
        timeout: std::time::Duration,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let embedded_runs = self.fanout.acks().contains_key(&self.settings.gateway_name);
        let expected: Vec<String> = self
            .list_gateways()?
            .into_iter()
            .filter(|g| {
                if g.embedded {
                    embedded_runs
                } else {
                    g.public_key.is_some()
                }
            })
            .map(|g| g.name)
            .collect();
        Ok(self.fanout.wait_for(expected, revision, timeout).await)
    }

    /// Runs a write and announces the new revision.
    async fn write<R>(&self, change: impl Fn(&Txn<'_>) -> Result<R, TxError>) -> Result<R> {
        let (revision, result) = self.store.write(change).await?;
        self.changes.send_replace(revision);
        Ok(result)
    }

    fn invitation(&self, token: &str, kind: pb::InvitationKind) -> String {
        Invitation {
            controller: self.settings.api_endpoint.clone(),
            fingerprint: self.fingerprint,
            token: token.to_owned(),
            kind,
            organization: self.settings.organization.clone(),
        }
        .encode()
    }

    /// When an invitation made at `now` with `ttl_secs` (0: the default)
    /// expires.
    pub fn invitation_expiry(&self, now: u64, ttl_secs: u64) -> u64 {
        now + if ttl_secs == 0 {
            self.settings.token_ttl_secs
        } else {
            ttl_secs
        }
    }
}

/// A record as admin-log JSON.
fn json<V: serde::Serialize>(value: &V) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// A credential as admin-log JSON: never its secret's hash.
fn credential_json(c: &CredentialRecord) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "id": c.id, "name": c.name, "role": c.role.as_str(), "created_by": c.created_by,
        "client_name": c.client_name, "revoked_at": c.revoked_at, "pending": c.hash.is_none(),
    }))
}

/// An invitation as admin-log JSON: never its secret's hash.
fn invite_json(i: &InviteRecord) -> Option<serde_json::Value> {
    let mut value = serde_json::json!({
        "id": i.id, "created_by": i.created_by, "expires_at": i.expires_at, "redeemed_at": i.redeemed_at,
    });
    if let InvitePurpose::Device {
        user,
        device_name,
        gateway,
    } = &i.purpose
    {
        value["user"] = user.clone().into();
        value["device"] = device_name.clone().into();
        value["gateway"] = gateway.clone().into();
    }
    Some(value)
}
