//! `scripts/demo.sh`, the newcomer's first command, runs from start to end
//! with this build's binaries and shows what it promises.

use porta_tests::*;
use std::process::Command;

#[test]
fn the_demo_runs_and_shows_enroll_reach_revoke_and_the_log() {
    drop(porta_tests::netns::Lab::new().unwrap()); // clear message when not root
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = Command::new("bash")
        .arg(repo.join("scripts/demo.sh"))
        .env("PORTA_BIN", binary("porta").parent().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The demo tags its namespaces, interfaces and work directory with its
    // own pid; every process it starts carries the tag on its command line.
    let tag = format!("pdemo{}", demo.id());
    let output = demo.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "you are inside the town network",
        "withdrew this computer's access",
        "The town server is unreachable",
        "session_end",
        "connections log: OK",
        "admin log: OK",
    ] {
        assert!(shown.contains(expected), "{expected:?} not shown:\n{shown}");
    }
    // It cleans up after itself: nothing it started is left running.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.ok()?.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&tag).then_some(cmdline)
        })
        .collect();
    assert!(left.is_empty(), "the demo left processes running: {left:?}");
}
