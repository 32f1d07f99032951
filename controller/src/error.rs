//! The controller's error type, and its one mapping onto gRPC statuses.
//!
//! Handlers return [`Error`]; `From<Error> for Status` below is the only
//! place that decides codes and what a caller may see. Internal failures
//! (store, I/O) reach callers only as "internal error" and are logged in
//! full on the server.

use porta_proto::refusal::Refusal;
use tonic::{Code, Status};

/// Everything that can go wrong in a controller operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// A named thing does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// e.g. "user", "group", "device".
        kind: &'static str,
        /// The name or id the caller gave, quoted (a prefix if long).
        name: String,
    },
    /// A thing with this name or key exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The operation conflicts with the current state (e.g. a disabled user).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No credential, or one we do not recognise.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller whose role does not allow this, or who was revoked.
    #[error("{0}")]
    PermissionDenied(String),
    /// A device or an invitation refused for a reason the client names to
    /// its person (see [`porta_proto::refusal`]); the message is for
    /// people, the kind travels as metadata.
    #[error("{message}")]
    Refused {
        /// Which refusal.
        kind: Refusal,
        /// In words.
        message: String,
    },
    /// The VPN prefix has no address left.
    #[error("{0}")]
    AddressesExhausted(String),
    /// The RPC is part of the contract but arrives with later work.
    #[error("{0}")]
    Unimplemented(&'static str),
    /// sled failed.
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    /// A stored record could not be decoded: the data directory is damaged.
    #[error("stored record {key:?} in {tree} is unreadable: {reason}")]
    Corrupt {
        /// The tree it came from.
        tree: &'static str,
        /// Its key, printable.
        key: String,
        /// The decoder's message.
        reason: String,
    },
    /// The caller's address failed to authenticate too often.
    #[error("too many failed sign-in attempts from {source_address}; try again in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// The refused address.
        source_address: std::net::IpAddr,
        /// How long until it may try again.
        retry_after: std::time::Duration,
    },
    /// The disk holding the data directory is full.
    #[error(
        "the disk holding {dir} is full; free space there and the controller resumes by itself"
    )]
    DiskFull {
        /// The data directory.
        dir: String,
    },
    /// A blocking task (a log verification, say) panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
    /// The controller is shutting down.
    #[error("the controller is shutting down")]
    ShuttingDown,
    /// A service the controller depends on (the town's directory) failed
    /// or could not be reached; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
}

/// Result alias for controller operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Shorthand for [`Error::Refused`].
    pub fn refused(kind: Refusal, message: impl Into<String>) -> Self {
        Self::Refused {
            kind,
            message: message.into(),
        }
    }

    /// Why a presented secret was refused (unknown, wrong, or revoked),
    /// when this error is that refusal: what counts as a failed attempt
    /// against the source (see `crate::guard`).
    pub fn refused_secret(&self) -> Option<&str> {
        match self {
            Error::Unauthenticated(reason) => Some(reason),
            Error::Refused {
                kind: Refusal::CredentialUnknown | Refusal::InvitationUnknown,
                message,
            } => Some(message),
            _ => None,
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: porta_proto::quoted(&name.into()),
        }
    }
}

impl From<porta_gateway::event::InvalidEvent> for Error {
    fn from(error: porta_gateway::event::InvalidEvent) -> Self {
        Error::invalid(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            // The codes older clients already acted on, kept.
            Error::Refused { kind, .. } => match kind {
                Refusal::UserDisabled | Refusal::UserSuspended => Code::PermissionDenied,
                // A revoked device's credential is no credential any more.
                Refusal::DeviceRevoked
                | Refusal::CredentialUnknown
                | Refusal::InvitationUnknown => Code::Unauthenticated,
                Refusal::InvitationUsed | Refusal::InvitationExpired => Code::FailedPrecondition,
                Refusal::DeviceNameTaken | Refusal::KeyInUse => Code::AlreadyExists,
            },
            Error::AddressesExhausted(_) => Code::ResourceExhausted,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Throttled { .. } | Error::DiskFull { .. } => Code::ResourceExhausted,
            Error::ShuttingDown | Error::Unavailable(_) => Code::Unavailable,
            Error::Store(_) | Error::Corrupt { .. } | Error::Task(_) => {
                tracing::error!(error = %error, "internal error");
                return Status::internal("internal error; the controller's log has the details");
            }
        };
        let mut status = Status::new(code, error.to_string());
        if let Error::Refused { kind, .. } = &error {
            kind.mark(&mut status);
        }
        status
    }
}
