//! A real SMTP server on loopback for the e-mail tests: `smtp/sink.py`
//! (aiosmtpd, STARTTLS with a test CA, AUTH), which stores every message
//! it accepts and what Python's MIME parser reads in it.

use crate::free_port;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SMTP login the sink accepts.
pub const SMTP_USER: &str = "porta";
/// Its password.
pub const SMTP_PASSWORD: &str = "smtp-secret-xyz";

/// The running sink (killed when dropped).
pub struct Sink {
    /// Where messages are stored.
    pub dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _server: tokio::process::Child,
}

impl Sink {
    /// Starts it, storing into `dir`.
    pub async fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        crate::certs::make(dir, "mail.ajuntament.test");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py");
        // Debian's interpreter, where python3-aiosmtpd is installed.
        let server = tokio::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .args([SMTP_USER, SMTP_PASSWORD])
            .stderr(std::fs::File::create(dir.join("sink.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        crate::town::wait_until("the SMTP sink", Duration::from_secs(20), || {
            dir.join("ready").exists()
        });
        Self {
            dir: dir.to_owned(),
            port,
            _server: server,
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The controller's `[smtp]` section for this sink.
    pub fn smtp_toml(&self, password: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let file = self.dir.join(format!("password-{}", password.len()));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n\
             username = \"{SMTP_USER}\"\npassword_file = \"{}\"\n\
             from = \"Informàtica de l'Ajuntament <informatica@ajuntament.test>\"\n\
             reply_to = \"suport@ajuntament.test\"\ndefault_language = \"en\"\n",
            self.port,
            self.dir.join("ca.pem").display(),
            file.display()
        )
    }
}

/// The invitation a message carries (the line after the `porta:` link
/// that holds the invitation by itself).
pub fn invitation_in(message: &Value) -> String {
    let text = message["text"].as_str().unwrap();
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("porta:"))
        .unwrap_or_else(|| panic!("no porta: link in {text}"));
    assert!(
        text.lines().any(|l| l == link),
        "the invitation also stands alone as text"
    );
    assert!(
        message["html"]
            .as_str()
            .unwrap()
            .contains(&format!("href=\"porta:{link}\""))
    );
    link.to_owned()
}

/// `porta enroll` with `invitation` into a fresh state directory.
pub fn redeem(invitation: &str) -> std::process::Output {
    let state = tempfile::tempdir().unwrap();
    std::process::Command::new(crate::binary("porta"))
        .arg("--state")
        .arg(state.path())
        .args(["enroll", invitation])
        .output()
        .unwrap()
}
