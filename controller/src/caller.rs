//! Who is calling: what an authenticated credential says about its holder.
//! Shared by the API's authorisation, the domain operations and the admin
//! log (which records who did what), so it depends on none of them.

use crate::store::records::Role;

/// What a caller's credential says about it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The credential's role.
    pub role: Role,
    /// The credential id.
    pub credential_id: String,
    /// A name for logs and audit ("admin", a device name).
    pub name: String,
    /// For devices: which one.
    pub device_id: Option<String>,
    /// The caller's network address, for the admin log.
    pub address: String,
}
