//! The town's DNS servers and search domains while the tunnel is up, and
//! undoing it afterwards — however the tunnel ends.
//!
//! * [`resolv`] (Linux and other Unixes): systemd-resolved on the tunnel
//!   interface, or a rewritten `/etc/resolv.conf`.
//! * [`nrpt`] (Windows): Name Resolution Policy Table rules, so that only
//!   the town's domains go to the town's servers and every other name is
//!   resolved as before.
//!
//! Each offers the same four items: `Applied` (what was changed),
//! `apply`, `undo`, and `restore_leftover` (what a crashed tunnel left).

pub mod nrpt;
#[cfg(unix)]
pub mod resolv;

#[cfg(windows)]
pub use nrpt::{Applied, apply, restore_leftover, undo};
#[cfg(unix)]
pub use resolv::{Applied, apply, restore_leftover, undo};

/// Undoes what it holds when dropped, so that every way out of `porta up`
/// — the end, an error, a panic unwinding — puts the DNS settings back.
#[derive(Debug)]
pub struct Guard(pub Applied);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(error) = undo(&self.0) {
            eprintln!(
                "porta: could not restore the DNS settings: {}",
                porta_proto::describe_chain(error.chain())
            );
        }
    }
}
