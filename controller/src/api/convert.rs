//! Store records → wire messages.

use crate::store::records::*;
use porta_proto::pb;

pub(crate) fn user(u: UserRecord) -> pb::User {
    pb::User {
        name: u.name,
        display_name: u.display_name,
        email: u.email,
        disabled: u.disabled,
        groups: u.groups.into_iter().collect(),
        created_at: u.created_at,
    }
}

pub(crate) fn group(g: GroupRecord, members: Vec<String>) -> pb::Group {
    pb::Group {
        name: g.name,
        description: g.description,
        destinations: g.destinations.into_iter().map(Into::into).collect(),
        members,
        created_at: g.created_at,
    }
}

pub(crate) fn enrollment_token(i: InviteRecord) -> pb::EnrollmentToken {
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
    }
}

pub(crate) fn device(d: DeviceRecord) -> pb::DeviceInfo {
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
    }
}

pub(crate) fn role(r: Role) -> pb::Role {
    match r {
        Role::Admin => pb::Role::Admin,
        Role::Auditor => pb::Role::Auditor,
        Role::Device => pb::Role::Device,
        Role::Gateway => pb::Role::Gateway,
    }
}

pub(crate) fn credential(c: CredentialRecord) -> pb::ApiCredential {
    pb::ApiCredential {
        pending: c.hash.is_none(),
        revoked: c.revoked_at.is_some(),
        id: c.id,
        name: c.name,
        role: role(c.role) as i32,
        created_at: c.created_at,
        created_by: c.created_by,
        last_used_at: 0,
        client_name: c.client_name,
    }
}

pub(crate) fn gateway(g: GatewayRecord) -> pb::GatewayInfo {
    pb::GatewayInfo {
        id: g.id,
        name: g.name,
        endpoint: g.endpoint,
        public_key: g.public_key.map(|k| k.to_base64()).unwrap_or_default(),
        embedded: g.embedded,
        last_seen_at: g.last_seen_at,
        applied_revision: g.applied_revision,
        refused_events: g.refused_events,
    }
}
