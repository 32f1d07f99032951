//! The controller's one reading of the wall clock ([`porta_proto::clock`]).
//! Operations below the API and the gateway take the time as an argument
//! (Unix seconds), so they can be tested with any time; their callers read
//! it here.

pub use porta_proto::clock::now;
