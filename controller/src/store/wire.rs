//! Store records as wire messages (`From` each record into its `porta.v1`
//! message), beside the records they convert. Nothing secret crosses:
//! credentials and invitations go out without their hashes.

use super::records::*;
use porta_proto::pb;

impl From<UserRecord> for pb::User {
    fn from(u: UserRecord) -> Self {
        pb::User {
            name: u.name,
            display_name: u.display_name,
            email: u.email,
            disabled: u.disabled,
            groups: u.groups.into_iter().collect(),
            created_at: u.created_at,
            language: u.language,
            suspended_by_directory: u.directory.as_ref().is_some_and(|d| d.suspended),
            directory_dn: u.directory.map(|d| d.dn).unwrap_or_default(),
        }
    }
}

impl GroupRecord {
    /// The group with its `members` (kept on the users' records).
    pub fn into_pb(self, members: Vec<String>) -> pb::Group {
        let g = self;
        pb::Group {
            name: g.name,
            description: g.description,
            destinations: g.destinations.into_iter().map(Into::into).collect(),
            members,
            created_at: g.created_at,
        }
    }
}

impl From<InviteRecord> for pb::EnrollmentToken {
    fn from(i: InviteRecord) -> Self {
        let (user, device_name, gateway) = match i.purpose {
            InvitePurpose::Device {
                user,
                device_name,
                gateway,
            } => (user, device_name, gateway.unwrap_or_default()),
            InvitePurpose::Login { .. } => Default::default(),
        };
        pb::EnrollmentToken {
            id: i.id,
            user,
            device_name,
            created_at: i.created_at,
            expires_at: i.expires_at,
            created_by: i.created_by,
            gateway,
            email_to: i.email.as_ref().map(|e| e.to.clone()).unwrap_or_default(),
            emailed_at: i.email.as_ref().and_then(|e| e.sent_at).unwrap_or_default(),
            email_error: i.email.map(|e| e.error).unwrap_or_default(),
        }
    }
}

impl From<DeviceRecord> for pb::DeviceInfo {
    fn from(d: DeviceRecord) -> Self {
        let mut addresses = vec![d.ipv4.to_string()];
        addresses.extend(d.ipv6.map(|a| a.to_string()));
        pb::DeviceInfo {
            id: d.id,
            name: d.name,
            user: d.user,
            public_key: d.public_key.to_base64(),
            addresses,
            hostname: d.hostname,
            os: d.os,
            enrolled_at: d.enrolled_at,
            last_seen_at: d.last_seen_at,
            revoked: d.revoked_at.is_some(),
            revoked_at: d.revoked_at.unwrap_or(0),
            revoked_by: d.revoked_by,
            client_version: d.client_version,
            gateway: d.gateway.unwrap_or_default(),
            last_handshake_at: d.last_handshake_at,
            // Filled in by GetDevice only (it reads the groups).
            reach: Vec::new(),
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => pb::Role::Admin,
            Role::Auditor => pb::Role::Auditor,
            Role::Device => pb::Role::Device,
            Role::Gateway => pb::Role::Gateway,
        }
    }
}

/// Never the secret's hash: only whether one is set (pending).
impl From<CredentialRecord> for pb::ApiCredential {
    fn from(c: CredentialRecord) -> Self {
        pb::ApiCredential {
            pending: c.hash.is_none(),
            revoked: c.revoked_at.is_some(),
            id: c.id,
            name: c.name,
            role: pb::Role::from(c.role) as i32,
            created_at: c.created_at,
            created_by: c.created_by,
            last_used_at: 0,
            client_name: c.client_name,
        }
    }
}

impl From<GatewayRecord> for pb::GatewayInfo {
    fn from(g: GatewayRecord) -> Self {
        pb::GatewayInfo {
            id: g.id,
            name: g.name,
            endpoint: g.endpoint,
            public_key: g.public_key.map(|k| k.to_base64()).unwrap_or_default(),
            embedded: g.embedded,
            last_seen_at: g.last_seen_at,
            applied_revision: g.applied_revision,
            refused_events: g.refused_events,
            not_following: g
                .diverged
                .as_ref()
                .map(Divergence::describe)
                .unwrap_or_default(),
            resync_pending: g.resync,
        }
    }
}
