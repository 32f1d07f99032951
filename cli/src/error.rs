//! What `portactl` exits with, and why.
//!
//! 0 success, 1 error, 2 usage (clap's own code, commands used wrongly, and
//! arguments the controller finds malformed),
//! 3 not found, 4 permission denied or not logged in, 5 a log's hash chain
//! does not verify, 6 a directory sync refused by its safety threshold.

use porta_proto::connect::ConnectError;
use std::process::ExitCode;
use tonic::Code;

/// The command was used wrongly (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// No usable saved login (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotLoggedIn(pub String);

/// A chain that does not verify (exit 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerificationFailed(pub String);

/// A directory sync's plan was refused by the safety threshold (exit 6).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SyncRefused(pub String);

/// Some rows of a bulk run failed (exit 1, after reporting them).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} rows failed (see above)")]
pub struct RowsFailed {
    /// Rows that failed.
    pub failed: usize,
    /// Rows read.
    pub total: usize,
}

/// The exit code for an error chain.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if cause.is::<Usage>() {
            return ExitCode::from(2);
        }
        if cause.is::<NotLoggedIn>() {
            return ExitCode::from(4);
        }
        if cause.is::<VerificationFailed>() {
            return ExitCode::from(5);
        }
        if cause.is::<SyncRefused>() {
            return ExitCode::from(6);
        }
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return match status.code() {
                // The controller found an argument malformed: a usage
                // error, as when portactl finds it first.
                Code::InvalidArgument => ExitCode::from(2),
                Code::NotFound => ExitCode::from(3),
                Code::PermissionDenied | Code::Unauthenticated => ExitCode::from(4),
                _ => ExitCode::from(1),
            };
        }
        if let Some(ConnectError::FingerprintMismatch { .. }) = cause.downcast_ref::<ConnectError>()
        {
            return ExitCode::from(4);
        }
    }
    ExitCode::from(1)
}

/// What to tell a person after the error itself, if anything.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        let status = cause.downcast_ref::<tonic::Status>()?;
        match status.code() {
            Code::Unauthenticated => {
                Some("log in again with a new invitation: portactl login <invitation>")
            }
            Code::PermissionDenied => Some("this needs an admin login; see `portactl whoami`"),
            // A transport failure (the status carries its cause); an
            // Unavailable the controller itself sends (the town's
            // directory is down, say) explains itself.
            Code::Unavailable if std::error::Error::source(status).is_some() => {
                Some("is the controller running and reachable? check with `portactl whoami`")
            }
            _ => None,
        }
    })
}
