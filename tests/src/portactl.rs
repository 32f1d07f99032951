//! `portactl`, the real binary, with its own credentials file.

use crate::binary;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// portactl with its own credentials file.
pub struct Portactl {
    pub config: PathBuf,
}

impl Portactl {
    pub fn new(dir: &Path) -> Self {
        Self {
            config: dir.join("portactl.toml"),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(binary("portactl"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// Runs with --json, expects success, parses stdout.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stdout))
        })
    }

    /// Runs and returns (exit code, stderr).
    pub async fn fails(&self, args: &[&str]) -> (i32, String) {
        let output = self.run(args).await;
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}
