//! Who may use the tunnel service: root, and members of the `porta` group.
//!
//! The socket's mode (root:porta 0660) already keeps others out; this
//! check is the service's own, on the caller's credentials as the kernel
//! gives them (`SO_PEERCRED`), so a socket whose mode was loosened by
//! mistake still refuses. Membership is the group database's (what
//! `adduser anna porta` writes) or the caller's primary group.

use nix::unistd::{Gid, Group, Uid, User};

/// The group whose members may use the service.
pub const GROUP: &str = "porta";

/// The caller, as the kernel saw it connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Whether `caller` may use the service, given the `porta` group's id (None
/// when the group does not exist) and the caller's groups from the group
/// database. An error is the refusal, in words for the person.
pub fn authorise(
    caller: Caller,
    porta_gid: Option<u32>,
    user_name: Option<&str>,
    groups: &[u32],
) -> Result<(), String> {
    if caller.uid == 0 {
        return Ok(());
    }
    let member = porta_gid.is_some_and(|gid| caller.gid == gid || groups.contains(&gid));
    if member {
        return Ok(());
    }
    let who = user_name.map_or_else(|| format!("user {}", caller.uid), ToOwned::to_owned);
    Err(format!(
        "{who} may not use the Porta service: only members of the `{GROUP}` group can connect \
         this computer. Ask IT to run `sudo adduser {} {GROUP}`, then log out and in again.",
        user_name.unwrap_or("<user>")
    ))
}

/// [`authorise`] against this system's user and group databases.
pub fn authorise_here(caller: Caller) -> Result<(), String> {
    if caller.uid == 0 {
        return Ok(());
    }
    let porta_gid = Group::from_name(GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    let user = User::from_uid(Uid::from_raw(caller.uid)).ok().flatten();
    let groups = user
        .as_ref()
        .map(|u| groups_of(u, Gid::from_raw(caller.gid)))
        .unwrap_or_default();
    authorise(
        caller,
        porta_gid,
        user.as_ref().map(|u| u.name.as_str()),
        &groups,
    )
}

/// The groups `user` is in, from the group database (Linux: all of them,
/// through `getgrouplist`).
#[cfg(target_os = "linux")]
fn groups_of(user: &User, primary: Gid) -> Vec<u32> {
    std::ffi::CString::new(user.name.clone())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, primary).ok())
        .unwrap_or_default()
        .into_iter()
        .map(Gid::as_raw)
        .collect()
}

/// The groups `user` is in that matter here: the primary one, and the
/// `porta` group when its member list names the user (elsewhere nix has
/// no `getgrouplist`).
#[cfg(not(target_os = "linux"))]
fn groups_of(user: &User, primary: Gid) -> Vec<u32> {
    let mut groups = vec![primary.as_raw()];
    if let Some(porta) = Group::from_name(GROUP).ok().flatten()
        && porta.mem.contains(&user.name)
    {
        groups.push(porta.gid.as_raw());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTA: u32 = 995;

    #[test]
    fn root_is_always_allowed() {
        assert!(authorise(Caller { uid: 0, gid: 0 }, None, Some("root"), &[]).is_ok());
    }

    #[test]
    fn members_are_allowed_by_database_or_primary_group() {
        let anna = Caller {
            uid: 1000,
            gid: 1000,
        };
        assert!(authorise(anna, Some(PORTA), Some("anna"), &[1000, PORTA]).is_ok());
        let service = Caller {
            uid: 1001,
            gid: PORTA,
        };
        assert!(authorise(service, Some(PORTA), Some("kiosk"), &[PORTA]).is_ok());
    }

    #[test]
    fn others_are_refused_with_the_command_it_must_run() {
        let bob = Caller {
            uid: 1002,
            gid: 1002,
        };
        let refusal =
            authorise(bob, Some(PORTA), Some("bob"), &[1002, 27]).expect_err("bob is not a member");
        assert!(refusal.contains("sudo adduser bob porta"), "{refusal}");
    }

    #[test]
    fn without_the_group_only_root_may() {
        let anna = Caller {
            uid: 1000,
            gid: 1000,
        };
        assert!(authorise(anna, None, Some("anna"), &[1000]).is_err());
    }
}
