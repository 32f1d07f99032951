//! The `porta` CLI as a front end of the tunnel service.
//!
//! Each command asks the service over its local API when it runs (no
//! administrator rights needed, only the `porta` group). When it does not
//! run, root may still enroll, leave, stop a foreground tunnel and read
//! its status directly in the state directory — the behaviour servers and
//! tests rely on. Output is the same either way.

use crate::local::{self, Unreachable};
use crate::state::StateDir;
use crate::{enrollment, tunnel, wgconf};
use anyhow::{Context, Result, bail};
use porta_proto::local as api;
use std::path::Path;

/// The service, or why not; `None` when it does not run (and the caller
/// may do the work itself).
async fn service(socket: &Path) -> Result<Option<local::Client>> {
    match local::connect(socket).await {
        Ok(client) => Ok(Some(client)),
        Err(Unreachable::NotRunning { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Without the service, only root may touch the state directory.
fn root_or(error: Unreachable) -> Result<()> {
    if crate::platform::is_administrator() {
        Ok(())
    } else {
        Err(error.into())
    }
}

fn not_running(socket: &Path) -> Unreachable {
    Unreachable::NotRunning {
        path: socket.into(),
    }
}

/// `porta enroll`.
pub async fn enroll(socket: &Path, dir: &StateDir, text: &str, yes: bool) -> Result<()> {
    let enrolled = match service(socket).await? {
        Some(mut client) => {
            let mut request = api::EnrollRequest {
                invitation: text.to_owned(),
                replace: false,
            };
            let within = local::ENROLLMENT_ANSWER_WITHIN;
            match local::answer(within, client.enroll(request.clone())).await {
                Err(error)
                    if error
                        .downcast_ref::<tonic::Status>()
                        .is_some_and(|s| s.code() == tonic::Code::AlreadyExists) =>
                {
                    let question = error
                        .downcast_ref::<tonic::Status>()
                        .map(|s| s.message().to_owned())
                        .unwrap_or_default();
                    confirmed(&question, yes)?;
                    request.replace = true;
                    local::answer(within, client.enroll(request)).await?
                }
                other => other?,
            }
        }
        None => {
            root_or(not_running(socket))?;
            let invitation = enrollment::decode(text)?;
            if let Some(pid) = dir.running_tunnel() {
                bail!(
                    "the tunnel is connected (`porta up`, pid {pid}); disconnect first: porta down"
                );
            }
            if let Some(existing) = enrollment::existing(dir, &invitation).await? {
                confirmed(
                    &format!(
                        "This computer is enrolled as {} ({}). Enroll it again with a new key?",
                        existing.device_name, existing.why
                    ),
                    yes,
                )?;
            }
            let state = enrollment::enroll(dir, invitation).await?;
            api::EnrollResponse {
                device_name: state.config.device_name,
                user: state.config.user,
                addresses: state.config.addresses,
            }
        }
    };
    println!(
        "Enrolled {} for {} with address {}. Connect with: porta up",
        enrolled.device_name,
        enrolled.user,
        enrolled.addresses.join(", ")
    );
    Ok(())
}

/// `porta leave`.
pub async fn leave(socket: &Path, dir: &StateDir, yes: bool) -> Result<()> {
    let device_name = match service(socket).await? {
        Some(mut client) => {
            let status = local::answer(
                local::ANSWER_WITHIN,
                client.get_status(api::StatusRequest {}),
            )
            .await?;
            if status.state() == api::status::State::NotEnrolled {
                bail!("this computer is not enrolled");
            }
            confirmed(
                &format!(
                    "Forget the enrollment of {} (its key is deleted)?",
                    status.device_name
                ),
                yes,
            )?;
            local::answer(local::ANSWER_WITHIN, client.leave(api::LeaveRequest {}))
                .await?
                .device_name
        }
        None => {
            root_or(not_running(socket))?;
            let state = dir.load()?;
            if let Some(pid) = dir.running_tunnel() {
                bail!(
                    "the tunnel is connected (`porta up`, pid {pid}); disconnect first: porta down"
                );
            }
            confirmed(
                &format!(
                    "Forget the enrollment of {} (its key is deleted)?",
                    state.config.device_name
                ),
                yes,
            )?;
            dir.forget()?;
            crate::daemon::settings::Remembered::forget(dir)?;
            state.config.device_name
        }
    };
    println!(
        "This computer no longer holds the enrollment of {device_name}. Until IT revokes it \
         (`portactl devices revoke {device_name}`), the controller still lists it."
    );
    Ok(())
}

/// `porta up`: the service connects.
pub async fn up(socket: &Path) -> Result<()> {
    let Some(mut client) = service(socket).await? else {
        bail!(
            "the Porta service is not running; start it (`sudo systemctl enable --now porta`) \
             or run the tunnel in this terminal: `sudo porta up --foreground`"
        );
    };
    let status = local::answer(
        local::ENROLLMENT_ANSWER_WITHIN,
        client.up(api::UpRequest {}),
    )
    .await?;
    println!(
        "Connected {} ({}) as {} through {}; routes: {}",
        status.device_name,
        status.interface,
        status.addresses.join(", "),
        if status.gateway_endpoint.is_empty() {
            "-"
        } else {
            &status.gateway_endpoint
        },
        status.routes.join(", ")
    );
    Ok(())
}

/// `porta down`.
pub async fn down(socket: &Path, dir: &StateDir, interface: &str) -> Result<()> {
    match service(socket).await? {
        Some(mut client) => {
            local::answer(local::ANSWER_WITHIN, client.down(api::DownRequest {})).await?;
            println!("Disconnected.");
            Ok(())
        }
        None => tunnel::down_foreground(dir, interface),
    }
}

/// `porta status`. Without the service only root can read the
/// enrollment; anyone else is told that the service does not run, and
/// that nothing more can be known without it.
pub async fn status(socket: &Path, dir: &StateDir, interface: &str, json: bool) -> Result<()> {
    let status = match service(socket).await? {
        Some(mut client) => {
            local::answer(
                local::ANSWER_WITHIN,
                client.get_status(api::StatusRequest {}),
            )
            .await?
        }
        None if crate::platform::is_administrator() => {
            tunnel::status_without_service(dir, interface)
        }
        None => {
            let not_running = not_running(socket);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"up": false, "state": "unknown", "service": "not running"})
                );
            } else {
                println!("{not_running}");
                println!(
                    "  Whether this computer is enrolled is known only to the service (or root)."
                );
            }
            return Err(tunnel::NotConnected { answered: true }.into());
        }
    };
    tunnel::print_status(&status, json)
}

/// `porta diagnostics`: the service's report, or what this process can
/// gather when the service cannot be asked — and why it could not.
pub async fn diagnostics(socket: &Path, dir: &StateDir, interface: &str) -> Result<()> {
    use crate::diagnostics::{ServiceSeen, report};
    let text = match local::connect(socket).await {
        Ok(mut client) => {
            client
                .diagnostics(api::DiagnosticsRequest {})
                .await?
                .into_inner()
                .text
        }
        Err(why) => {
            let seen = match why {
                Unreachable::NotRunning { .. } => ServiceSeen::NotRunning,
                Unreachable::NotAllowed { user } => ServiceSeen::NotAllowed { user },
                other => ServiceSeen::Unreachable(other.to_string()),
            };
            // Only root reads the enrollment without the service.
            let status = crate::platform::is_administrator()
                .then(|| tunnel::status_without_service(dir, interface));
            report(status.as_ref(), &seen, &[]).await
        }
    };
    print!("{text}");
    Ok(())
}

/// Asks, or takes `--yes`; an error when the answer is no or nobody can
/// be asked.
fn confirmed(question: &str, yes: bool) -> Result<()> {
    use porta_proto::terminal::{Answer, confirm};
    match confirm(question, yes)? {
        Answer::Yes => Ok(()),
        Answer::No => bail!("cancelled; nothing was changed"),
        Answer::NoTerminal => bail!("{question} Pass --yes to confirm (no terminal to ask on)"),
    }
}

/// `porta export-wg`: the tunnel as a wg-quick file, private key included
/// (root only: the key is the service's).
pub fn export_wg(dir: &StateDir, out: Option<&Path>) -> Result<()> {
    let config = wgconf::render(&dir.load()?, &dir.key()?);
    match out {
        None => {
            eprintln!(
                "porta: this configuration contains this computer's private key; keep it \
                 private (`--out FILE` writes it readable only by you)"
            );
            print!("{config}");
        }
        Some(path) => {
            crate::platform::write_private_file(path, config.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "Wrote {} (readable only by {}; it contains the private key).",
                path.display(),
                crate::platform::PRIVATE_FILE_READERS
            );
        }
    }
    Ok(())
}
