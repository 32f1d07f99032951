//! What differs between Linux (and the other Unixes) and Windows, in one
//! place, so the rest of the client reads the same on both.
//!
//! Each system's module offers the same items:
//! * who is running us: [`is_administrator`], [`user_name`];
//! * where things live: [`DEFAULT_SOCKET`] (the local API: a Unix socket,
//!   or a named pipe), [`service_state_dir`];
//! * keeping the key private: [`restrict_to_administrators`] (0700, or a
//!   protected DACL for SYSTEM and Administrators);
//! * the local API's byte stream for front ends: [`connect_local`];
//! * small facts: [`process_alive`], [`clocks`] (to notice a resume),
//!   [`hostname`], [`os_name`], [`notify_ready`].
//!
//! The daemon's side of the local API (listening, and who may call) is in
//! [`crate::daemon`], split the same way.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
pub mod windows;
#[cfg(windows)]
pub use windows::*;
