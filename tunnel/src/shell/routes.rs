//! Routes into the tunnel, with each platform's own tool: iproute2 on
//! Linux (which a Linux host running Porta has), `route` on macOS and
//! `netsh` on Windows (both part of the system).

use super::ShellError;
use ipnet::IpNet;
use std::process::Command;

/// Routes `route` into `interface` (replacing a route to the same prefix).
pub(super) fn add(route: &IpNet, interface: &str) -> Result<(), ShellError> {
    run(route, interface, true)
}

/// Withdraws `route` from `interface`.
pub(super) fn remove(route: &IpNet, interface: &str) -> Result<(), ShellError> {
    run(route, interface, false)
}

#[cfg(target_os = "linux")]
fn command(route: &IpNet, interface: &str, add: bool) -> Command {
    let family = if matches!(route, IpNet::V6(_)) {
        "-6"
    } else {
        "-4"
    };
    let verb = if add { "replace" } else { "del" };
    let mut command = Command::new("ip");
    command.args([family, "route", verb, &route.to_string(), "dev", interface]);
    command
}

#[cfg(target_os = "macos")]
fn command(route: &IpNet, interface: &str, add: bool) -> Command {
    let family = if matches!(route, IpNet::V6(_)) {
        "-inet6"
    } else {
        "-inet"
    };
    let verb = if add { "add" } else { "delete" };
    let mut command = Command::new("route");
    command.args([
        "-n",
        verb,
        family,
        &route.to_string(),
        "-interface",
        interface,
    ]);
    command
}

#[cfg(windows)]
fn command(route: &IpNet, interface: &str, add: bool) -> Command {
    let family = if matches!(route, IpNet::V6(_)) {
        "ipv6"
    } else {
        "ipv4"
    };
    let verb = if add { "add" } else { "delete" };
    let mut command = Command::new("netsh");
    command.args([
        "interface",
        family,
        verb,
        "route",
        &format!("prefix={route}"),
        &format!("interface={interface}"),
        "store=active",
    ]);
    command
}

fn run(route: &IpNet, interface: &str, add: bool) -> Result<(), ShellError> {
    let failed = |message: String| ShellError::Route {
        route: *route,
        interface: interface.into(),
        message,
    };
    let output = command(route, interface, add)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}
