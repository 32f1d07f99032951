//! The gRPC services. Each handler authorizes the caller, validates the
//! message into typed values, calls one [`Controller`] operation with the
//! current time, and converts the result; errors become `Status` through
//! the single `From<Error> for Status` in [`crate::error`].

mod admin;
mod audit;
mod auth;
mod device;
mod directory;
mod enrollment;
mod gateway;
pub mod operator;
mod session;

pub use admin::AdminApi;
pub use audit::AuditApi;
pub use device::DeviceApi;
pub use directory::DirectoryApi;
pub use enrollment::EnrollmentApi;
pub use gateway::GatewayApi;
pub use operator::OperatorApi;
pub use session::SessionApi;

use crate::state::Controller;

/// Largest message any service accepts, in bytes. The biggest legitimate
/// request (a group's members, a status report) is far smaller.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub(crate) use crate::clock::now;

/// All services over one controller.
pub struct Apis {
    /// Enrollment.
    pub enrollment: EnrollmentApi,
    /// Device.
    pub device: DeviceApi,
    /// Admin.
    pub admin: AdminApi,
    /// Audit.
    pub audit: AuditApi,
    /// Gateway.
    pub gateway: GatewayApi,
    /// Session.
    pub session: SessionApi,
    /// Directory.
    pub directory: DirectoryApi,
}

impl Apis {
    /// Builds the services over `ctl`; `directory` is the directory sync,
    /// if the config has one.
    pub fn new(ctl: Controller, directory: Option<crate::directory::sync::DirectorySync>) -> Self {
        Self {
            enrollment: EnrollmentApi(ctl.clone()),
            device: DeviceApi(ctl.clone()),
            admin: AdminApi(ctl.clone()),
            audit: AuditApi(ctl.clone(), audit::ExportSlots::default()),
            gateway: GatewayApi(ctl.clone()),
            directory: DirectoryApi {
                ctl: ctl.clone(),
                sync: directory,
            },
            session: SessionApi(ctl),
        }
    }
}
