//! What staff are told when something breaks, against real processes: the
//! tunnel service (`porta daemon`) on a laptop in `home`, the controller
//! with its embedded gateway in `town`.

use porta_tests::binary;
use porta_tests::laptop::{TunnelService, town_server_reachable};
use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, path, wait_until};
use serde_json::Value;
use std::time::Duration;

/// `porta` against the service's socket, in English.
fn porta(lab: &Lab, service: &TunnelService, args: &[&str]) -> std::process::Output {
    service.porta(lab, args)
}

fn status(lab: &Lab, service: &TunnelService) -> Value {
    serde_json::from_slice(&porta(lab, service, &["status", "--json"]).stdout)
        .unwrap_or(Value::Null)
}

#[test]
fn a_paused_person_is_told_so_and_comes_back_without_a_new_invitation() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    let invitation = town.invite_to_lan(&lab, "anna", "anna-pc");
    let tunnel = lab.iface("t");
    let mut service = TunnelService::start(&mut lab, &town, &tunnel);
    service.enroll_and_connect(&lab, &invitation);

    // IT pauses Anna's account: her laptop says so (not "revoked"), and
    // the auditor reads why her session ended.
    town.admin(&lab, &["users", "disable", "anna"]);
    wait_until(
        "the laptop to say it is paused",
        Duration::from_secs(30),
        || status(&lab, &service)["state"] == "paused",
    );
    assert_eq!(status(&lab, &service)["refusal"], "user-disabled");
    let said = String::from_utf8_lossy(&porta(&lab, &service, &["status"]).stdout).into_owned();
    assert!(said.contains("Your account is paused"), "{said}");
    let up = porta(&lab, &service, &["up"]);
    assert!(!up.status.success());
    let refused = String::from_utf8_lossy(&up.stderr).into_owned();
    assert!(refused.contains("Your account is paused"), "{refused}");
    let mut sessions = Vec::new();
    wait_until("anna's session end", Duration::from_secs(15), || {
        sessions = town.sessions_of(&lab, "anna-pc");
        sessions.iter().any(|r| r["kind"] == "session_end")
    });
    let end = sessions
        .iter()
        .find(|r| r["kind"] == "session_end")
        .unwrap();
    assert_eq!(end["reason"], "user disabled", "{end}");

    // A restart of the service keeps the pause, and asks again.
    assert_eq!(lab.stop(service.handle).unwrap(), Some(0));
    service.start_again(&mut lab);
    assert_eq!(status(&lab, &service)["state"], "paused");

    // IT lets her back: the laptop reconnects by itself, as it was left,
    // with the same enrollment (no new invitation, nobody at the laptop).
    town.admin(&lab, &["users", "enable", "anna"]);
    wait_until(
        "the laptop back on its own",
        Duration::from_secs(120),
        || town_server_reachable(&lab),
    );
    assert_eq!(status(&lab, &service)["state"], "connected");
    assert!(
        service
            .log()
            .contains("the controller accepts this computer again")
    );

    // Revoked is another thing, and said so.
    town.admin(&lab, &["devices", "revoke", "anna-pc"]);
    wait_until(
        "the laptop to say it is revoked",
        Duration::from_secs(30),
        || status(&lab, &service)["state"] == "revoked",
    );
    assert_eq!(status(&lab, &service)["refusal"], "device-revoked");
    let said = String::from_utf8_lossy(&porta(&lab, &service, &["status"]).stdout).into_owned();
    assert!(said.contains("withdrew this computer's access"), "{said}");
    wait_until("the revoked session's end", Duration::from_secs(15), || {
        town.sessions_of(&lab, "anna-pc")
            .iter()
            .any(|r| r["kind"] == "session_end" && r["reason"] == "revoked")
    });

    // The auditor opens the connection log in a spreadsheet: the tunnel
    // address reads as it is (no stray apostrophe), times name their zone.
    let tunnel_address = end["tunnel_address"].as_str().unwrap().to_owned();
    let export = |format: &str| {
        let out = town
            .dir
            .path()
            .join(format!("connections-{format}.{format}"));
        lab.exec(
            "town",
            &[
                path(&binary("portactl")),
                "--config",
                path(&town.profiles()),
                "logs",
                "export",
                "--kind",
                "connections",
                "--format",
                format,
                "--out",
                path(&out),
            ],
        )
        .unwrap();
        out
    };
    let shown = town.dir.path().join("shown");
    let as_shown = |file: &std::path::Path, infilter: &[&str]| {
        let mut args = infilter.to_vec();
        args.extend(["--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1"]);
        porta_tests::soffice(&[file], &args, &shown);
        std::fs::read_to_string(shown.join(file.with_extension("csv").file_name().unwrap()))
            .unwrap()
    };
    let csv = as_shown(&export("csv"), &["--infilter=CSV:44,34,76,1"]);
    assert!(csv.contains(&format!(",\"{tunnel_address}\",")), "{csv}");
    assert!(!csv.contains(&format!("'{tunnel_address}")), "{csv}");
    let xlsx = as_shown(&export("xlsx"), &[]);
    let session_end = xlsx
        .lines()
        .find(|line| line.contains("session_end") && line.contains("user disabled"))
        .unwrap_or_else(|| panic!("{xlsx}"));
    assert!(session_end.contains(" UTC,"), "{session_end}");
}

#[test]
fn a_laptop_is_told_soon_whether_the_town_or_its_own_internet_does_not_answer() {
    let mut lab = Lab::new().unwrap();
    let mut town = Town::start(&mut lab, true);
    let invitation = town.invite_to_lan(&lab, "anna", "anna-pc");
    let tunnel = lab.iface("t");
    let service = TunnelService::start(&mut lab, &town, &tunnel);
    service.enroll_and_connect(&lab, &invitation);
    // Anna works: her computer keeps sending to the town server.
    lab.spawn(
        "home",
        &["ping", "-i", "0.5", addr::SERVER],
        &town.dir.path().join("ping.log"),
    )
    .unwrap();
    let told = |lab: &Lab, problem: &str| {
        let status = status(lab, &service);
        status["state"] == "connecting" && status["problems"] == serde_json::json!([problem])
    };

    // The town box stops (controller and embedded gateway); its host still
    // answers. Before, the laptop said "connected" for minutes.
    town.stop(&mut lab);
    wait_until(
        "the town's gateway does not answer",
        Duration::from_secs(30),
        || told(&lab, "gateway_unreachable"),
    );
    town.start_again(&mut lab);
    wait_until("connected again", Duration::from_secs(60), || {
        let status = status(&lab, &service);
        status["state"] == "connected" && status["problems"] == serde_json::json!([])
    });

    // Now the home's internet goes: nothing answers, not even the town's
    // host, and the laptop says it is the connection, not the town.
    let uplink = lab.iface("townhome");
    lab.exec("town", &["ip", "link", "set", &uplink, "down"])
        .unwrap();
    wait_until("nothing answers", Duration::from_secs(40), || {
        told(&lab, "offline")
    });
    let said = String::from_utf8_lossy(&porta(&lab, &service, &["status"]).stdout).into_owned();
    assert!(said.contains("Nothing on the internet answers"), "{said}");
    lab.exec("town", &["ip", "link", "set", &uplink, "up"])
        .unwrap();
    wait_until("back once the internet is", Duration::from_secs(60), || {
        status(&lab, &service)["state"] == "connected"
    });
}

#[test]
fn an_admin_is_told_what_restricts_nothing_and_what_a_device_may_reach() {
    let mut lab = Lab::new().unwrap();
    let lan = "172.31.2.0/24";
    let town = Town::start_with(&mut lab, true, &["--route", lan]);
    // init said it: the endpoint is private (staff at home cannot reach
    // it), and a town-wide route is open to every device.
    let warnings = town.init["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "endpoint {}:51820 is a private",
            addr::TOWN_PUBLIC
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!("--route {lan} is reached by every device")),
        "{warnings}"
    );
    assert!(town.log().contains("is a private or local address"));

    // A group rule inside that route restricts nothing: said when it is
    // made, and in the device's own explanation.
    town.admin(&lab, &["groups", "add", "gis"]);
    let allow = lab
        .run(
            "town",
            &[
                path(&binary("portactl")),
                "--config",
                path(&town.profiles()),
                "groups",
                "allow",
                "gis",
                &format!("{}/32", addr::SERVER),
                "--proto",
                "tcp",
                "--ports",
                "443",
            ],
        )
        .unwrap();
    assert!(allow.status.success());
    let warned = String::from_utf8_lossy(&allow.stderr).into_owned();
    assert!(
        warned.contains(&format!("inside {lan}, a town-wide route"))
            && warned.contains("restricts nothing"),
        "{warned}"
    );
    town.enroll(&lab, "carla", "carla-pc", "gis");
    let shown = town.admin(&lab, &["devices", "show", "carla-pc"]);
    let reach = shown["reach"].as_array().unwrap();
    assert!(
        reach
            .iter()
            .any(|r| r["destination"].as_str().unwrap().starts_with(lan)
                && r["because"] == "everyone"),
        "{shown}"
    );
    assert!(
        reach
            .iter()
            .any(|r| r["because"] == "gis" && r["covered_by"] == lan),
        "{shown}"
    );
    let text = lab
        .exec(
            "town",
            &[
                path(&binary("portactl")),
                "--config",
                path(&town.profiles()),
                "devices",
                "show",
                "carla-pc",
            ],
        )
        .unwrap();
    let said = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        said.contains("may reach:")
            && said.contains("town-wide route: every device")
            && said.contains(&format!(
                "group gis; restricts nothing: the town-wide route {lan}"
            )),
        "{said}"
    );
}
