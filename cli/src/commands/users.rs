//! users add|list|show|disable|enable.

use super::Ctx;
use crate::args::UsersCommand;
use crate::output::{self, Listing};
use anyhow::Result;
use porta_proto::pb;

pub(super) async fn run(ctx: &Ctx, command: UsersCommand) -> Result<()> {
    let mut admin = ctx.admin().await?;
    let user = match command {
        UsersCommand::Add {
            name,
            display_name,
            email,
            groups,
            language,
        } => {
            let request = pb::CreateUserRequest {
                name,
                display_name: display_name.unwrap_or_default(),
                email: email.unwrap_or_default(),
                groups,
                language: language.unwrap_or_default(),
            };
            admin.create_user(request).await?.into_inner()
        }
        UsersCommand::List => {
            let users = admin
                .list_users(pb::ListUsersRequest {})
                .await?
                .into_inner()
                .users;
            listing(&users).print(ctx.json);
            return Ok(());
        }
        UsersCommand::Show { name } => admin
            .get_user(pb::GetUserRequest { name })
            .await?
            .into_inner(),
        UsersCommand::Disable { name } => {
            ctx.confirm(&format!(
                "Disable {name}? All of their devices will be refused"
            ))?;
            admin
                .set_user_disabled(pb::SetUserDisabledRequest {
                    name,
                    disabled: true,
                })
                .await?
                .into_inner()
        }
        UsersCommand::Enable { name } => admin
            .set_user_disabled(pb::SetUserDisabledRequest {
                name,
                disabled: false,
            })
            .await?
            .into_inner(),
    };
    output::show(ctx.json, output::user_json(&user), || describe(&user));
    Ok(())
}

fn listing(users: &[pb::User]) -> Listing {
    Listing {
        headers: &["name", "display name", "groups", "state"],
        rows: users
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.display_name.clone(),
                    u.groups.join(","),
                    state(u).into(),
                ]
            })
            .collect(),
        json: users.iter().map(output::user_json).collect(),
    }
}

fn state(user: &pb::User) -> &'static str {
    match (user.disabled, user.suspended_by_directory) {
        (false, _) => "enabled",
        (true, true) => "suspended (directory)",
        (true, false) => "disabled",
    }
}

fn describe(u: &pb::User) -> String {
    format!(
        "user: {}\n  display name: {}\n  email: {}\n  groups: {}\n  state: {}\n  created: {}{}",
        u.name,
        u.display_name,
        u.email,
        if u.groups.is_empty() {
            "-".into()
        } else {
            u.groups.join(", ")
        },
        state(u),
        output::time(u.created_at),
        if u.directory_dn.is_empty() {
            String::new()
        } else {
            format!("\n  directory entry: {}", u.directory_dn)
        }
    )
}
