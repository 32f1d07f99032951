//! A real Samba Active Directory domain controller for the directory tests
//! (Debian's samba, samba-ad-dc, samba-ad-provision): provisioned into a
//! test directory (`samba-tool domain provision`, no DNS), serving LDAPS on
//! 127.0.0.1 of the namespace it is started in, with a certificate from
//! [`crate::certs`]. People and groups are made with `samba-tool`, as a
//! domain admin would.

use crate::slapd::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The domain's base DN.
pub const BASE: &str = "DC=ajuntament,DC=test";
/// The administrator's password (also the bind account's, for brevity).
pub const PASSWORD: &str = "Adm1n-Secret!x";
/// The name in the DC's certificate.
pub const SERVER_NAME: &str = "dc1.ajuntament.test";

/// A provisioned domain controller, not yet running.
pub struct SambaDc {
    /// Its files: smb.conf, databases, certificates.
    pub dir: PathBuf,
}

impl SambaDc {
    /// Provisions the domain AJUNTAMENT.TEST in `dir` (about 7 s).
    pub fn provision(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        crate::certs::make(&dir.join("tls"), SERVER_NAME);
        let tls = dir.join("tls");
        // Samba refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tls.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let option = |key: &str, file: &str| format!("--option={key}={}", tls.join(file).display());
        run_ok(Command::new("samba-tool").args([
            "domain",
            "provision",
            &format!("--targetdir={}", dir.join("dc").display()),
            "--realm=AJUNTAMENT.TEST",
            "--domain=AJUNTAMENT",
            "--server-role=dc",
            "--dns-backend=NONE",
            &format!("--adminpass={PASSWORD}"),
            "--option=interfaces=lo",
            "--option=bind interfaces only=yes",
            "--option=tls enabled=yes",
            &option("tls keyfile", "server.key"),
            &option("tls certfile", "server.pem"),
            &option("tls cafile", "ca.pem"),
        ]));
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Its smb.conf.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("dc/etc/smb.conf")
    }

    /// Runs `samba-tool ARGS` against this domain's database.
    pub fn tool(&self, args: &[&str]) {
        run_ok(
            Command::new("samba-tool")
                .args(args)
                .arg("-s")
                .arg(self.conf()),
        );
    }

    /// The command that runs the DC in the foreground (one process).
    pub fn command(&self) -> Vec<String> {
        vec![
            "samba".into(),
            "-i".into(),
            "-M".into(),
            "single".into(),
            "-s".into(),
            self.conf().display().to_string(),
        ]
    }

    /// The CA that signed the DC's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }
}
