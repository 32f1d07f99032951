//! A real rsyslog (Debian's `rsyslog` and `rsyslog-relp`) as the town's
//! SIEM collector, on loopback: RELP over TLS (imrelp, which also asks
//! for the sender's certificate), syslog over TLS (imtcp with GnuTLS,
//! octet-counted frames) and JSON lines over TLS, each input writing the
//! messages exactly as received to its own file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or stopped) rsyslogd with its own config and files.
pub struct Rsyslog {
    dir: PathBuf,
    child: Option<Child>,
    /// imrelp's port.
    pub relp: u16,
    /// imtcp's syslog port.
    pub syslog: u16,
    /// imtcp's JSON-lines port.
    pub jsonl: u16,
}

impl Rsyslog {
    /// Makes a CA, the collector's certificate for `localhost` and a
    /// client certificate for the controller, writes the config, starts
    /// rsyslogd and waits until its inputs listen.
    pub fn start(dir: &Path) -> Self {
        crate::certs::make(dir, "localhost");
        crate::certs::client(dir, "porta-controller");
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let mut collector = Self {
            dir: dir.to_owned(),
            child: None,
            relp: crate::free_port(),
            syslog: crate::free_port(),
            jsonl: crate::free_port(),
        };
        let d = dir.display();
        let config = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imrelp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imrelp" port="{relp}" address="127.0.0.1" ruleset="relp"
      tls="on" tls.cacert="{d}/ca.pem" tls.mycert="{d}/server.pem"
      tls.myprivkey="{d}/server.key" tls.authMode="certvalid")
input(type="imtcp" port="{syslog}" address="127.0.0.1" ruleset="syslog")
input(type="imtcp" port="{jsonl}" address="127.0.0.1" ruleset="jsonl")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="relp") {{ action(type="omfile" file="{d}/relp.log" template="raw") }}
ruleset(name="syslog") {{ action(type="omfile" file="{d}/syslog.log" template="raw") }}
ruleset(name="jsonl") {{ action(type="omfile" file="{d}/jsonl.log" template="raw") }}
"#,
            relp = collector.relp,
            syslog = collector.syslog,
            jsonl = collector.jsonl,
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        collector.run();
        collector
    }

    fn run(&mut self) {
        assert!(self.child.is_none(), "rsyslogd runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.out"))
            .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rsyslogd (Debian's rsyslog) is installed");
        self.child = Some(child);
        for port in [self.relp, self.syslog, self.jsonl] {
            let listening = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            assert!(
                listening,
                "rsyslogd does not listen on {port}: {}",
                self.output()
            );
        }
    }

    /// Stops rsyslogd (SIGTERM: it writes what it has and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same config; the files are appended to.
    pub fn start_again(&mut self) {
        self.run();
    }

    /// What rsyslogd itself said.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }

    /// The file an input writes (`relp`, `syslog` or `jsonl`).
    pub fn file(&self, input: &str) -> PathBuf {
        self.dir.join(format!("{input}.log"))
    }

    /// The `[feed]` section that sends to `scheme` (`relp`, `syslog-tls`,
    /// `jsonl-tls`) with this collector's CA and the client certificate.
    pub fn feed_toml(&self, scheme: &str) -> String {
        let port = match scheme {
            "relp" => self.relp,
            "syslog-tls" => self.syslog,
            _ => self.jsonl,
        };
        let d = self.dir.display();
        format!(
            "[feed]\ntarget = \"{scheme}://localhost:{port}\"\nca_file = \"{d}/ca.pem\"\n\
             client_cert = \"{d}/client.pem\"\nclient_key = \"{d}/client.key\"\n"
        )
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
