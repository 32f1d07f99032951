//! The `porta` command line, run as a real process, for what needs no
//! network (the namespace tests in tests/ cover connecting).

#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Command, Output};

fn porta(state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porta"))
        .arg("--state")
        .arg(state)
        // No tunnel service: these are the commands on their own.
        .arg("--socket")
        .arg(state.join("no-service.sock"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unenrolled_computer_is_told_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["up", "--foreground"][..], &["export-wg"]] {
        let output = porta(dir.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("porta enroll") || message.contains("sudo"),
            "{args:?}: {message}"
        );
    }
    let status = porta(dir.path(), &["status", "--interface", "portanone0"]);
    assert_eq!(status.status.code(), Some(3), "not connected");
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(said.lines().next(), Some("not connected"), "{said}");
    assert!(said.contains("porta enroll <invitation>"), "{said}");
}

#[test]
fn bad_invitations_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = porta(&state, &["enroll", "not-an-invitation"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a Porta invitation"),
        "{}",
        stderr(&output)
    );
    let cut = porta(&state, &["enroll", "porta1_abcdefgh"]);
    assert!(stderr(&cut).contains("damaged"), "{}", stderr(&cut));
    assert!(!state.exists(), "nothing was created");
}
