//! Porta's staff side is headed for Windows (most staff's home computers)
//! and macOS: the crates that already build there are checked for the
//! Windows target here, so that they stay portable while the rest follows.
//! Needs `rustup target add x86_64-pc-windows-gnu` and mingw's C compiler
//! (ring's build script), which `.ci/run` installs.

use std::process::Command;

const WINDOWS: &str = "x86_64-pc-windows-gnu";

#[test]
fn the_data_plane_and_the_contract_build_for_windows() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(WINDOWS))
        .unwrap_or(false);
    assert!(
        installed,
        "the {WINDOWS} target is missing: rustup target add {WINDOWS} \
         (and apt-get install gcc-mingw-w64-x86-64); .ci/run does both"
    );
    // Its own target directory: the outer `cargo test` may still hold the
    // workspace's.
    let output = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", workspace.join("target/windows-check"))
        .args([
            "check",
            // Not offline: the Windows-only crates (windows-sys, Wintun's
            // bindings) are fetched on first use.
            "--locked",
            "--target",
            WINDOWS,
            "-p",
            "porta-tunnel",
            "--features",
            "porta-tunnel/io",
            "-p",
            "porta-proto",
            "--features",
            "porta-proto/client,porta-proto/cli",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "porta-tunnel (with its IO shell) and porta-proto do not build for {WINDOWS}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
