//! Completions are generated for the common shells. (That the shipped man
//! pages are current is checked for all three programs in
//! tests/tests/reference.rs.)

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
            script.contains("portactl") && script.contains("api-tokens"),
            "{shell}"
        );
    }
}
