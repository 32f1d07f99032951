//! The one reading of the wall clock. Porta's operations take the time as
//! an argument (Unix seconds) so that they can be tested at any time; only
//! the programs' entry points — a request arriving, a timer firing — read
//! it, here.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
