//! Completions: `portactl completions SHELL` prints the registration the
//! shell loads, and bash, loading it, completes portactl's commands. (Names
//! from a controller are checked end to end in tests/tests/portactl.rs;
//! that the shipped man pages are current, in tests/tests/reference.rs.)

#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn completions_are_generated_for_common_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_portactl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(
            script.contains("portactl") && script.contains("COMPLETE"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn bash_completes_commands_through_the_registration() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_portactl"))
        .parent()
        .unwrap();
    let script = r#"
        source <(portactl completions bash)
        COMP_WORDS=(portactl ap); COMP_CWORD=1; COMP_TYPE=9
        _clap_complete_portactl portactl ap portactl
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let output = Command::new("bash")
        .args(["-c", script])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("PORTACTL_CONFIG", "/nonexistent/portactl.toml")
        .output()
        .unwrap();
    let offered = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(offered.trim(), "api-tokens", "{output:?}");
}
