//! The shipped man pages and completions are what the code generates.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn shipped_man_pages_match_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_portactl"))
        .arg("manpages")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man");
    let mut generated: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    generated.sort();
    assert!(generated.len() > 10, "one page per command: {generated:?}");
    for name in generated {
        let fresh = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let committed = std::fs::read_to_string(shipped.join(&name)).unwrap_or_default();
        assert!(
            fresh == committed,
            "packaging/man/{} is stale: run `cargo run --bin portactl -- manpages packaging/man`",
            name.to_string_lossy()
        );
    }
}

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
