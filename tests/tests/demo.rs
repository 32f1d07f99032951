//! `scripts/demo.sh`, the newcomer's first command, runs from start to end
//! with this build's binaries and shows what it promises.

use porta_tests::*;
use std::process::Command;

#[test]
fn the_demo_runs_and_shows_enroll_reach_revoke_and_the_log() {
    drop(porta_tests::netns::Lab::new().unwrap()); // clear message when not root
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("bash")
        .arg(repo.join("scripts/demo.sh"))
        .env("PORTA_BIN", binary("porta").parent().unwrap())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "you are inside the town network",
        "This device was revoked by your IT administrator",
        "The town server is unreachable",
        "session_end",
        "connections log: OK",
        "admin log: OK",
    ] {
        assert!(shown.contains(expected), "{expected:?} not shown:\n{shown}");
    }
}
