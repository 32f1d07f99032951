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
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=DNS:{name},IP:127.0.0.1\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}
