//! What the store keeps, one record type per tree. Records are JSON so that
//! a field added later can default on old data (`#[serde(default)]`) and a
//! damaged directory can still be read by a person.

use crate::secret::SecretHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

pub use porta_gateway::destination::{Destination, PortRange, Protocol};
use porta_proto::PublicKey;

/// A staff member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Unique name, the key.
    pub name: String,
    /// Name as people write it ("Núria Puig i Solà").
    #[serde(default)]
    pub display_name: String,
    /// Contact address.
    #[serde(default)]
    pub email: String,
    /// A disabled user's devices are refused everywhere.
    #[serde(default)]
    pub disabled: bool,
    /// Groups the user belongs to (membership is kept here only).
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Preferred language for what Porta writes to them ("ca", "es", "it",
    /// "en"; empty: the town's default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// Set when the town's directory manages this user (see
    /// `crate::directory`); `None` for users made by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryLink>,
}

/// A user's tie to the directory entry it follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryLink {
    /// The entry's distinguished name, as the directory spells it.
    pub dn: String,
    /// True when the directory sync disabled the user (the entry was
    /// disabled, deleted or left every mapped group). Only such a user is
    /// enabled again by a later sync; one an admin disabled stays disabled.
    #[serde(default)]
    pub suspended: bool,
}

impl UserRecord {
    /// An enabled user in no group, without display name or e-mail.
    pub fn new(name: &str, created_at: u64) -> Self {
        Self {
            name: name.to_owned(),
            display_name: String::new(),
            email: String::new(),
            disabled: false,
            groups: BTreeSet::new(),
            created_at,
            language: String::new(),
            directory: None,
        }
    }
}

/// A group and what its members may reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Unique name, the key.
    pub name: String,
    /// What the group is for.
    #[serde(default)]
    pub description: String,
    /// Allowed town destinations.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Unix seconds.
    pub created_at: u64,
}

impl GroupRecord {
    /// A group without description or destinations.
    pub fn new(name: &str, created_at: u64) -> Self {
        Self {
            name: name.to_owned(),
            description: String::new(),
            destinations: Vec::new(),
            created_at,
        }
    }
}

/// A one-time token waiting to be redeemed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The secret's id, the key.
    pub id: String,
    /// SHA-256 of the secret's key part.
    pub hash: SecretHash,
    /// What redeeming it does.
    pub purpose: InvitePurpose,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; refused from then on.
    pub expires_at: u64,
    /// Name of the credential that created it.
    pub created_by: String,
    /// Set when redeemed; a redeemed token is refused.
    #[serde(default)]
    pub redeemed_at: Option<u64>,
    /// The last e-mailing of this invitation, if it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailRecord>,
    /// The device a device invitation enrolled, and the hash of the
    /// attempt it was redeemed with: a retry of that attempt (the answer
    /// was lost) finds the device again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<Redemption>,
}

/// Who redeemed a device invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    /// The device it enrolled.
    pub device_id: String,
    /// SHA-256 of the device's attempt (see `EnrollRequest.attempt`).
    pub attempt: crate::secret::SecretHash,
}

/// An invitation's e-mail delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRecord {
    /// The address it went to.
    pub to: String,
    /// When the mail server took it; `None` if it did not.
    pub sent_at: Option<u64>,
    /// Why the last attempt failed ("" if it did not).
    #[serde(default)]
    pub error: String,
}

/// What an invite is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvitePurpose {
    /// Enroll one device for a user.
    Device {
        /// The user it will belong to.
        user: String,
        /// The name it will get.
        device_name: String,
        /// The gateway it will connect through; `None` for the embedded one.
        #[serde(default)]
        gateway: Option<String>,
    },
    /// Activate a pending API (or gateway) credential.
    Login {
        /// The credential it activates.
        credential_id: String,
    },
}

/// Who a credential speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read and export logs.
    Auditor,
    /// One enrolled device, about itself.
    Device,
    /// A gateway: peers and reports.
    Gateway,
}

impl Role {
    /// Lower-case name, as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Device => "device",
            Role::Gateway => "gateway",
        }
    }
}

/// A long-lived credential (API, device or gateway).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// The secret's id, the key.
    pub id: String,
    /// Human name ("admin", "auditor-2026", or the device name).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// `None` while pending (its login invitation not yet redeemed).
    pub hash: Option<SecretHash>,
    /// Unix seconds.
    pub created_at: u64,
    /// Who created it.
    pub created_by: String,
    /// Set when revoked; then refused everywhere.
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// Where it was redeemed ("admin laptop").
    #[serde(default)]
    pub client_name: String,
    /// For device credentials: the device.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// An enrolled device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Random id, the key; stable across renames.
    pub id: String,
    /// Unique among live devices.
    pub name: String,
    /// Owner.
    pub user: String,
    /// WireGuard public key (base64 in the record).
    #[serde(with = "key_text")]
    pub public_key: PublicKey,
    /// Tunnel IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Tunnel IPv6 address, if the controller has an IPv6 prefix.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// As reported by the device.
    #[serde(default)]
    pub hostname: String,
    /// As reported by the device.
    #[serde(default)]
    pub os: String,
    /// Unix seconds.
    pub enrolled_at: u64,
    /// Unix seconds of the last status report; 0 if none.
    #[serde(default)]
    pub last_seen_at: u64,
    /// Set when revoked.
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// Who revoked it.
    #[serde(default)]
    pub revoked_by: String,
    /// The device's credential.
    pub credential_id: String,
    /// As reported by the device.
    #[serde(default)]
    pub client_version: String,
    /// The gateway it connects through (a name); `None` for the embedded one.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The device's last WireGuard handshake with its gateway, as it
    /// reported it (Unix seconds; 0: never).
    #[serde(default)]
    pub last_handshake_at: u64,
}

impl DeviceRecord {
    /// A device as enrolled at `enrolled_at`: not seen yet, not revoked,
    /// without an IPv6 address, host details or a chosen gateway.
    pub fn new(
        id: &str,
        name: &str,
        user: &str,
        public_key: PublicKey,
        ipv4: Ipv4Addr,
        credential_id: &str,
        enrolled_at: u64,
    ) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            user: user.to_owned(),
            public_key,
            ipv4,
            ipv6: None,
            hostname: String::new(),
            os: String::new(),
            enrolled_at,
            last_seen_at: 0,
            revoked_at: None,
            revoked_by: String::new(),
            credential_id: credential_id.to_owned(),
            client_version: String::new(),
            gateway: None,
            last_handshake_at: 0,
        }
    }
}

/// Who holds (or held) a tunnel address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressLease {
    /// The device.
    pub device_id: String,
    /// When the device was revoked; the address is reusable after quarantine.
    #[serde(default)]
    pub released_at: Option<u64>,
}

/// A gateway known to the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// Random id, the key.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// WireGuard endpoint staff connect to (host:port, UDP).
    pub endpoint: String,
    /// WireGuard public key; `None` until a remote gateway registers the
    /// key it made (an empty string in the record).
    #[serde(with = "optional_key_text")]
    pub public_key: Option<PublicKey>,
    /// Runs inside the controller process.
    pub embedded: bool,
    /// Unix seconds.
    #[serde(default)]
    pub last_seen_at: u64,
    /// Last peer-set revision it confirmed.
    #[serde(default)]
    pub applied_revision: u64,
    /// A remote gateway's credential (its gateway-role API credential).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Connection events from it the controller refused, ever.
    #[serde(default)]
    pub refused_events: u64,
    /// Set when it claimed a peer set of another history of this store
    /// (changes a restore undid): it confirms nothing until an admin
    /// resyncs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
    /// An admin decided to resync it: its next connection gets this
    /// controller's set as a snapshot that replaces its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resync: bool,
}

/// A gateway found holding a peer set of another history of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The revision it holds.
    pub held_revision: u64,
    /// This store's revision when it was noticed.
    pub controller_revision: u64,
    /// Unix seconds.
    pub since: u64,
}

impl Divergence {
    /// Why the gateway is not following, for people.
    pub fn describe(&self) -> String {
        format!(
            "it holds revision {} of another history of this controller's store (changes a \
             restore undid; noticed at revision {}): it may still serve devices revoked since \
             and confirms nothing until an admin runs `portactl gateways resync`",
            self.held_revision, self.controller_revision
        )
    }
}

impl GatewayRecord {
    /// A new gateway record: `embedded`, or remote with `credential_id`.
    pub fn new(name: &str, endpoint: &str, embedded: bool, credential_id: Option<String>) -> Self {
        Self {
            id: crate::secret::new_id(),
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            public_key: None,
            embedded,
            last_seen_at: 0,
            applied_revision: 0,
            credential_id,
            refused_events: 0,
            diverged: None,
            resync: false,
        }
    }
}

/// A key as its base64 text in a record.
mod key_text {
    use porta_proto::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.to_base64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// An optional key as its base64 text, or `""` for none (how records
/// written before the type said "not registered yet").
mod optional_key_text {
    use porta_proto::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        key: &Option<PublicKey>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.map(|k| k.to_base64()).unwrap_or_default())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PublicKey>, D::Error> {
        match String::deserialize(d)?.as_str() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_stored_form_and_an_unregistered_gateway_reads_as_none() {
        let mut gateway = GatewayRecord::new("annex", "192.0.2.1:51820", false, None);
        let json = serde_json::to_value(&gateway).expect("serialises");
        assert_eq!(json["public_key"], "", "as records always stored it");
        assert_eq!(
            serde_json::from_value::<GatewayRecord>(json)
                .expect("reads")
                .public_key,
            None
        );
        gateway.public_key = Some(PublicKey([7; 32]));
        let json = serde_json::to_value(&gateway).expect("serialises");
        assert_eq!(json["public_key"], PublicKey([7; 32]).to_base64());
        let device = DeviceRecord::new(
            "id",
            "laptop",
            "anna",
            PublicKey([9; 32]),
            Ipv4Addr::new(10, 77, 0, 2),
            "c",
            1,
        );
        let mut json = serde_json::to_value(&device).expect("serialises");
        assert_eq!(json["public_key"], PublicKey([9; 32]).to_base64());
        json["public_key"] = "damaged".into();
        assert!(
            serde_json::from_value::<DeviceRecord>(json).is_err(),
            "a damaged key is an error, not skipped"
        );
    }
}
