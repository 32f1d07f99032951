//! The controller's one reading of the wall clock ([`porta_proto::clock`]).
//! Operations below the API and the gateway take the time as an argument
//! (Unix seconds), so they can be tested with any time; their callers read
//! it here, and [`ClockWatch`] says when it was stepped (invitations made
//! while it ran ahead are then put right).

pub use porta_proto::clock::{ClockWatch, STEP, now};
