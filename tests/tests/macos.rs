//! macOS is one step away: the staff client and the app type-check for
//! `x86_64-apple-darwin` (needs `rustup target add x86_64-apple-darwin`,
//! which `.ci/run` does). Nothing is built to run: there is no macOS SDK
//! on Linux, so ring's C is "compiled" by tests/macos/cc-stub, which only
//! writes the empty objects a check never links.

use std::path::Path;
use std::process::Command;

const MACOS: &str = "x86_64-apple-darwin";

#[test]
fn the_client_and_the_app_check_for_macos() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", workspace.join("target/macos-check"))
        .env(
            "CC_x86_64_apple_darwin",
            workspace.join("tests/macos/cc-stub"),
        )
        .args(["check", "--locked", "--target", MACOS])
        .args(["-p", "porta-client", "-p", "porta-desktop"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "porta-client and porta-desktop do not check for {MACOS} \
         (rustup target add {MACOS}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
