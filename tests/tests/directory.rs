//! Following the town's directory: a real OpenLDAP slapd over TLS (test
//! CA), the controller syncing from it, portactl showing and forcing
//! syncs, and a laptop in its namespace losing (and regaining) the town
//! server as its owner leaves (and rejoins) the mapped group.

use porta_tests::netns::{Lab, addr};
use porta_tests::slapd::{self, Slapd};
use porta_tests::town::{Town, path, wait_until};
use porta_tests::{TestController, binary, free_port};
use serde_json::Value;
use std::time::Duration;

/// Starts slapd with `spawn` and waits until it answers a bind.
fn slapd_ready(slapd: &Slapd, answers: impl Fn(&[&str]) -> bool) {
    let url = format!("ldap://127.0.0.1:{}", slapd.ldap_port);
    let probe = [
        "ldapwhoami",
        "-x",
        "-H",
        &url,
        "-D",
        slapd::BIND_DN,
        "-w",
        slapd::BIND_PASSWORD,
    ];
    wait_until("slapd", Duration::from_secs(15), || answers(&probe));
}

/// The user called `name` in `portactl users list --json`.
fn user<'a>(users: &'a Value, name: &str) -> Option<&'a Value> {
    users.as_array().unwrap().iter().find(|u| u["name"] == name)
}

/// portactl, its exit code and output, in the lab's town namespace.
fn portactl(lab: &Lab, town: &Town, args: &[&str]) -> (i32, Value, String) {
    let portactl = binary("portactl");
    let profiles = town.profiles();
    let mut all = vec![path(&portactl), "--config", path(&profiles), "--json"];
    all.extend_from_slice(args);
    let out = lab.run("town", &all).unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Changes the directory (LDIF run by ldapmodify in the town namespace).
fn change(lab: &Lab, slapd: &Slapd, name: &str, ldif: &str) {
    let file = slapd.change_file(name, ldif);
    let modify = slapd.modify_command(&file);
    let modify: Vec<&str> = modify.iter().map(String::as_str).collect();
    let out = lab.run("town", &modify).unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// LDIF that adds (`op` "add") or deletes ("delete") `member` of `group`.
fn membership(op: &str, group: &str, member: &str) -> String {
    format!("dn: {group}\nchangetype: modify\n{op}: member\nmember: {member}\n")
}

/// `porta up --foreground` for the laptop enrolled in `state`.
fn porta_up(
    lab: &mut Lab,
    state: &std::path::Path,
    interface: &str,
    log: &std::path::Path,
) -> usize {
    let porta = binary("porta");
    let command = [
        path(&porta),
        "--state",
        path(state),
        "--interface",
        interface,
        "up",
        "--foreground",
    ];
    lab.spawn("home", &command, log).unwrap()
}

#[test]
fn a_leaver_loses_the_tunnel_within_one_sync_and_returns_without_re_enrolling() {
    let mut lab = Lab::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slapd = Slapd::prepare(&dir.path().join("slapd"), free_port(), free_port());
    let command = slapd.command();
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    lab.spawn("town", &args, &dir.path().join("slapd.log"))
        .unwrap();
    slapd_ready(&slapd, |probe| {
        lab.run("town", probe).unwrap().status.success()
    });

    let config = dir.path().join("controller.toml");
    let url = format!("ldaps://127.0.0.1:{}", slapd.ldaps_port);
    std::fs::write(
        &config,
        slapd.directory_toml(&url, "interval = \"2s\"\nmax_disable_fraction = 0.5"),
    )
    .unwrap();
    let town = Town::start_serving(&mut lab, true, &[], &["--config", path(&config)]);

    // The mapped Porta groups do not exist yet: the sync says so and
    // changes nothing.
    let (code, _, stderr) = portactl(&lab, &town, &["directory", "sync"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("\"gis\"") && stderr.contains("does not exist"),
        "{stderr}"
    );
    town.admin(&lab, &["groups", "add", "gis"]);
    town.admin(&lab, &["groups", "add", "staff"]);
    town.admin(
        &lab,
        &["groups", "allow", "staff", &format!("{}/32", addr::SERVER)],
    );

    // The plan first: nothing changes with --dry-run.
    let (code, plan, stderr) = portactl(&lab, &town, &["directory", "sync", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let planned: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["user"].as_str().unwrap().into(),
                c["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    let creates = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), "create".to_string()))
            .collect()
    };
    // lluis is locked, pere is in no mapped group; anna comes through
    // the nested planning group.
    assert_eq!(planned, creates(&["anna", "jordi", "marta", "nuria"]));
    assert_eq!(plan["applied"], false);
    assert_eq!(
        town.admin(&lab, &["users", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Applied (by the next interval's sync or this one).
    let (code, _, stderr) = portactl(&lab, &town, &["directory", "sync"]);
    assert_eq!(code, 0, "{stderr}");
    let users = town.admin(&lab, &["users", "list"]);
    let nuria = user(&users, "nuria").expect("nuria");
    assert_eq!(nuria["display_name"], "Núria Puig i Solà");
    assert_eq!(nuria["email"], "nuria@ajuntament.test");
    assert_eq!(nuria["language"], "ca");
    assert_eq!(nuria["groups"], serde_json::json!(["gis"]));
    assert_eq!(
        user(&users, "anna").unwrap()["groups"],
        serde_json::json!(["staff"])
    );
    assert!(user(&users, "lluis").is_none() && user(&users, "pere").is_none());

    // marta's laptop reaches the town server.
    let state = town.enroll(&lab, "marta", "marta-laptop", "staff");
    let interface = lab.iface("marta");
    lab.owns_socket(&interface);
    let up = porta_up(&mut lab, &state, &interface, &dir.path().join("marta.log"));
    let reachable = |lab: &Lab| {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    };
    lab.wait_for(up, "marta's tunnel", Duration::from_secs(20), reachable);

    // She leaves the staff group in the directory: within a sync interval
    // (2 s here) the gateway drops her laptop.
    change(
        &lab,
        &slapd,
        "marta-leaves",
        &membership("delete", &slapd::group("staff"), &slapd::person("marta")),
    );
    wait_until("marta cut off", Duration::from_secs(15), || {
        !reachable(&lab)
    });
    // Her laptop is told why and stops.
    wait_until("porta up to end", Duration::from_secs(15), || {
        lab.exited(up).unwrap().is_some()
    });
    let said = std::fs::read_to_string(dir.path().join("marta.log")).unwrap();
    assert!(
        said.contains("Your account is paused")
            && said.contains("suspended by the town's directory"),
        "{said}"
    );
    let users = town.admin(&lab, &["users", "list"]);
    let marta = user(&users, "marta").unwrap();
    assert_eq!(marta["disabled"], true);
    assert_eq!(marta["suspended_by_directory"], true);
    let status = town.admin(&lab, &["directory", "status"]);
    assert_eq!(status["last_result"], "applied", "{status}");
    let admin_log = town.export(&lab, "admin");
    assert!(
        admin_log.iter().any(|r| r["action"] == "user.disable"
            && r["target"] == "marta"
            && r["actor"] == "directory"),
        "{admin_log:?}"
    );
    // Her device is still enrolled: suspended, not revoked.
    let devices = town.admin(&lab, &["devices", "list"]);
    assert!(devices.to_string().contains("marta-laptop"), "{devices}");

    // Back in the group: the same laptop reaches the server again.
    change(
        &lab,
        &slapd,
        "marta-returns",
        &membership("add", &slapd::group("staff"), &slapd::person("marta")),
    );
    wait_until("marta enabled", Duration::from_secs(15), || {
        user(&town.admin(&lab, &["users", "list"]), "marta").unwrap()["disabled"] == false
    });
    let up = porta_up(
        &mut lab,
        &state,
        &interface,
        &dir.path().join("marta-again.log"),
    );
    lab.wait_for(up, "marta back", Duration::from_secs(20), reachable);

    // Three of four leave at once: over the threshold (50%), so nothing
    // changes, the status and the admin log say why, and portactl exits 6.
    change(
        &lab,
        &slapd,
        "mass-removal",
        &format!(
            "{}\n{}\n{}",
            membership("delete", &slapd::group("staff"), &slapd::person("jordi")),
            membership("delete", &slapd::group("staff"), &slapd::group("planning")),
            membership("delete", &slapd::group("gis"), &slapd::person("nuria")),
        ),
    );
    wait_until("the refusal", Duration::from_secs(15), || {
        town.admin(&lab, &["directory", "status"])["last_result"] == "refused"
    });
    let users = town.admin(&lab, &["users", "list"]);
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["disabled"] == false),
        "{users}"
    );
    assert!(reachable(&lab), "marta keeps her access");
    let (code, refused, _) = portactl(&lab, &town, &["directory", "sync"]);
    assert_eq!(code, 6, "{refused}");
    assert!(
        refused["refused"].as_str().unwrap().contains("3 of 4"),
        "{refused}"
    );
    assert!(
        town.export(&lab, "admin")
            .iter()
            .any(|r| r["action"] == "directory.sync.refused"),
        "the refusal is in the admin log"
    );
    // A human looked: --force applies it.
    let (code, forced, stderr) = portactl(&lab, &town, &["directory", "sync", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(forced["applied"], true);
    let users = town.admin(&lab, &["users", "list"]);
    for name in ["jordi", "anna", "nuria"] {
        assert_eq!(user(&users, name).unwrap()["disabled"], true, "{name}");
    }
    assert!(
        town.export(&lab, "admin")
            .iter()
            .any(|r| r["action"] == "directory.sync.forced"),
        "who forced it is in the admin log"
    );
}

/// A controller on the host's loopback following `toml`, with the mapped
/// groups created; its admin client.
async fn controller_following(
    toml: &str,
) -> (
    TestController,
    porta_proto::pb::admin_client::AdminClient<porta_proto::connect::Authed>,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(&config, toml).unwrap();
    let mut controller = TestController::start_in(dir, &[]).await.unwrap();
    controller.stop().await.unwrap();
    controller
        .serve_with(&["--config", config.to_str().unwrap()])
        .await
        .unwrap();
    let mut admin = controller.admin().await;
    porta_tests::add_group(&mut admin, "gis").await;
    porta_tests::add_group(&mut admin, "staff").await;
    (controller, admin)
}

/// Logs portactl in to `controller` as a new admin; its profile file.
async fn portactl_login(
    controller: &TestController,
    admin: &mut porta_proto::pb::admin_client::AdminClient<porta_proto::connect::Authed>,
) -> std::path::PathBuf {
    let invitation = admin
        .create_api_credential(porta_proto::pb::CreateApiCredentialRequest {
            name: "it-desk".into(),
            role: porta_proto::pb::Role::Admin.into(),
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .invitation;
    let profile = controller.dir.path().join("p.toml");
    let login = std::process::Command::new(binary("portactl"))
        .args(["--config", profile.to_str().unwrap(), "login", &invitation])
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    profile
}

/// `portactl directory sync` with `profile`: exit code and stderr.
fn sync(profile: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(binary("portactl"))
        .args(["--config", profile.to_str().unwrap(), "directory", "sync"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn directory_faults_change_nothing_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (slapd, _server) = slapd_on_loopback(&dir.path().join("slapd"));
    let good = format!("ldaps://127.0.0.1:{}", slapd.ldaps_port);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong bind password",
            slapd.directory_toml(&good, "").replace(
                &slapd.dir.join("bind-password").display().to_string(),
                &{
                    let wrong = slapd.dir.join("wrong-password");
                    std::fs::write(&wrong, "not-the-password").unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                    wrong.display().to_string()
                },
            ),
            "invalid credentials",
        ),
        (
            "unreachable directory",
            slapd.directory_toml(&format!("ldaps://127.0.0.1:{}", free_port()), ""),
            "cannot reach the directory",
        ),
        (
            "a certificate from another CA",
            slapd.directory_toml(&good, "").replace(
                &slapd.ca_file().display().to_string(),
                &slapd.other_ca_file().display().to_string(),
            ),
            "UnknownIssuer",
        ),
        (
            "a certificate for another name",
            slapd.directory_toml(&format!("ldaps://localhost:{}", slapd.ldaps_port), ""),
            "not valid for name",
        ),
        (
            "a mapped directory group that does not exist",
            slapd
                .directory_toml(&good, "")
                .replace(&slapd::group("gis"), &slapd::group("gis-typo")),
            "does not exist in the directory",
        ),
    ];
    for (what, toml, expected) in cases {
        let (controller, mut admin) = controller_following(&toml).await;
        let profile = portactl_login(&controller, &mut admin).await;
        let (code, stderr) = sync(&profile);
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        assert!(
            !stderr.contains(slapd::BIND_PASSWORD),
            "{what}: the password leaked"
        );
        let users = admin
            .list_users(porta_proto::pb::ListUsersRequest {})
            .await
            .unwrap()
            .into_inner()
            .users;
        assert!(users.is_empty(), "{what}: {users:?}");
        let log = controller.log();
        assert!(
            log.contains("directory sync changed nothing"),
            "{what}: {log}"
        );
        assert!(
            !log.contains(slapd::BIND_PASSWORD),
            "{what}: the password leaked"
        );
    }

    // Clear text to another host is refused before anything connects.
    let dir2 = tempfile::tempdir().unwrap();
    let config = dir2.path().join("controller.toml");
    std::fs::write(
        &config,
        slapd.directory_toml("ldap://ldap.ajuntament.test:389", "tls = \"none\""),
    )
    .unwrap();
    let mut controller = TestController::start_in(dir2, &[]).await.unwrap();
    controller.stop().await.unwrap();
    let error = controller
        .serve_with(&["--config", config.to_str().unwrap()])
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("loopback"), "{error}");
}

/// Starts slapd on the host's loopback (killed when dropped).
fn slapd_on_loopback(dir: &std::path::Path) -> (Slapd, tokio::process::Child) {
    let slapd = Slapd::prepare(dir, free_port(), free_port());
    let command = slapd.command();
    let server = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    slapd_ready(&slapd, |probe| {
        std::process::Command::new(probe[0])
            .args(&probe[1..])
            .output()
            .unwrap()
            .status
            .success()
    });
    (slapd, server)
}

#[tokio::test]
async fn newcomers_from_the_directory_get_their_invitation_by_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (slapd, _server) = slapd_on_loopback(&dir.path().join("slapd"));
    let sink = porta_tests::smtp::Sink::start(&dir.path().join("sink")).await;
    let url = format!("ldaps://127.0.0.1:{}", slapd.ldaps_port);
    let toml = format!(
        "{}\n{}",
        sink.smtp_toml(porta_tests::smtp::SMTP_PASSWORD),
        slapd.directory_toml(&url, "auto_invite = true")
    );
    let (controller, mut admin) = controller_following(&toml).await;
    let profile = portactl_login(&controller, &mut admin).await;
    let (code, stderr) = sync(&profile);
    assert_eq!(code, 0, "{stderr}");
    let messages = sink.messages();
    let mut to: Vec<&str> = messages
        .iter()
        .map(|m| m["envelope_to"][0].as_str().unwrap())
        .collect();
    to.sort_unstable();
    assert_eq!(
        to,
        [
            "anna@ajuntament.test",
            "jordi@ajuntament.test",
            "marta@ajuntament.test",
            "nuria@ajuntament.test"
        ]
    );
    // In the language the directory gives (ca-ES → Catalan), for a first
    // device named after the login.
    let nuria = messages
        .iter()
        .find(|m| m["envelope_to"][0] == "nuria@ajuntament.test")
        .unwrap();
    assert_eq!(nuria["to"], "Núria Puig i Solà <nuria@ajuntament.test>");
    assert!(
        nuria["subject"]
            .as_str()
            .unwrap()
            .starts_with("La teva invitació")
    );
    assert!(nuria["text"].as_str().unwrap().contains("nuria-laptop"));
    let enrolled = porta_tests::smtp::redeem(&porta_tests::smtp::invitation_in(nuria));
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    // A second sync invites nobody again.
    let (code, stderr) = sync(&profile);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sink.messages().len(), 4);
}

#[test]
fn a_samba_active_directory_is_followed_with_its_real_attributes() {
    use porta_tests::samba::{self, SambaDc};
    let mut lab = Lab::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dc = SambaDc::provision(&dir.path().join("samba"));
    // The domain as an admin builds it: nested groups, a disabled account.
    for group in ["VPN-GIS", "VPN-Staff", "Planning"] {
        dc.tool(&["group", "add", group]);
    }
    let people = [
        ("nuria", "Núria", "Puig i Solà"),
        ("jordi", "Jordi", "Martí"),
        ("anna", "Anna", "Rossi"),
        ("lluis", "Lluís", "Soler"),
        ("porta", "Porta", "Service"),
    ];
    for (login, given, surname) in people {
        dc.tool(&[
            "user",
            "create",
            login,
            samba::PASSWORD,
            &format!("--given-name={given}"),
            &format!("--surname={surname}"),
            &format!("--mail-address={login}@ajuntament.test"),
        ]);
    }
    dc.tool(&["group", "addmembers", "VPN-GIS", "nuria,lluis"]);
    dc.tool(&["group", "addmembers", "VPN-Staff", "jordi,Planning"]);
    dc.tool(&["group", "addmembers", "Planning", "anna"]);
    dc.tool(&["user", "disable", "lluis"]);
    let command = dc.command();
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    lab.spawn("town", &args, &dir.path().join("samba.log"))
        .unwrap();
    let ca = dc.ca_file();
    let bind_dn = format!("CN=Porta Service,CN=Users,{}", samba::BASE);
    wait_until("the domain controller", Duration::from_secs(60), || {
        lab.run(
            "town",
            &[
                "env",
                &format!("LDAPTLS_CACERT={}", ca.display()),
                // (Samba has no "who am I" operation: read the root DSE.)
                "ldapsearch",
                "-x",
                "-H",
                "ldaps://127.0.0.1",
                "-D",
                &bind_dn,
                "-w",
                samba::PASSWORD,
                "-b",
                "",
                "-s",
                "base",
            ],
        )
        .unwrap()
        .status
        .success()
    });

    let password = dir.path().join("bind-password");
    std::fs::write(&password, samba::PASSWORD).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[directory]\nurl = \"ldaps://127.0.0.1\"\nca_file = \"{}\"\nbind_dn = \"{bind_dn}\"\n\
             password_file = \"{}\"\nbase_dn = \"{base}\"\npreset = \"active-directory\"\n\
             interval = \"1h\"\nmax_disable_fraction = 0.5\n[directory.groups]\n\
             \"CN=VPN-GIS,CN=Users,{base}\" = \"gis\"\n\"CN=VPN-Staff,CN=Users,{base}\" = \"staff\"\n",
            ca.display(),
            password.display(),
            base = samba::BASE,
        ),
    )
    .unwrap();
    let town = Town::start_serving(&mut lab, true, &[], &["--config", path(&config)]);
    town.admin(&lab, &["groups", "add", "gis"]);
    town.admin(&lab, &["groups", "add", "staff"]);

    let (code, _, stderr) = portactl(&lab, &town, &["directory", "sync"]);
    assert_eq!(code, 0, "{stderr}");
    let users = town.admin(&lab, &["users", "list"]);
    let nuria = user(&users, "nuria").expect("nuria, from sAMAccountName");
    assert_eq!(nuria["display_name"], "Núria Puig i Solà");
    assert_eq!(nuria["email"], "nuria@ajuntament.test");
    assert_eq!(nuria["groups"], serde_json::json!(["gis"]));
    assert_eq!(
        user(&users, "anna").expect("anna, through the nested Planning group")["groups"],
        serde_json::json!(["staff"])
    );
    assert!(user(&users, "jordi").is_some());
    assert!(
        user(&users, "lluis").is_none(),
        "userAccountControl's disabled bit"
    );
    assert!(user(&users, "porta").is_none(), "in no mapped group");

    // Disabled in the domain: suspended at the next sync; enabled: back.
    dc.tool(&["user", "disable", "jordi"]);
    let (code, _, stderr) = portactl(&lab, &town, &["directory", "sync"]);
    assert_eq!(code, 0, "{stderr}");
    let jordi = town.admin(&lab, &["users", "list"]);
    let jordi = user(&jordi, "jordi").unwrap();
    assert_eq!(jordi["disabled"], true);
    assert_eq!(jordi["suspended_by_directory"], true);
    dc.tool(&["user", "enable", "jordi"]);
    let (code, _, stderr) = portactl(&lab, &town, &["directory", "sync"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        user(&town.admin(&lab, &["users", "list"]), "jordi").unwrap()["disabled"],
        false
    );
}

#[tokio::test]
async fn a_second_entry_with_a_login_shadows_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (slapd, _server) = slapd_on_loopback(&dir.path().join("slapd"));
    let url = format!("ldaps://127.0.0.1:{}", slapd.ldaps_port);
    let (controller, mut admin) = controller_following(&slapd.directory_toml(&url, "")).await;
    let profile = portactl_login(&controller, &mut admin).await;
    let (code, stderr) = sync(&profile);
    assert_eq!(code, 0, "{stderr}");
    let portactl_json = |args: &[&str]| {
        let out = std::process::Command::new(binary("portactl"))
            .args(["--config", profile.to_str().unwrap(), "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let show = |name: &str| portactl_json(&["users", "show", name]);
    let marta = show("marta");
    assert_eq!(marta["disabled"], false, "{marta}");

    // Someone who may write contacts adds one with marta's login, in an OU
    // that sorts before the people; and gives jordi a name that reads
    // backwards from its middle.
    let run_ldif = |name: &str, ldif: &str| {
        let modify = slapd.modify_command(&slapd.change_file(name, ldif));
        let out = std::process::Command::new(&modify[0])
            .args(&modify[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_ldif(
        "contact",
        &format!(
            "dn: ou=contacts,{base}\nchangetype: add\nobjectClass: organizationalUnit\nou: contacts\n\n\
             dn: uid=marta,ou=contacts,{base}\nchangetype: add\nobjectClass: inetOrgPerson\n\
             uid: marta\ncn: Marta (supplier)\nsn: Supplier\nmail: marta@supplier.example\n",
            base = slapd::BASE
        ),
    );
    use base64::Engine;
    let reversed = base64::engine::general_purpose::STANDARD.encode("Jordi \u{202e}zeréP");
    run_ldif(
        "bidi",
        &format!(
            "dn: {}\nchangetype: modify\nreplace: displayName\ndisplayName:: {reversed}\n",
            slapd::person("jordi")
        ),
    );

    let plan = portactl_json(&["directory", "sync"]);
    let skipped = plan.to_string();
    assert!(
        skipped.contains("uid=marta,ou=contacts") && skipped.contains(&slapd::person("marta")),
        "both entries are reported: {plan}"
    );
    let marta_after = show("marta");
    assert_eq!(
        marta_after["disabled"], false,
        "marta is not suspended: {marta_after}"
    );
    assert_eq!(
        marta_after["directory_dn"], marta["directory_dn"],
        "marta is still linked to her own entry"
    );
    assert_eq!(marta_after["email"], marta["email"]);
    let jordi = show("jordi");
    assert_eq!(jordi["display_name"], "Jordi zeréP", "{jordi}");
}
