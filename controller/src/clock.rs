//! The controller's one reading of the wall clock. Operations below the
//! API and the gateways take the time as an argument (Unix seconds), so
//! they can be tested with any time; their callers read it here.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
