//! Whether the gateway can write its data directory, said once.
//!
//! A full disk fails the same writes every second (the events of the
//! second, the open sessions). Logging each failure would bury the one
//! line that matters and fill the journal of a host with no room left, so
//! a kind of write that starts failing is logged once as an error, again
//! (as information) when it succeeds again, and in between only at debug
//! level; the metric `porta_gateway_data_write_failing` is 1 meanwhile, for
//! the alert.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Mutex;

/// The kinds of write that are failing now.
#[derive(Default)]
pub(crate) struct DataWrites {
    failing: Mutex<BTreeSet<&'static str>>,
}

impl DataWrites {
    /// Notes how a write of `what` ended; true while any write is failing.
    pub(crate) fn note<E: Display>(&self, what: &'static str, outcome: Result<(), E>) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => {
                if failing.remove(what) {
                    tracing::info!(what, "the gateway writes to its data directory again");
                }
            }
            Err(error) if failing.insert(what) => tracing::error!(
                what,
                error = %error,
                "the gateway cannot write to its data directory (said once until it can again)"
            ),
            Err(error) => tracing::debug!(what, error = %error, "still cannot write"),
        }
        !failing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_is_reported_while_any_kind_of_write_fails() {
        let writes = DataWrites::default();
        assert!(!writes.note::<String>("events", Ok(())));
        assert!(writes.note("events", Err("no space")));
        assert!(writes.note("events", Err("no space")));
        assert!(writes.note("sessions", Err("no space")));
        assert!(writes.note::<String>("events", Ok(())));
        assert!(!writes.note::<String>("sessions", Ok(())));
    }
}
