//! The `porta-controller` command line, run as a real process.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn controller(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porta-controller"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn init_prints_one_admin_invitation_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let first = controller(&[
        "init",
        "--data",
        data,
        "--endpoint",
        "vpn.calonge.cat",
        "--json",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["wg_endpoint"], "vpn.calonge.cat:51820");
    assert_eq!(report["api_endpoint"], "vpn.calonge.cat:7443");
    assert!(
        report["admin_invitation"]
            .as_str()
            .unwrap()
            .starts_with("porta1_")
    );
    assert_eq!(report["vpn_prefixes"][0], "10.77.0.0/16");
    assert!(
        report["vpn_prefixes"][1]
            .as_str()
            .unwrap()
            .starts_with("fd")
    );

    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [("", 0o700), ("gateway.key", 0o600), ("tls/key.pem", 0o600)] {
        let meta = std::fs::metadata(std::path::Path::new(data).join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    // The invitation is not kept anywhere on disk.
    let invitation = report["admin_invitation"].as_str().unwrap();
    let token = &invitation[invitation.len() - 20..];
    let grep = Command::new("grep")
        .args(["-r", "-a", "-i", token, data])
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "the invitation was written to disk");

    let second = controller(&["init", "--data", data]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("will not overwrite"),
        "{}",
        stderr(&second)
    );
}

#[test]
fn init_rejects_bad_flags_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--vpn-prefix", "10.0.0.0/31"], "too small"),
        (&["--vpn-prefix", "10.0.0.0/33"], "invalid value"),
        (&["--route", "banana"], "invalid value"),
        (&["--token-ttl", "5s"], "--token-ttl"),
        (&["--endpoint", "host:notaport"], "not a host or host:port"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["init", "--data", data];
        args.extend_from_slice(flags);
        let output = controller(&args);
        assert!(!output.status.success(), "{flags:?} accepted");
        assert!(
            stderr(&output).contains(needle),
            "{flags:?}: {}",
            stderr(&output)
        );
        let _ = std::fs::remove_dir_all(data);
    }
}

#[test]
fn serve_reads_its_config_file_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("porta.toml");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\nlisten = \"127.0.0.1:{port}\"\nlog_format = \"json\"\ngateway = false\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_porta-controller"))
        .args(["serve", "--init", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = loop {
        assert!(Instant::now() < deadline, "no listening line");
        let line = lines.next().expect("serve exited").unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if value["message"] == "listening" {
            break value;
        }
    };
    assert_eq!(listening["addr"], format!("127.0.0.1:{port}"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "SIGTERM is a clean exit");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        stdout.contains("porta1_"),
        "serve --init printed the first invitation: {stdout}"
    );

    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
    let output = controller(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a valid config file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn init_adopts_the_towns_own_certificate_and_reports_its_openssl_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("town.crt"), dir.path().join("town.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
        ])
        .args([
            "-subj",
            "/CN=vpn.collegno.example",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let openssl = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            cert.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let openssl = String::from_utf8(openssl.stdout).unwrap();
    let expected = openssl.trim().rsplit('=').next().unwrap().to_owned();

    let data = dir.path().join("data");
    let output = controller(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["certificate_sha256"], expected.as_str());

    // A key file that is not a key is refused before anything is created.
    let other = dir.path().join("other");
    let output = controller(&[
        "init",
        "--data",
        other.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no PEM private key"),
        "{}",
        stderr(&output)
    );
}
