//! The gateway embedded in `porta-controller serve`.
//!
//! It uses the controller's gateway key (`gateway.key` in the data
//! directory), follows the peer journal in-process, confirms each revision
//! it applied so that `RevokeDevice` can report it, and records its
//! connection events in the controller's log directly.

use super::{InstalledPeers, OBSERVE_EVERY, SessionFile, start_shell};
use crate::api::now;
use crate::logs;
use crate::state::Controller;
use crate::store::records::GatewayRecord;
use anyhow::{Context, Result};
use porta_tunnel::keys::PrivateKey;
use std::path::Path;

/// How the embedded gateway is set up.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// TUN interface name.
    pub interface: String,
    /// A session ends after this long without traffic.
    pub session_idle: std::time::Duration,
}

/// Starts the gateway and a task that keeps its peers in step with the
/// journal until the controller shuts down.
pub fn start(
    ctl: Controller,
    data: &Path,
    options: &GatewayOptions,
) -> Result<tokio::task::JoinHandle<()>> {
    let key_path = data.join("gateway.key");
    let key_text = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let key = PrivateKey::from_base64(&key_text)
        .with_context(|| format!("{} is damaged", key_path.display()))?;
    let settings = ctl.settings().clone();
    let port = settings
        .wg_endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .context("the WireGuard endpoint in the settings has no port")?;
    let shell = start_shell(
        &key,
        &options.interface,
        settings.gateway_addresses(),
        settings.mtu,
        port,
        options.session_idle,
    )
    .context(
        "starting the embedded gateway (run as root, or pass --no-gateway to serve the API only)",
    )?;
    tracing::info!(interface = %options.interface, port, "embedded gateway up");

    let name = settings.gateway_name.clone();
    let this_gateway = ctl
        .list_gateways()?
        .into_iter()
        .find(|g| g.embedded)
        .context("the store has no record of the embedded gateway")?;
    let mut revisions = ctl.peer_revisions();
    let mut shutdown = ctl.shutdown_signal();
    let (mut session_file, left_open) = SessionFile::open(data)?;
    Ok(tokio::spawn(async move {
        // Sessions a killed run left open end first.
        if let Err(error) = logs::record_events(ctl.store(), &this_gateway, &left_open, now()).await
        {
            tracing::error!(%error, sessions = left_open.len(), "could not end the sessions the last run left open");
        }
        let mut installed = InstalledPeers::default();
        let mut applied = 0;
        let mut observe = tokio::time::interval(OBSERVE_EVERY);
        loop {
            revisions.mark_unchanged();
            let updates = ctl.peer_updates(&name, applied);
            {
                let mut node = shell.node();
                installed.observe(&mut node, now());
                for update in updates {
                    if let Some(end) = installed.apply(&mut node, update, now()) {
                        applied = end;
                        ctl.gateway_applied(&name, applied, now());
                    }
                }
            }
            record(&ctl, &this_gateway, &mut installed).await;
            if let Err(error) = session_file.save(installed.open_sessions(&shell.node())) {
                tracing::error!(error = %format!("{error:#}"), "could not save the open sessions");
            }
            tokio::select! {
                changed = revisions.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
                _ = observe.tick() => {}
            }
        }
        installed.shutdown(&mut shell.node(), now());
        record(&ctl, &this_gateway, &mut installed).await;
        if let Err(error) = session_file.save(Vec::new()) {
            tracing::error!(error = %format!("{error:#}"), "could not save the open sessions");
        }
        drop(shell);
        tracing::info!("embedded gateway stopped");
    }))
}

/// Records the connection events `installed` produced.
async fn record(ctl: &Controller, gateway: &GatewayRecord, installed: &mut InstalledPeers) {
    let events = installed.take_events();
    if events.is_empty() {
        return;
    }
    if let Err(error) = logs::record_events(ctl.store(), gateway, &events, now()).await {
        tracing::error!(%error, lost = events.len(), "could not record connection events");
    }
}
