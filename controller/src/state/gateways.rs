//! Gateways: the embedded one and remote ones — recorded, listed with
//! what they confirmed, registered (a remote gateway's own key), removed.
use super::{Caller, Controller, json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::store::records::*;
use porta_proto::PublicKey;

impl Controller {
    /// Warnings for a destination that contains this controller's own
    /// addresses (the API and every gateway endpoint given as an IP
    /// address): clients keep those outside the tunnel.
    pub fn own_addresses_in(&self, cidr: &ipnet::IpNet) -> Result<Vec<String>> {
        let settings = self.settings();
        let mut endpoints = vec![(
            "the controller's API".to_owned(),
            settings.api_endpoint.clone(),
        )];
        for gateway in self.list_gateways()? {
            endpoints.push((format!("gateway {:?}", gateway.name), gateway.endpoint));
        }
        Ok(endpoints
            .into_iter()
            .filter_map(|(what, endpoint)| {
                let address: std::net::SocketAddr = endpoint.parse().ok()?;
                cidr.contains(&address.ip()).then(|| {
                    format!(
                        "{cidr} contains {what} ({endpoint}); laptops keep that address outside \
                         the tunnel, so it is not reached through it"
                    )
                })
            })
            .collect())
    }

    /// Known gateways, with what they confirmed since this process started.
    pub fn list_gateways(&self) -> Result<Vec<GatewayRecord>> {
        let mut gateways = self.store.gateways()?;
        let acks = self.fanout.acks();
        for gateway in &mut gateways {
            if let Some(ack) = acks.get(&gateway.name) {
                gateway.applied_revision = ack.revision;
                gateway.last_seen_at = ack.at;
            }
        }
        gateways.sort_by(|a, b| b.embedded.cmp(&a.embedded).then(a.name.cmp(&b.name)));
        Ok(gateways)
    }

    /// Records a remote gateway and creates its gateway credential, returned
    /// as a one-time gateway invitation.
    pub async fn create_gateway(
        &self,
        actor: &Actor,
        name: &str,
        endpoint: &str,
        ttl_secs: u64,
        now: u64,
    ) -> Result<(GatewayRecord, String)> {
        if self.list_gateways()?.iter().any(|g| g.name == name) {
            return Err(Error::AlreadyExists(format!(
                "a gateway named {name:?} exists already"
            )));
        }
        let (credential, invitation) = self
            .create_api_credential(actor, name, Role::Gateway, ttl_secs, now)
            .await?;
        let gateway = GatewayRecord::new(name, endpoint, false, Some(credential.id));
        self.write(|t| {
            if t.gateway(&gateway.id)?.is_some() {
                return Err(Error::AlreadyExists("gateway id collision".into()).into());
            }
            t.put_gateway(&gateway)?;
            log_admin(t, actor, "gateway.create", name, None, json(&gateway), now)
        })
        .await?;
        tracing::info!(
            gateway = name,
            endpoint,
            by = %actor.name,
            "remote gateway created"
        );
        Ok((gateway, invitation))
    }

    /// The gateway called `name`.
    pub(super) fn gateway_named(&self, name: &str) -> Result<GatewayRecord> {
        self.list_gateways()?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| Error::not_found("gateway", name))
    }

    /// Retires a remote gateway: its record goes, its credential is revoked
    /// (so its streams and calls fail from now on). Refused for the
    /// embedded gateway and while live devices are assigned to it.
    pub async fn remove_gateway(
        &self,
        actor: &Actor,
        name: &str,
        now: u64,
    ) -> Result<GatewayRecord> {
        let gateway = self.gateway_named(name)?;
        if gateway.embedded {
            return Err(Error::FailedPrecondition(
                "the embedded gateway is part of the controller; run serve with --no-gateway instead".into(),
            ));
        }
        let assigned = self
            .list_devices(None, false)?
            .into_iter()
            .filter(|d| d.gateway.as_deref() == Some(name))
            .count();
        if assigned > 0 {
            return Err(Error::FailedPrecondition(format!(
                "{assigned} live device(s) connect through {name:?}; revoke them first"
            )));
        }
        self.write(|t| {
            t.remove_gateway(&gateway.id)?;
            if let Some(id) = &gateway.credential_id {
                t.revoke_credential(id, now)?;
            }
            log_admin(t, actor, "gateway.remove", name, json(&gateway), None, now)
        })
        .await?;
        tracing::info!(gateway = name, by = %actor.name, "remote gateway removed");
        Ok(gateway)
    }

    /// The remote gateway a gateway-role caller speaks for.
    pub fn gateway_of(&self, caller: &Caller) -> Result<GatewayRecord> {
        self.store
            .gateways()?
            .into_iter()
            .find(|g| g.credential_id.as_deref() == Some(caller.credential_id.as_str()))
            .ok_or_else(|| Error::PermissionDenied("this credential belongs to no gateway".into()))
    }

    /// A remote gateway announces the public key it generated.
    pub async fn register_gateway(
        &self,
        caller: &Caller,
        public_key: PublicKey,
        now: u64,
    ) -> Result<GatewayRecord> {
        let gateway = self.gateway_of(caller)?;
        let in_use = || {
            Error::AlreadyExists(
                "this WireGuard public key is already in use; generate a new key".into(),
            )
        };
        if self
            .list_gateways()?
            .iter()
            .any(|g| g.id != gateway.id && g.public_key == Some(public_key))
        {
            return Err(in_use());
        }
        let registered = self
            .write(|t| {
                if t.device_key_known(&public_key)? {
                    return Err(in_use().into());
                }
                let mut current = t
                    .gateway(&gateway.id)?
                    .ok_or_else(|| Error::not_found("gateway", gateway.name.clone()))?;
                let before = json(&current);
                current.public_key = Some(public_key);
                t.put_gateway(&current)?;
                log_admin(
                    t,
                    &caller.into(),
                    "gateway.register",
                    &current.name,
                    before,
                    json(&current),
                    now,
                )?;
                Ok(current)
            })
            .await?;
        tracing::info!(gateway = %registered.name, "remote gateway registered its key");
        Ok(registered)
    }

    /// Fails unless `name` is a remote gateway that has registered its key
    /// (devices need that key in their configuration).
    pub(super) fn remote_gateway_ready(&self, name: &str) -> Result<()> {
        let gateway = self.gateway_named(name)?;
        if gateway.public_key.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "the gateway {name:?} has not connected yet; start it with \
                 `porta-gateway --controller <invitation>` first"
            )));
        }
        Ok(())
    }

    /// Those of `names` that are not following this controller.
    pub fn not_following(&self, names: &[String]) -> Result<Vec<String>> {
        Ok(self
            .store
            .gateways()?
            .into_iter()
            .filter(|g| g.diverged.is_some() && names.contains(&g.name))
            .map(|g| g.name)
            .collect())
    }

    /// A remote gateway claimed a peer set of another history of this
    /// store: remembered (in its record, so a restart does not forget),
    /// put on the admin log once, and returned to be said.
    pub async fn gateway_diverged(
        &self,
        gateway: &GatewayRecord,
        held_revision: u64,
        now: u64,
    ) -> Result<Divergence> {
        if let Some(known) = &gateway.diverged {
            return Ok(known.clone());
        }
        let divergence = Divergence {
            held_revision,
            controller_revision: self.revision(),
            since: now,
        };
        self.change_gateway(
            &Actor::system("controller"),
            "gateway.diverged",
            gateway,
            now,
            |g| {
                g.diverged = Some(divergence.clone());
            },
        )
        .await?;
        tracing::error!(
            gateway = %gateway.name,
            held_revision,
            controller_revision = divergence.controller_revision,
            "a gateway holds a peer set of another history of this store (it applied changes a \
             restore undid); it is NOT following and may serve revoked devices until an admin \
             runs `portactl gateways resync`"
        );
        Ok(divergence)
    }

    /// The gateway applied a revision of this history: a divergence or a
    /// pending resync is over.
    pub async fn gateway_follows(&self, gateway: &GatewayRecord, now: u64) -> Result<()> {
        if gateway.diverged.is_none() && !gateway.resync {
            return Ok(());
        }
        self.change_gateway(
            &Actor::system("controller"),
            "gateway.follows",
            gateway,
            now,
            |g| {
                g.diverged = None;
                g.resync = false;
            },
        )
        .await?;
        tracing::info!(gateway = %gateway.name, "the gateway follows this controller's history again");
        Ok(())
    }

    /// An admin's decision that the gateway `name`, not following, takes
    /// this controller's peer set as it is at its next connection.
    pub async fn resync_gateway(
        &self,
        actor: &Actor,
        name: &str,
        now: u64,
    ) -> Result<GatewayRecord> {
        let gateway = self.gateway_named(name)?;
        if gateway.diverged.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "the gateway {name:?} follows this controller; there is nothing to resync"
            )));
        }
        let changed = self
            .change_gateway(actor, "gateway.resync", &gateway, now, |g| g.resync = true)
            .await?;
        tracing::warn!(gateway = name, by = %actor.name, "gateway resync decided: it takes this controller's peer set at its next connection");
        Ok(changed)
    }

    /// Changes the stored record of `gateway` with `edit` and logs it as
    /// `action`; the configuration revision stays (no peer changes).
    async fn change_gateway(
        &self,
        actor: &Actor,
        action: &str,
        gateway: &GatewayRecord,
        now: u64,
        edit: impl Fn(&mut GatewayRecord),
    ) -> Result<GatewayRecord> {
        self.store
            .append(|t| {
                let mut current = t
                    .gateway(&gateway.id)?
                    .ok_or_else(|| Error::not_found("gateway", gateway.name.clone()))?;
                let before = json(&current);
                edit(&mut current);
                t.put_gateway(&current)?;
                log_admin(t, actor, action, &current.name, before, json(&current), now)?;
                Ok(current)
            })
            .await
    }
}
