//! The staff client `porta` against a real controller, for what needs no
//! tunnel: enrolling, enrolling again after a revocation or with another
//! controller, and `porta leave`.

use porta_proto::pb;
use porta_tests::*;
use std::path::Path;
use std::process::{Output, Stdio};

/// Runs `porta --state DIR args` with no terminal on stdin.
fn porta(state: &Path, args: &[&str]) -> Output {
    std::process::Command::new(binary("porta"))
        .arg("--state")
        .arg(state)
        // No tunnel service: the commands do the work themselves.
        .arg("--socket")
        .arg(state.with_extension("no-service.sock"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeds(output: Output) -> String {
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn key_of(state: &Path) -> String {
    std::fs::read_to_string(state.join("private.key")).unwrap()
}

async fn open_tokens(admin: &mut pb::admin_client::AdminClient<Authed>) -> usize {
    admin
        .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens
        .len()
}

#[tokio::test]
async fn a_revoked_computer_enrolls_again_with_a_new_key_after_confirming() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    succeeds(porta(
        &state,
        &["enroll", &invite(&mut admin, "anna", "anna-pc").await],
    ));
    let first_key = key_of(&state);

    // Still accepted: a second invitation is refused, nothing changes and
    // the new invitation stays usable.
    let second = invite(&mut admin, "anna", "anna-pc-2").await;
    let refused = porta(&state, &["enroll", "--yes", &second]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("already enrolled as anna-pc and the controller still accepts it")
            && message.contains("porta leave"),
        "{message}"
    );
    assert_eq!(key_of(&state), first_key);
    assert_eq!(
        open_tokens(&mut admin).await,
        1,
        "the new token is not spent"
    );

    // Revoked: without a terminal and without --yes it asks for --yes and
    // changes nothing.
    admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "anna-pc".into(),
        })
        .await
        .unwrap();
    let unconfirmed = porta(&state, &["enroll", &second]);
    assert!(!unconfirmed.status.success());
    let message = stderr(&unconfirmed);
    assert!(
        message.contains("enrolled as anna-pc (revoked") && message.contains("--yes"),
        "{message}"
    );
    assert_eq!(key_of(&state), first_key);
    assert_eq!(open_tokens(&mut admin).await, 1);

    // Confirmed: a fresh key, the new device, and the controller takes it.
    let out = succeeds(porta(&state, &["enroll", "--yes", &second]));
    assert!(out.contains("Enrolled anna-pc-2"), "{out}");
    let new_key = key_of(&state);
    assert_ne!(new_key, first_key, "a new key was made");
    let device = admin
        .get_device(pb::GetDeviceRequest {
            name: "anna-pc-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let public = porta_tunnel::keys::PrivateKey::from_base64(&new_key)
        .unwrap()
        .public_key()
        .to_base64();
    assert_eq!(device.public_key, public);
    assert!(!state.join(".private.key.tmp").exists());
}

#[tokio::test]
async fn a_computer_moves_to_another_controller_and_leave_forgets_it() {
    let old = TestController::start(&[]).await.unwrap();
    let new = TestController::start(&[]).await.unwrap();
    let mut old_admin = old.admin().await;
    let mut new_admin = new.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    succeeds(porta(
        &state,
        &["enroll", &invite(&mut old_admin, "anna", "anna-pc").await],
    ));

    let moved = porta(
        &state,
        &[
            "enroll",
            "--yes",
            &invite(&mut new_admin, "anna", "anna-new").await,
        ],
    );
    assert!(succeeds(moved).contains("Enrolled anna-new"));
    let saved = std::fs::read_to_string(state.join("device.toml")).unwrap();
    assert!(saved.contains(&new.api), "{saved}");

    // A running tunnel (a live process in the pid file) blocks leave.
    std::fs::write(state.join("porta.pid"), std::process::id().to_string()).unwrap();
    let refused = porta(&state, &["leave", "--yes"]);
    assert!(
        stderr(&refused).contains("porta down"),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_file(state.join("porta.pid")).unwrap();

    let unconfirmed = porta(&state, &["leave"]);
    assert!(!unconfirmed.status.success());
    assert!(state.join("private.key").exists());
    let out = succeeds(porta(&state, &["leave", "--yes"]));
    assert!(out.contains("anna-new"), "{out}");
    assert!(!state.join("private.key").exists() && !state.join("device.toml").exists());

    // Forgotten: a new invitation enrolls without any question.
    succeeds(porta(
        &state,
        &[
            "enroll",
            &invite(&mut new_admin, "anna", "anna-again").await,
        ],
    ));
}

#[test]
fn connecting_without_root_or_service_says_what_to_run_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (command, needed) in [
        (&["up"][..], "sudo systemctl enable --now porta"),
        (&["up"], "sudo porta up --foreground"),
        (&["up", "--foreground"], "sudo porta up --foreground"),
        (&["down"], "sudo porta down"),
        (&["enroll", "porta1_x"], "sudo systemctl enable --now porta"),
    ] {
        let output = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(binary("porta"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("no-service.sock"))
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let message = stderr(&output);
        assert!(message.contains(needed), "{command:?}: {message}");
    }
    assert!(!dir.path().join("state").exists());
}
