//! `porta-gateway` run as a real process, for what needs no controller
//! (the namespace tests in tests/ follow a real one), and the crate's
//! promise that a gateway host links no controller.

#![allow(missing_docs, clippy::unwrap_used)]

use porta_proto::{CertFingerprint, Invitation, pb};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn gateway(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porta-gateway"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("PORTA_GATEWAY_INVITATION")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_first_start_without_an_invitation_says_where_to_get_one_and_keeps_its_key_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gateway");
    let output = gateway(&data, &[]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("not enrolled yet") && message.contains("portactl gateways add"),
        "{message}"
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("gateway.key")), 0o600);
    let key = std::fs::read_to_string(data.join("gateway.key")).unwrap();
    // The next start keeps the same key.
    gateway(&data, &[]);
    assert_eq!(
        std::fs::read_to_string(data.join("gateway.key")).unwrap(),
        key
    );
}

#[test]
fn a_device_invitation_is_refused_before_anything_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let device = Invitation {
        // Nothing listens here; the refusal must come first.
        controller: "127.0.0.1:9".into(),
        fingerprint: CertFingerprint([1; 32]),
        token: "0123456789abcdef.secret".into(),
        kind: pb::InvitationKind::Device,
        organization: String::new(),
    };
    let output = gateway(dir.path(), &["--controller", &device.encode()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a gateway invitation"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("gateway.toml").exists());
}

#[test]
fn malformed_arguments_exit_2_and_help_names_the_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let output = gateway(dir.path(), &["--session-idle", "soon"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let help = gateway(dir.path(), &["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in ["--controller", "--data", "--interface", "--session-idle"] {
        assert!(text.contains(option), "{option}: {text}");
    }
    assert!(
        text.contains("4 the controller removed this gateway"),
        "{text}"
    );
}

#[test]
fn the_gateway_links_no_controller_store_or_api_server() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "porta-gateway",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("porta-tunnel"), "{tree}");
    for server_side in [
        "porta-controller",
        "tonic-health",
        "tonic-reflection",
        "rcgen",
    ] {
        assert!(
            !tree.lines().any(|line| line.starts_with(server_side)),
            "{server_side} in the gateway's tree:\n{tree}"
        );
    }
}
