//! groups add|list|show|delete|allow|disallow|members.

use super::Ctx;
use crate::args::{DestinationArgs, GroupsCommand, MembersCommand, Proto};
use crate::error::Usage;
use crate::output::{self, Listing};
use anyhow::{Result, bail};
use porta_proto::pb;
use serde_json::json;

pub(super) async fn run(ctx: &Ctx, command: GroupsCommand) -> Result<()> {
    // Parse before connecting: a typo is a usage error, not a network call.
    let destination = match &command {
        GroupsCommand::Allow(args) | GroupsCommand::Disallow(args) => Some(destination(args)?),
        _ => None,
    };
    let mut admin = ctx.admin().await?;
    let group = match command {
        GroupsCommand::Add { name, description } => admin
            .create_group(pb::CreateGroupRequest {
                name,
                description: description.unwrap_or_default(),
            })
            .await?
            .into_inner(),
        GroupsCommand::List => {
            let groups = admin
                .list_groups(pb::ListGroupsRequest {})
                .await?
                .into_inner()
                .groups;
            listing(&groups).print(ctx.json);
            return Ok(());
        }
        GroupsCommand::Show { name } => admin
            .get_group(pb::GetGroupRequest { name })
            .await?
            .into_inner(),
        GroupsCommand::Delete { name } => {
            ctx.confirm(&format!(
                "Delete group {name}? Its members lose what it allows"
            ))?;
            admin
                .delete_group(pb::DeleteGroupRequest { name: name.clone() })
                .await?;
            output::show(ctx.json, json!({"deleted": name}), || {
                format!("Deleted group {name}")
            });
            return Ok(());
        }
        GroupsCommand::Allow(args) => {
            let allowed = admin
                .allow_destination(pb::AllowDestinationRequest {
                    group: args.group,
                    destination,
                })
                .await?
                .into_inner();
            for warning in &allowed.warnings {
                eprintln!("portactl: warning: {warning}");
            }
            allowed.group.unwrap_or_default()
        }
        GroupsCommand::Disallow(args) => admin
            .disallow_destination(pb::DisallowDestinationRequest {
                group: args.group,
                destination,
            })
            .await?
            .into_inner(),
        GroupsCommand::Members(MembersCommand::Add { group, users }) => admin
            .add_group_members(pb::GroupMembersRequest { group, users })
            .await?
            .into_inner(),
        GroupsCommand::Members(MembersCommand::Remove { group, users }) => admin
            .remove_group_members(pb::GroupMembersRequest { group, users })
            .await?
            .into_inner(),
    };
    output::show(ctx.json, output::group_json(&group), || describe(&group));
    Ok(())
}

/// `CIDR [--proto P] [--ports 80,443,8000-8100]` → a destination.
fn destination(args: &DestinationArgs) -> Result<pb::Destination> {
    let protocol = match args.proto {
        None => pb::Protocol::Any,
        Some(Proto::Tcp) => pb::Protocol::Tcp,
        Some(Proto::Udp) => pb::Protocol::Udp,
        Some(Proto::Icmp) => pb::Protocol::Icmp,
    };
    if !args.ports.is_empty() && !matches!(protocol, pb::Protocol::Tcp | pb::Protocol::Udp) {
        bail!(Usage("--ports needs --proto tcp or --proto udp".into()));
    }
    let ports = args
        .ports
        .iter()
        .map(|p| port_range(p))
        .collect::<Result<_>>()?;
    Ok(pb::Destination {
        cidr: args.cidr.clone(),
        protocol: protocol as i32,
        ports,
    })
}

fn port_range(text: &str) -> Result<pb::PortRange> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(u32::from)
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(text), parse(text)),
    };
    match (first, last) {
        (Some(first), Some(last)) if first <= last => Ok(pb::PortRange { first, last }),
        _ => bail!(Usage(format!(
            "{text:?} is not a port (1-65535) or a range like 8000-8100"
        ))),
    }
}

fn listing(groups: &[pb::Group]) -> Listing {
    Listing {
        headers: &["name", "members", "destinations", "description"],
        rows: groups
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.members.len().to_string(),
                    g.destinations
                        .iter()
                        .map(output::destination)
                        .collect::<Vec<_>>()
                        .join("; "),
                    g.description.clone(),
                ]
            })
            .collect(),
        json: groups.iter().map(output::group_json).collect(),
    }
}

fn describe(g: &pb::Group) -> String {
    let destinations: Vec<String> = g
        .destinations
        .iter()
        .map(|d| format!("\n    {}", output::destination(d)))
        .collect();
    format!(
        "group: {}\n  description: {}\n  members: {}\n  destinations:{}",
        g.name,
        g.description,
        if g.members.is_empty() {
            "-".into()
        } else {
            g.members.join(", ")
        },
        if destinations.is_empty() {
            " -".into()
        } else {
            destinations.concat()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_parse_and_nonsense_is_a_usage_error() {
        assert_eq!(
            port_range("3389").unwrap_or_else(|e| panic!("{e}")),
            pb::PortRange {
                first: 3389,
                last: 3389
            }
        );
        assert_eq!(
            port_range("8000-8100").unwrap_or_else(|e| panic!("{e}")),
            pb::PortRange {
                first: 8000,
                last: 8100
            }
        );
        for bad in ["0", "70000", "90-80", "http", ""] {
            let error = port_range(bad).expect_err(bad);
            assert!(error.is::<Usage>(), "{bad}");
        }
    }
}
