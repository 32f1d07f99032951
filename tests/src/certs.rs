//! A throwaway certificate authority for tests of TLS servers we do not
//! write ourselves (slapd, the SMTP sink), made with openssl.

use std::path::Path;
use std::process::Command;

/// Writes into `dir`: a CA (`ca.pem`), a server certificate it signed for
/// `name` and 127.0.0.1 (`server.pem`, `server.key`), and an unrelated
/// second CA (`other-ca.pem`).
pub fn make(dir: &Path, name: &str) {
    let run =
        |args: &[&str]| crate::slapd::run_ok(Command::new("openssl").args(args).current_dir(dir));
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=Ajuntament test {ca}"),
        ]);
    }
    issue(
        dir,
        "server",
        name,
        &format!("subjectAltName=DNS:{name},IP:127.0.0.1\n"),
    );
}

/// Writes into `dir` a client certificate the CA of [`make`] signed for
/// `name` (`client.pem`, `client.key`, mode 0600), for servers that
/// authenticate their clients (rsyslog's RELP over TLS).
pub fn client(dir: &Path, name: &str) {
    issue(dir, "client", name, "extendedKeyUsage=clientAuth\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// A key and a certificate `ca` signs for `name` with `extensions`:
/// `{stem}.key`, `{stem}.pem`.
fn issue(dir: &Path, stem: &str, name: &str, extensions: &str) {
    let run =
        |args: &[&str]| crate::slapd::run_ok(Command::new("openssl").args(args).current_dir(dir));
    let (key, csr, ext, pem) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.ext"),
        format!("{stem}.pem"),
    );
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(dir.join(&ext), extensions).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
}
