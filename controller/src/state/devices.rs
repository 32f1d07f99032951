//! Devices: looked up, renamed, revoked; their status reports; the
//! config each should run; and the peer set every gateway should hold.
use super::{Controller, GatewayPeer, json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::names;
use crate::store::meta;
use crate::store::records::*;
use porta_proto::pb;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The live devices of each user, by id.
pub type Owners = HashMap<String, BTreeSet<String>>;

impl Controller {
    /// Devices, optionally one user's, optionally with revoked ones.
    pub fn list_devices(
        &self,
        user: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<DeviceRecord>> {
        let mut devices: Vec<DeviceRecord> = self
            .store
            .devices()?
            .into_iter()
            .filter(|d| user.is_none_or(|u| d.user == u))
            .filter(|d| include_revoked || d.revoked_at.is_none())
            .collect();
        devices.sort_by(|a, b| a.name.cmp(&b.name).then(a.enrolled_at.cmp(&b.enrolled_at)));
        Ok(devices)
    }

    pub(super) fn device_by_id(&self, id: &str) -> Result<DeviceRecord> {
        self.store
            .device(id)?
            .ok_or_else(|| Error::not_found("device", id))
    }

    /// A device by live name, by id, or by the name a revoked device had
    /// (the most recently revoked one of that name: its name is free for a
    /// new device, but an admin or auditor still looks it up by it).
    pub fn find_device(&self, name_or_id: &str) -> Result<DeviceRecord> {
        if let Some(id) = self.store.live_device_id(name_or_id)? {
            return self.device_by_id(&id);
        }
        if let Ok(device) = self.device_by_id(name_or_id) {
            return Ok(device);
        }
        self.list_devices(None, true)?
            .into_iter()
            .filter(|d| d.name == name_or_id && d.revoked_at.is_some())
            .max_by_key(|d| d.revoked_at)
            .ok_or_else(|| Error::not_found("device", name_or_id))
    }

    /// Renames a live device.
    pub async fn rename_device(
        &self,
        actor: &Actor,
        name_or_id: &str,
        new_name: &str,
        now: u64,
    ) -> Result<DeviceRecord> {
        let device = self.find_device(name_or_id)?;
        self.write(|t| {
            let mut current = t
                .device(&device.id)?
                .ok_or_else(|| Error::not_found("device", name_or_id))?;
            if current.revoked_at.is_some() {
                return Err(
                    Error::FailedPrecondition("a revoked device cannot be renamed".into()).into(),
                );
            }
            if current.name == new_name {
                return Ok(current);
            }
            if t.device_name_taken(new_name, now)? {
                return Err(Error::AlreadyExists(format!(
                    "a device or open token named {new_name:?} exists already"
                ))
                .into());
            }
            let before = json(&current);
            // Renamed first: the old name no longer counts as a lookalike.
            t.rename_device(&mut current, new_name)?;
            t.claim_name(names::Kind::Device, new_name, |t, holder| {
                t.device_name_taken(holder, now)
            })?;
            log_admin(
                t,
                actor,
                "device.rename",
                new_name,
                before,
                json(&current),
                now,
            )?;
            Ok(current)
        })
        .await
    }

    /// Revokes a device: its credential dies, its name is freed, its address
    /// enters quarantine, its key stays on record so it can never enroll
    /// again. Streams watching its config end at once.
    pub async fn revoke_device(
        &self,
        actor: &Actor,
        name_or_id: &str,
        now: u64,
    ) -> Result<DeviceRecord> {
        let device = self.find_device(name_or_id)?;
        let revoked = self
            .write(|t| {
                let mut current = t
                    .device(&device.id)?
                    .ok_or_else(|| Error::not_found("device", name_or_id))?;
                if current.revoked_at.is_some() {
                    return Err(Error::FailedPrecondition(format!(
                        "device {:?} is already revoked",
                        current.name
                    ))
                    .into());
                }
                let before = json(&current);
                t.revoke_device(&mut current, now, &actor.name)?;
                t.revoke_credential(&current.credential_id, now)?;
                log_admin(
                    t,
                    actor,
                    "device.revoke",
                    &current.name,
                    before,
                    json(&current),
                    now,
                )?;
                Ok(current)
            })
            .await?;
        tracing::info!(device = %revoked.name, user = %revoked.user, by = %actor.name, "device revoked");
        Ok(revoked)
    }

    /// Records a device's status report.
    pub async fn report_status(
        &self,
        device_id: &str,
        report: &pb::DeviceStatusReport,
        now: u64,
    ) -> Result<()> {
        // A report changes no configuration: appended without a new
        // revision, so no watcher or gateway recomputes anything.
        self.store
            .append(|t| {
                let mut device = t
                    .device(device_id)?
                    .ok_or_else(|| Error::not_found("device", device_id))?;
                device.last_seen_at = now;
                device.client_version = report.client_version.clone();
                if !report.hostname.is_empty() {
                    device.hostname = report.hostname.clone();
                }
                if !report.os.is_empty() {
                    device.os = report.os.clone();
                }
                // A device's clock may be off: never later than now.
                device.last_handshake_at = report.last_handshake_at.min(now);
                t.put_device(&device)
            })
            .await?;
        Ok(())
    }

    /// The config a device should run now, or why it may not run one.
    pub fn device_config(&self, device_id: &str) -> Result<pb::DeviceConfig> {
        let revision = self.store.meta_u64(meta::REVISION)?;
        let device = self.device_by_id(device_id)?;
        let user = self.check_device_allowed(&device)?;
        let groups = self.groups_of(&user)?;
        let explained = crate::policy::explained(&self.settings, &groups);
        let routes: BTreeSet<ipnet::IpNet> = explained.iter().map(|(d, _)| d.cidr).collect();
        let reach = explained
            .into_iter()
            .map(|(destination, because)| {
                let (because, description) = match because {
                    crate::policy::Because::Everyone => ("everyone".to_owned(), String::new()),
                    crate::policy::Because::Group(name) => {
                        let description = groups
                            .iter()
                            .find(|g| g.name == name)
                            .map(|g| g.description.clone())
                            .unwrap_or_default();
                        (name, description)
                    }
                };
                pb::Reach {
                    destination: Some(destination.into()),
                    because,
                    description,
                    covered_by: String::new(),
                }
            })
            .collect();
        let mut addresses = vec![format!("{}/32", device.ipv4)];
        addresses.extend(device.ipv6.map(|a| format!("{a}/128")));
        // Read for every watching device at every change: the records only,
        // without what gateways confirmed.
        let gateways = self
            .store
            .gateways()?
            .into_iter()
            .filter(|g| match &device.gateway {
                Some(name) => g.name == *name,
                None => g.embedded,
            })
            // A gateway without a key yet cannot be reached.
            .filter_map(|g| {
                Some(pb::GatewayPeer {
                    public_key: g.public_key?.to_base64(),
                    name: g.name,
                    endpoint: g.endpoint,
                })
            })
            .collect();
        Ok(pb::DeviceConfig {
            device_id: device.id,
            device_name: device.name,
            user: device.user,
            addresses,
            gateways,
            routes: routes.iter().map(ToString::to_string).collect(),
            dns_servers: self.settings.dns.iter().map(ToString::to_string).collect(),
            search_domains: self.settings.search_domains.clone(),
            persistent_keepalive: u32::from(self.settings.keepalive_secs),
            mtu: u32::from(self.settings.mtu),
            revision,
            controller_time: 0,
            reach,
            organization: self.settings.organization.clone(),
        })
    }

    /// What `device` may reach and why, for people (`devices show`):
    /// nothing when it is revoked or its person disabled.
    pub fn device_reach(&self, device: &DeviceRecord) -> Result<Vec<pb::Reach>> {
        if device.revoked_at.is_some() {
            return Ok(Vec::new());
        }
        let user = self.user(&device.user)?;
        if user.disabled {
            return Ok(Vec::new());
        }
        let groups = self.groups_of(&user)?;
        Ok(crate::policy::explained(&self.settings, &groups)
            .into_iter()
            .map(|(destination, because)| {
                let (because, covered_by) = match because {
                    crate::policy::Because::Everyone => ("everyone".to_owned(), None),
                    crate::policy::Because::Group(group) => (
                        group,
                        crate::policy::covering_route(&self.settings, &destination.cidr),
                    ),
                };
                pb::Reach {
                    destination: Some(destination.into()),
                    because,
                    covered_by: covered_by.map(|r| r.to_string()).unwrap_or_default(),
                    description: String::new(),
                }
            })
            .collect())
    }

    pub(super) fn groups_of(&self, user: &UserRecord) -> Result<Vec<GroupRecord>> {
        let mut groups = Vec::with_capacity(user.groups.len());
        for name in &user.groups {
            groups.extend(self.store.group(name)?);
        }
        Ok(groups)
    }

    /// The peers a gateway should have now: every live device of an
    /// enabled user, with its tunnel addresses and its groups' filter;
    /// and the live devices of each user (the peer journal's index).
    pub fn gateway_peers_and_owners(&self) -> Result<(Vec<GatewayPeer>, Owners)> {
        let users: BTreeMap<String, UserRecord> = self
            .list_users()?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        let mut peers = Vec::new();
        let mut owners = Owners::new();
        for device in self.list_devices(None, false)? {
            owners
                .entry(device.user.clone())
                .or_default()
                .insert(device.id.clone());
            let user = users.get(&device.user);
            peers.extend(self.peer_of(device, user)?);
        }
        Ok((peers, owners))
    }

    /// The peers a gateway should have now (see
    /// [`Controller::gateway_peers_and_owners`]).
    pub fn gateway_peers(&self) -> Result<Vec<GatewayPeer>> {
        Ok(self.gateway_peers_and_owners()?.0)
    }

    /// The peer each of `device_ids` makes now (`None`: none — revoked,
    /// gone, or its user disabled), read from the store: what one change
    /// means for the gateways, without reading every device.
    pub fn peers_of(
        &self,
        device_ids: &BTreeSet<String>,
    ) -> Result<Vec<(String, Option<GatewayPeer>)>> {
        let mut users: BTreeMap<String, Option<UserRecord>> = BTreeMap::new();
        let mut peers = Vec::with_capacity(device_ids.len());
        for id in device_ids {
            let peer = match self.store.device(id)?.filter(|d| d.revoked_at.is_none()) {
                Some(device) => {
                    if !users.contains_key(&device.user) {
                        users.insert(device.user.clone(), self.store.user(&device.user)?);
                    }
                    let user = users.get(&device.user).and_then(Option::as_ref);
                    self.peer_of(device, user)?
                }
                None => None,
            };
            peers.push((id.clone(), peer));
        }
        Ok(peers)
    }

    /// The peer a live `device` of `user` makes, unless the user is
    /// disabled or gone.
    fn peer_of(
        &self,
        device: DeviceRecord,
        user: Option<&UserRecord>,
    ) -> Result<Option<GatewayPeer>> {
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Ok(None);
        };
        let mut allowed_ips = vec![ipnet::IpNet::from(std::net::IpAddr::from(device.ipv4))];
        allowed_ips.extend(
            device
                .ipv6
                .map(|a| ipnet::IpNet::from(std::net::IpAddr::from(a))),
        );
        let destinations = crate::policy::destinations(&self.settings, &self.groups_of(user)?);
        Ok(Some(GatewayPeer {
            device_id: device.id,
            gateway: device
                .gateway
                .unwrap_or_else(|| self.settings.gateway_name.clone()),
            public_key: device.public_key,
            allowed_ips,
            destinations,
        }))
    }
}
