//! The data plane end to end, in network namespaces: the real `porta`
//! client tunnels a laptop (`home`) into the town network (`lan`) through
//! a wireguard-go gateway configured with `wg` from the controller's own
//! gateway key — interop with the reference implementation — while the
//! controller manages the device.
//!
//! Longer than our usual file on purpose: each test is one scenario in
//! its own lab (namespaces, real processes, minutes of wall time), read
//! top to bottom as a story; splitting a scenario would hide its order.

use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, iperf3_report, iperf3_through_tunnel, json, path, wait_until};
use porta_tests::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn the_porta_client_reaches_the_town_server_through_a_wireguard_go_gateway() {
    let mut lab = Lab::new().unwrap();
    // The gateway here is wireguard-go, so the embedded one stays off.
    let mut town = Town::start(&mut lab, false);
    let (init, porta) = (town.init.clone(), binary("porta"));
    let porta = path(&porta);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.0/24"]);

    // The laptop enrolls; its key never leaves it.
    let state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let device = town.admin(&lab, &["devices", "show", "anna-laptop"]);
    let device_key = device["public_key"].as_str().unwrap();
    let private = std::fs::read_to_string(state.join("private.key")).unwrap();
    assert!(
        !serde_json::to_string(&device)
            .unwrap()
            .contains(private.trim())
    );

    // The gateway: wireguard-go with the controller's gateway key, set up with wg.
    let gateway = lab.iface("gw");
    lab.wireguard_go("town", &gateway, &town.dir.path().join("wg-gateway.log"))
        .unwrap();
    let gateway_key = path(&town.data().join("gateway.key")).to_owned();
    lab.exec(
        "town",
        &[
            "wg",
            "set",
            &gateway,
            "private-key",
            &gateway_key,
            "listen-port",
            "51820",
            "peer",
            device_key,
            "allowed-ips",
            "10.77.0.2/32",
        ],
    )
    .unwrap();
    lab.exec(
        "town",
        &["ip", "addr", "add", "10.77.0.1/16", "dev", &gateway],
    )
    .unwrap();
    lab.exec("town", &["ip", "link", "set", &gateway, "up"])
        .unwrap();

    // porta up.
    let tunnel = lab.iface("c");
    lab.owns_socket(&tunnel);
    let status = |lab: &Lab| {
        lab.run(
            "home",
            &[
                porta,
                "--state",
                path(&state),
                "--interface",
                &tunnel,
                "status",
                "--json",
            ],
        )
        .unwrap()
    };
    let up_log = town.dir.path().join("up.log");
    let up = lab
        .spawn(
            "home",
            &[
                porta,
                "--state",
                path(&state),
                "--interface",
                &tunnel,
                "up",
                "--foreground",
            ],
            &up_log,
        )
        .unwrap();
    lab.wait_for(up, "the first handshake", Duration::from_secs(15), |lab| {
        let output = status(lab);
        output.status.success() && !json(output)["last_handshake"].is_null()
    });
    // The controller hears from the laptop: its client, OS and handshake.
    wait_until(
        "the laptop's status report",
        Duration::from_secs(15),
        || {
            let device = town.admin(&lab, &["devices", "show", "anna-laptop"]);
            !device["last_handshake_at"].is_null()
        },
    );
    let device = town.admin(&lab, &["devices", "show", "anna-laptop"]);
    assert_eq!(device["client_version"], env!("CARGO_PKG_VERSION"));
    assert!(!device["last_seen_at"].is_null(), "{device}");
    assert!(!device["os"].as_str().unwrap().is_empty(), "{device}");
    let listed = town.admin(&lab, &["devices", "list"]);
    assert_eq!(listed[0]["client_version"], env!("CARGO_PKG_VERSION"));

    // Traffic: ICMP, TCP and UDP to the town server.
    lab.exec("home", &["ping", "-c", "3", "-W", "2", addr::SERVER])
        .unwrap();
    iperf3_through_tunnel(&mut lab, &town.dir.path().join("iperf.log"));
    let tcp = iperf3_report(&lab, "home", addr::SERVER, &["-t", "1"]);
    assert!(
        tcp["end"]["sum_received"]["bytes"].as_u64().unwrap() > 100_000,
        "TCP moved data"
    );
    let udp = iperf3_report(&lab, "home", addr::SERVER, &["-u", "-b", "20M", "-t", "1"]);
    assert!(
        udp["end"]["sum"]["bytes"].as_u64().unwrap() > 100_000,
        "UDP moved data"
    );
    assert!(
        udp["end"]["sum"]["lost_percent"].as_f64().unwrap() < 20.0,
        "{}",
        udp["end"]["sum"]
    );

    // `wg show` reads porta's control socket: right keys, a real handshake.
    let shown =
        String::from_utf8(lab.exec("home", &["wg", "show", &tunnel]).unwrap().stdout).unwrap();
    assert!(
        shown.contains(init["gateway_public_key"].as_str().unwrap()),
        "{shown}"
    );
    assert!(
        shown.contains("latest handshake") && shown.contains("seconds ago"),
        "{shown}"
    );
    assert!(!shown.contains("years ago"), "{shown}");
    let dumped = String::from_utf8(
        lab.exec("home", &["wg", "show", &tunnel, "public-key"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(dumped.trim(), device_key);
    assert!(json(status(&lab))["rx_bytes"].as_u64().unwrap() > 100_000);

    // `porta export-wg` loads into wireguard-go with wg (via wg-quick
    // strip); it warns that it holds the private key, and --out writes it
    // readable only by its owner.
    let printed = lab
        .exec("home", &[porta, "--state", path(&state), "export-wg"])
        .unwrap();
    assert!(String::from_utf8_lossy(&printed.stderr).contains("private key"));
    let conf = town.dir.path().join(format!("{}.conf", lab.iface("x")));
    lab.exec(
        "home",
        &[
            porta,
            "--state",
            path(&state),
            "export-wg",
            "--out",
            path(&conf),
        ],
    )
    .unwrap();
    assert_eq!(std::fs::read(&conf).unwrap(), printed.stdout);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let stripped = lab
        .exec("lan", &["wg-quick", "strip", path(&conf)])
        .unwrap()
        .stdout;
    let stripped_path = town.dir.path().join("stripped.conf");
    std::fs::write(&stripped_path, stripped).unwrap();
    let imported = lab.iface("x");
    lab.wireguard_go("lan", &imported, &town.dir.path().join("wg-import.log"))
        .unwrap();
    lab.exec("lan", &["wg", "setconf", &imported, path(&stripped_path)])
        .unwrap();
    let peers = String::from_utf8(
        lab.exec("lan", &["wg", "show", &imported, "peers"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(peers.trim(), init["gateway_public_key"].as_str().unwrap());

    // A route added with portactl reaches the running tunnel.
    town.admin(&lab, &["groups", "allow", "lan", "172.31.3.0/24"]);
    wait_until("the new route", Duration::from_secs(15), || {
        let routes = lab
            .exec("home", &["ip", "route", "show", "dev", &tunnel])
            .unwrap()
            .stdout;
        String::from_utf8_lossy(&routes).contains("172.31.3.0/24")
    });

    // With the controller stopped, the tunnel keeps working.
    town.stop(&mut lab);
    lab.exec("home", &["ping", "-c", "2", "-W", "2", addr::SERVER])
        .unwrap();
    town.start_again(&mut lab);

    // Revocation takes the tunnel down, with a message a person can read.
    town.admin(&lab, &["devices", "revoke", "anna-laptop"]);
    wait_until("porta up to stop", Duration::from_secs(45), || {
        lab.exited(up).unwrap().is_some()
    });
    assert_eq!(lab.exited(up).unwrap(), Some(1));
    let log = std::fs::read_to_string(&up_log).unwrap();
    assert!(
        log.contains("This device was revoked by your IT administrator"),
        "{log}"
    );
    assert!(
        !lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn the_embedded_gateway_enforces_groups_and_cuts_revoked_devices() {
    let mut lab = Lab::new().unwrap();
    // A second town server address, reachable only by the "web" group on TCP 5201.
    let lan_if = lab.iface("lantown");
    lab.exec(
        "lan",
        &["ip", "addr", "add", "172.31.2.3/24", "dev", &lan_if],
    )
    .unwrap();

    let town = Town::start(&mut lab, true);
    let (init, porta) = (town.init.clone(), binary("porta"));
    let porta = path(&porta);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    town.admin(&lab, &["groups", "add", "web"]);
    town.admin(
        &lab,
        &[
            "groups",
            "allow",
            "web",
            "172.31.2.3/32",
            "--proto",
            "tcp",
            "--ports",
            "5201,7000",
        ],
    );

    // Anna runs porta; she is in "lan".
    let anna_state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let anna_if = lab.iface("anna");
    lab.owns_socket(&anna_if);
    lab.spawn(
        "home",
        &[
            porta,
            "--state",
            path(&anna_state),
            "--interface",
            &anna_if,
            "up",
            "--foreground",
        ],
        &town.dir.path().join("anna.log"),
    )
    .unwrap();
    wait_until("anna's tunnel", Duration::from_secs(15), || {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    });

    // Bernat runs wireguard-go, set up from `porta export-wg`; he is in "web".
    let bernat_state = town.enroll(&lab, "bernat", "bernat-pc", "web");
    let conf = town.dir.path().join("bernat.conf");
    std::fs::write(
        &conf,
        lab.exec(
            "home",
            &[porta, "--state", path(&bernat_state), "export-wg"],
        )
        .unwrap()
        .stdout,
    )
    .unwrap();
    let stripped = town.dir.path().join("bernat.stripped");
    std::fs::write(
        &stripped,
        lab.exec("home", &["wg-quick", "strip", path(&conf)])
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bernat_if = lab.iface("bern");
    lab.wireguard_go("home", &bernat_if, &town.dir.path().join("bernat-wg.log"))
        .unwrap();
    lab.exec("home", &["wg", "setconf", &bernat_if, path(&stripped)])
        .unwrap();
    let bernat_address = town.admin(&lab, &["devices", "show", "bernat-pc"])["addresses"][0]
        .as_str()
        .unwrap()
        .to_owned();
    lab.exec(
        "home",
        &[
            "ip",
            "addr",
            "add",
            &format!("{bernat_address}/32"),
            "dev",
            &bernat_if,
        ],
    )
    .unwrap();
    lab.exec("home", &["ip", "link", "set", &bernat_if, "up"])
        .unwrap();
    // Route more than his group allows through his tunnel: the gateway must say no.
    lab.exec(
        "home",
        &[
            "wg",
            "set",
            &bernat_if,
            "peer",
            init["gateway_public_key"].as_str().unwrap(),
            "allowed-ips",
            "172.31.2.3/32",
        ],
    )
    .unwrap();
    lab.exec(
        "home",
        &["ip", "route", "add", "172.31.2.3/32", "dev", &bernat_if],
    )
    .unwrap();

    lab.spawn(
        "lan",
        &["iperf3", "-s", "-B", "172.31.2.3"],
        &town.dir.path().join("iperf.log"),
    )
    .unwrap();
    // Bytes a 1-second TCP test moved, or None if it could not run
    // (iperf3 -J exits 0 even then; its JSON says what happened).
    let iperf = |lab: &Lab| -> Option<u64> {
        let output = lab
            .run(
                "home",
                &[
                    "iperf3",
                    "-c",
                    "172.31.2.3",
                    "-t",
                    "1",
                    "--connect-timeout",
                    "2000",
                    "-J",
                ],
            )
            .unwrap();
        let report = json(output);
        if report.get("error").is_some() {
            return None;
        }
        report["end"]["sum_received"]["bytes"].as_u64()
    };
    wait_until("bernat's TCP 5201", Duration::from_secs(15), || {
        iperf(&lab).is_some()
    });
    assert!(iperf(&lab).unwrap() > 100_000);
    // ICMP to the same server is not in his group: dropped at the gateway.
    assert!(
        !lab.run("home", &["ping", "-c", "2", "-W", "1", "172.31.2.3"])
            .unwrap()
            .status
            .success()
    );
    // Anna's tunnel never routed there; her group does not allow it either.
    assert!(
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    );

    // Revoking bernat cuts his traffic at the gateway at once, though his
    // wireguard-go knows nothing of it.
    // An established TCP connection of bernat's, to an echo server on
    // 172.31.2.3:7000 (allowed for his group)…
    let echo = [
        "import socket",
        "s = socket.create_server(('172.31.2.3', 7000))",
        "while True:",
        "    c, _ = s.accept()",
        "    while (d := c.recv(100)):",
        "        c.sendall(d)",
    ]
    .join("\n");
    lab.spawn(
        "lan",
        &["python3", "-c", &echo],
        &town.dir.path().join("echo.log"),
    )
    .unwrap();
    wait_until("the echo server", Duration::from_secs(10), || {
        let probe = "import socket; socket.create_connection(('172.31.2.3', 7000), timeout=1)";
        lab.run("home", &["python3", "-c", probe])
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let conversation = [
        "import socket, os, sys, time",
        "c = socket.create_connection(('172.31.2.3', 7000), timeout=5)",
        "c.sendall(b'before')",
        "assert c.recv(100) == b'before'",
        "print('connected', flush=True)",
        "while not os.path.exists(sys.argv[1]): time.sleep(0.05)",
        "c.sendall(b'after')",
        "c.settimeout(3)",
        "try:",
        "    print('echo' if c.recv(100) else 'closed', flush=True)",
        "except socket.timeout:",
        "    print('cut', flush=True)",
    ]
    .join("\n");
    let (go, conversation_log) = (
        town.dir.path().join("go"),
        town.dir.path().join("conversation.log"),
    );
    let talker = lab
        .spawn(
            "home",
            &["python3", "-c", &conversation, path(&go)],
            &conversation_log,
        )
        .unwrap();
    wait_until("the connection", Duration::from_secs(10), || {
        std::fs::read_to_string(&conversation_log)
            .unwrap_or_default()
            .contains("connected")
    });

    let revoked = town.admin(&lab, &["devices", "revoke", "bernat-pc"]);
    assert_eq!(
        revoked["confirmed_gateways"],
        serde_json::json!(["embedded"]),
        "{revoked}"
    );
    assert_eq!(iperf(&lab), None, "a revoked device's packets still pass");
    // …is cut: its next message gets no answer.
    std::fs::write(&go, b"").unwrap();
    wait_until("the conversation to end", Duration::from_secs(10), || {
        lab.exited(talker).unwrap().is_some()
    });
    let said = std::fs::read_to_string(&conversation_log).unwrap();
    assert!(
        said.contains("cut"),
        "the established connection survived revocation: {said}"
    );
    // Anna is untouched.
    lab.exec("home", &["ping", "-c", "1", "-W", "2", addr::SERVER])
        .unwrap();

    // The auditor's view: Anna's session as the gateway counted it agrees
    // with what her laptop counted.
    lab.exec(
        "home",
        &["ping", "-c", "20", "-i", "0.05", "-s", "1200", addr::SERVER],
    )
    .unwrap();
    let status = json(
        lab.run(
            "home",
            &[
                porta,
                "--state",
                path(&anna_state),
                "--interface",
                &anna_if,
                "status",
                "--json",
            ],
        )
        .unwrap(),
    );
    town.admin(&lab, &["devices", "revoke", "anna-laptop"]);
    let mut records = Vec::new();
    wait_until(
        "anna's session end in the log",
        Duration::from_secs(10),
        || {
            records = town.sessions_of(&lab, "anna-laptop");
            records.iter().any(|r| r["kind"] == "session_end")
        },
    );
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["session_start", "session_end"], "{records:?}");
    let end = &records[1];
    assert_eq!(end["reason"], "revoked");
    assert_eq!(end["user"], "anna");
    assert_eq!(end["gateway"], "embedded");
    assert!(
        end["public_address"]
            .as_str()
            .unwrap()
            .starts_with("172.31.1.2:"),
        "{end}"
    );
    let laptop_sent = status["tx_bytes"].as_u64().unwrap();
    assert!(laptop_sent > 20 * 1200, "{status}");
    let agree = |gateway: &Value, laptop: &Value| {
        gateway.as_u64().unwrap().abs_diff(laptop.as_u64().unwrap()) < 2048
    };
    assert!(
        agree(&end["rx_bytes"], &status["tx_bytes"]),
        "{end} vs {status}"
    );
    assert!(
        agree(&end["tx_bytes"], &status["rx_bytes"]),
        "{end} vs {status}"
    );
    // Bernat's session is there too, and every admin action of this test.
    let bernat = town.sessions_of(&lab, "bernat-pc");
    assert!(
        bernat
            .iter()
            .any(|r| r["kind"] == "session_end" && r["reason"] == "revoked"),
        "{bernat:?}"
    );
    let actions: Vec<(String, String)> = town
        .export(&lab, "admin")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("login", "admin"),
        ("group.create", "web"),
        ("group.allow", "web"),
        ("token.create", "bernat-pc"),
        ("device.enroll", "bernat-pc"),
        ("device.revoke", "bernat-pc"),
        ("device.revoke", "anna-laptop"),
    ] {
        assert!(
            actions.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {actions:?}"
        );
    }
    let verified = town.admin(&lab, &["logs", "verify"]);
    assert!(
        verified.as_array().unwrap().iter().all(|l| l["ok"] == true),
        "{verified}"
    );
}

#[test]
fn the_tunnel_recovers_from_roaming_and_a_gateway_restart_by_itself() {
    let mut lab = Lab::new().unwrap();
    let home_resolv = "nameserver 172.31.1.1\nsearch home.arpa\noptions edns0\n";
    let resolv_conf = lab.resolv_conf("home", home_resolv).unwrap();
    let mut town = Town::start_with(
        &mut lab,
        true,
        &["--dns", addr::SERVER, "--search-domain", "ajuntament.test"],
    );
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let porta = binary("porta");
    let tunnel = lab.iface("c");
    lab.owns_socket(&tunnel);
    let up_log = town.dir.path().join("up.log");
    let up_command = [
        path(&porta),
        "--state",
        path(&state),
        "--interface",
        &tunnel,
        "up",
        "--foreground",
    ];
    // The laptop connects while the town box (and its gateway) is down: it
    // says so once, and once more when the gateway answers.
    town.stop(&mut lab);
    let up = lab.spawn("home", &up_command, &up_log).unwrap();
    lab.wait_for(
        up,
        "the unreachable notice",
        Duration::from_secs(30),
        |_| {
            read_log(&up_log).contains(&format!(
                "cannot reach the gateway at {}:51820 (the internet answers",
                addr::TOWN_PUBLIC
            ))
        },
    );
    town.start_again(&mut lab);
    let reachable = |lab: &Lab| {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    };
    wait_until("the tunnel", Duration::from_secs(30), || reachable(&lab));
    lab.wait_for(up, "the reached notice", Duration::from_secs(10), |_| {
        read_log(&up_log).contains("Reached the gateway at")
    });
    let said = read_log(&up_log);
    assert_eq!(
        said.matches("cannot reach the gateway").count(),
        1,
        "{said}"
    );
    assert!(
        !said.contains("REKEY_TIMEOUT"),
        "boringtun's retries stay out: {said}"
    );

    // A second `porta up` refuses at once and touches nothing.
    let resolv_before = std::fs::read_to_string(&resolv_conf).unwrap();
    let second = lab.run("home", &up_command).unwrap();
    assert!(!second.status.success());
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(
        refusal.contains("already connected") && refusal.contains("pid"),
        "{refusal}"
    );
    assert_eq!(
        std::fs::read_to_string(&resolv_conf).unwrap(),
        resolv_before
    );
    assert!(reachable(&lab), "the first tunnel still works");

    // The town's DNS is in use while the tunnel is up (the laptop sees the
    // namespace's file as its /etc/resolv.conf).
    let seen = String::from_utf8(
        lab.exec("home", &["cat", "/etc/resolv.conf"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        seen.contains(&format!("nameserver {}\n", addr::SERVER)),
        "{seen}\nporta up log:\n{}",
        std::fs::read_to_string(&up_log).unwrap_or_default()
    );
    assert!(seen.contains("search ajuntament.test\n"), "{seen}");
    assert!(seen.contains("options edns0"), "{seen}");
    assert!(!seen.contains("172.31.1.1"), "{seen}");

    // The laptop moves to another address on its network.
    let home_if = lab.iface("hometown");
    lab.exec(
        "home",
        &["ip", "addr", "del", "172.31.1.2/24", "dev", &home_if],
    )
    .unwrap();
    lab.exec(
        "home",
        &["ip", "addr", "add", "172.31.1.20/24", "dev", &home_if],
    )
    .unwrap();
    wait_until("the tunnel after roaming", Duration::from_secs(15), || {
        reachable(&lab)
    });
    let mut records = Vec::new();
    wait_until("the roaming in the log", Duration::from_secs(10), || {
        records = town.sessions_of(&lab, "anna-laptop");
        records.iter().any(|r| r["kind"] == "endpoint_change")
    });
    let moved = records
        .iter()
        .find(|r| r["kind"] == "endpoint_change")
        .unwrap();
    assert!(
        moved["previous_public_address"]
            .as_str()
            .unwrap()
            .starts_with("172.31.1.2:")
            && moved["public_address"]
                .as_str()
                .unwrap()
                .starts_with("172.31.1.20:"),
        "{moved}"
    );

    // The gateway restarts (with the controller): its sessions are gone,
    // and it starts the handshake with the laptop itself, so the laptop is
    // back at once rather than after WireGuard's 15 s of silence.
    town.restart(&mut lab);
    let restarted = std::time::Instant::now();
    wait_until(
        "the tunnel after a gateway restart",
        Duration::from_secs(60),
        || reachable(&lab),
    );
    // (Measured here: about 4 ms with the gateway's handshake; 3.6 s when
    // the laptop had to notice by itself, 15 s for a plain WireGuard peer.)
    let back_after = restarted.elapsed();
    assert!(
        back_after < Duration::from_secs(2),
        "the laptop waited {back_after:?} for the restarted gateway"
    );
    assert!(
        town.log()
            .contains("starting handshakes with the devices that had a live tunnel"),
        "{}",
        town.log()
    );
    let records = town.sessions_of(&lab, "anna-laptop");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "session_end" && r["reason"] == "gateway shutdown"),
        "the stop ended the session on record: {records:?}"
    );

    // porta down disconnects the running tunnel.
    let down = lab
        .exec("home", &[path(&porta), "--state", path(&state), "down"])
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nporta up log:\n{}",
                std::fs::read_to_string(&up_log).unwrap_or_default()
            )
        });
    assert!(String::from_utf8_lossy(&down.stdout).contains("Disconnected"));
    assert_eq!(
        std::fs::read_to_string(&resolv_conf).unwrap(),
        home_resolv,
        "porta down puts the home DNS back"
    );
    let status = lab
        .run(
            "home",
            &[
                path(&porta),
                "--state",
                path(&state),
                "--interface",
                &tunnel,
                "status",
                "--json",
            ],
        )
        .unwrap();
    assert_eq!(status.status.code(), Some(3));
    assert_eq!(json(status)["up"], false);
    let said = lab
        .run(
            "home",
            &[
                path(&porta),
                "--state",
                path(&state),
                "--interface",
                &tunnel,
                "status",
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "not connected"
    );
    assert!(!reachable(&lab));
}

#[test]
fn a_remote_gateway_serves_a_second_laptop_and_outlives_controller_outages() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    // Both kinds of gateway: the embedded one in town, a remote one in branch.
    let mut town = Town::start(&mut lab, true);
    let endpoint = format!("{}:51820", addr::BRANCH_PUBLIC);
    let added = town.admin(&lab, &["gateways", "add", "annex", "--endpoint", &endpoint]);
    let invitation = added["invitation"].as_str().unwrap().to_owned();

    // Until it has connected, no device can be enrolled through it.
    let early = lab
        .run(
            "town",
            &[
                path(&binary("portactl")),
                "--config",
                path(&town.profiles()),
                "enroll",
                "--user",
                "pau",
                "--device",
                "pau-early",
                "--gateway",
                "annex",
            ],
        )
        .unwrap();
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("has not connected yet"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // The remote gateway redeems its invitation, makes its own key and
    // announces only the public half.
    let gateway_data = town.dir.path().join("annex");
    let gateway_if = lab.iface("rgw");
    let gateway = binary("porta-gateway");
    let logs = town.dir.path().to_owned();
    let start_gateway = |lab: &mut Lab, invitation: Option<&str>, log: &str| {
        let mut args = vec![
            path(&gateway),
            "--data",
            path(&gateway_data),
            "--interface",
            &gateway_if,
        ];
        if let Some(invitation) = invitation {
            args.extend(["--controller", invitation]);
        }
        lab.spawn("branch", &args, &logs.join(log)).unwrap()
    };
    let remote = start_gateway(&mut lab, Some(&invitation), "annex.log");
    wait_until("the remote gateway's key", Duration::from_secs(15), || {
        town.admin(&lab, &["gateways", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "annex" && g["public_key"].as_str() != Some(""))
    });
    let private = std::fs::read_to_string(gateway_data.join("gateway.key")).unwrap();
    let listed = serde_json::to_string(&town.admin(&lab, &["gateways", "list"])).unwrap();
    assert!(
        !listed.contains(private.trim()),
        "the private key stayed on the gateway"
    );

    // A second laptop, enrolled through the annex, reaches the server behind it.
    town.admin(&lab, &["groups", "add", "annex-staff"]);
    town.admin(&lab, &["groups", "allow", "annex-staff", "172.31.4.0/24"]);
    let state = town.enroll_through(&lab, "pau", "pau-laptop", "annex-staff", Some("annex"));
    let porta = binary("porta");
    let tunnel = lab.iface("c2");
    lab.owns_socket(&tunnel);
    lab.spawn(
        "home",
        &[
            path(&porta),
            "--state",
            path(&state),
            "--interface",
            &tunnel,
            "up",
            "--foreground",
        ],
        &town.dir.path().join("up2.log"),
    )
    .unwrap();
    let reachable = |lab: &Lab| {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::BRANCH_SERVER])
            .unwrap()
            .status
            .success()
    };
    wait_until(
        "the branch server through the annex",
        Duration::from_secs(15),
        || reachable(&lab),
    );
    lab.spawn(
        "branch",
        &["iperf3", "-s", "-1", "-B", addr::BRANCH_SERVER],
        &town.dir.path().join("iperf-branch.log"),
    )
    .unwrap();
    let mut tcp = Value::Null;
    wait_until("TCP through the annex", Duration::from_secs(10), || {
        tcp = json(
            lab.run(
                "home",
                &["iperf3", "-c", addr::BRANCH_SERVER, "-t", "1", "-J"],
            )
            .unwrap(),
        );
        tcp["error"].is_null()
    });
    assert!(tcp["end"]["sum_received"]["bytes"].as_u64().unwrap() > 100_000);
    let status = json(
        lab.run(
            "home",
            &[
                path(&porta),
                "--state",
                path(&state),
                "--interface",
                &tunnel,
                "status",
                "--json",
            ],
        )
        .unwrap(),
    );
    assert_eq!(status["gateway_endpoint"], endpoint.as_str(), "{status}");

    // The controller goes away and the annex gateway restarts meanwhile:
    // it serves its peer set from disk. (A backup of the controller's store
    // is taken while it is stopped.)
    town.stop(&mut lab);
    let backup = town.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for name in ["store", "store.witness"] {
        copy_replacing(&town.data().join(name), &backup.join(name));
    }
    assert_eq!(lab.stop(remote).unwrap(), Some(0), "a clean stop");
    let remote = start_gateway(&mut lab, None, "annex-again.log");
    wait_until(
        "the annex serving from disk without its controller",
        Duration::from_secs(30),
        || reachable(&lab),
    );

    // The controller comes back; revoking the laptop is confirmed by the
    // annex (and the embedded gateway), and the laptop is cut off.
    town.start_again(&mut lab);
    wait_until("the annex to reconnect", Duration::from_secs(20), || {
        town.admin(&lab, &["gateways", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "annex" && g["last_seen_at"].is_string())
    });
    let revoked = town.admin(&lab, &["devices", "revoke", "pau-laptop"]);
    let confirmed = revoked["confirmed_gateways"].as_array().unwrap();
    assert!(confirmed.contains(&Value::from("annex")), "{revoked}");
    assert_eq!(
        revoked["pending_gateways"],
        serde_json::json!([]),
        "{revoked}"
    );
    wait_until("the laptop to be cut off", Duration::from_secs(5), || {
        !reachable(&lab)
    });

    // What the annex saw while the controller was away (its own restart
    // ended a session and a new one began) reached the log once each.
    let mut records = Vec::new();
    wait_until(
        "the annex's events in the log",
        Duration::from_secs(30),
        || {
            records = town.sessions_of(&lab, "pau-laptop");
            records.iter().any(|r| r["reason"] == "revoked")
        },
    );
    let story: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        story,
        [
            ("session_start", ""),
            ("session_end", "gateway shutdown"),
            ("session_start", ""),
            ("session_end", "revoked"),
        ],
        "{records:?}"
    );
    assert!(records.iter().all(|r| r["gateway"] == "annex"));
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), records.len(), "an event was recorded twice");
    let verified = town.admin(&lab, &["logs", "verify", "--kind", "connections"]);
    assert_eq!(verified[0]["ok"], true, "{verified}");

    // The controller's store goes back to the backup, before the
    // revocation, on purpose: the annex holds changes of another history,
    // refuses to follow, and keeps the laptop out.
    town.stop(&mut lab);
    for name in ["store", "store.witness"] {
        copy_replacing(&backup.join(name), &town.data().join(name));
    }
    town.serve_args.push("--accept-store-rollback".into());
    town.start_again(&mut lab);
    wait_until(
        "the annex to refuse to follow another history",
        Duration::from_secs(30),
        || read_log(&logs.join("annex-again.log")).contains("NOT following the controller"),
    );
    assert!(
        !reachable(&lab),
        "a revoked laptop came back through the annex"
    );
    // As the admin guide says after such a restore: revoke it again.
    town.admin(&lab, &["devices", "revoke", "pau-laptop"]);

    // Retired (its last device is revoked): the gateway stops by itself,
    // saying why, instead of retrying for ever.
    town.admin(&lab, &["gateways", "remove", "annex"]);
    wait_until(
        "the retired gateway to stop",
        Duration::from_secs(30),
        || lab.exited(remote).unwrap().is_some(),
    );
    assert_eq!(lab.exited(remote).unwrap(), Some(4));
    let said = read_log(&logs.join("annex-again.log"));
    assert!(said.contains("no longer accepts this gateway"), "{said}");
}

#[test]
fn a_full_tunnel_keeps_the_gateway_and_the_controller_outside_and_still_gets_changes() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    let portactl = binary("portactl");
    town.admin(&lab, &["groups", "add", "everything"]);
    // The controller warns: the destination contains its own addresses.
    let allowed = lab
        .exec(
            "town",
            &[
                path(&portactl),
                "--config",
                path(&town.profiles()),
                "groups",
                "allow",
                "everything",
                "0.0.0.0/0",
            ],
        )
        .unwrap();
    let warned = String::from_utf8_lossy(&allowed.stderr);
    assert!(
        warned.contains("contains the controller's API") && warned.contains("outside"),
        "{warned}"
    );

    let state = town.enroll(&lab, "anna", "anna-laptop", "everything");
    let interface = lab.iface("anna");
    lab.owns_socket(&interface);
    let porta = binary("porta");
    let up = lab
        .spawn(
            "home",
            &[
                path(&porta),
                "--state",
                path(&state),
                "--interface",
                &interface,
                "up",
                "--foreground",
            ],
            &town.dir.path().join("anna.log"),
        )
        .unwrap();
    let ping = |lab: &Lab| {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    };
    lab.wait_for(up, "the full tunnel", Duration::from_secs(15), ping);
    // The gateway's endpoint and the API stay on the home link.
    let route = lab
        .exec("home", &["ip", "route", "get", addr::TOWN_PUBLIC])
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        !route.contains(&interface),
        "the endpoint is routed into the tunnel: {route}"
    );
    let elsewhere = lab
        .exec("home", &["ip", "route", "get", "198.51.100.1"])
        .unwrap();
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains(&interface));

    // A later policy change still arrives (the control connection is
    // outside the tunnel): the full tunnel becomes one server.
    town.admin(&lab, &["groups", "allow", "everything", "172.31.2.2/32"]);
    town.admin(&lab, &["groups", "disallow", "everything", "0.0.0.0/0"]);
    wait_until("the narrower routes", Duration::from_secs(15), || {
        let routes = lab
            .exec("home", &["ip", "route", "show", "dev", &interface])
            .unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        routes.contains("172.31.2.2") && !routes.contains("0.0.0.0/1")
    });
    assert!(ping(&lab), "the server is still reached");
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 (as exports write it) to Unix seconds.
fn unix_of(value: &Value) -> u64 {
    humantime::parse_rfc3339(value.as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn every_burst_is_inside_its_own_session_and_a_killed_gateway_ends_its_sessions() {
    let mut lab = Lab::new().unwrap();
    let mut town = Town::start_serving(&mut lab, true, &[], &["--session-idle", "3s"]);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let interface = lab.iface("anna");
    lab.owns_socket(&interface);
    let porta = binary("porta");
    let up = lab
        .spawn(
            "home",
            &[
                path(&porta),
                "--state",
                path(&state),
                "--interface",
                &interface,
                "up",
                "--foreground",
            ],
            &town.dir.path().join("anna.log"),
        )
        .unwrap();
    // The tunnel is up (a handshake, keepalives) but nobody uses it yet.
    lab.wait_for(up, "anna's handshake", Duration::from_secs(15), |lab| {
        lab.run("home", &["wg", "show", &interface, "latest-handshakes"])
            .map(|o| !String::from_utf8_lossy(&o.stdout).contains("\t0"))
            .unwrap_or(false)
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        town.sessions_of(&lab, "anna-laptop").is_empty(),
        "a handshake and keepalives are not a session"
    );

    // Bursts 7 s apart (idle threshold 3 s): each its own session.
    let bursts: Vec<(u64, u64)> = (0..3)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(7));
            }
            let start = unix_now();
            lab.exec(
                "home",
                &["ping", "-c", "3", "-i", "0.2", "-s", "1000", addr::SERVER],
            )
            .unwrap();
            (start, unix_now())
        })
        .collect();
    wait_until("three sessions ended", Duration::from_secs(20), || {
        town.sessions_of(&lab, "anna-laptop")
            .iter()
            .filter(|r| r["kind"] == "session_end")
            .count()
            == bursts.len()
    });
    let records = town.sessions_of(&lab, "anna-laptop");
    let ends: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "session_end")
        .collect();
    for ((from, to), end) in bursts.iter().zip(&ends) {
        let (started, ended) = (unix_of(&end["session_start"]), unix_of(&end["at"]));
        assert!(
            started <= from + 2 && ended + 1 >= *to,
            "burst {from}..{to} outside its session {started}..{ended}: {records:?}"
        );
        // Ended at its last traffic, not when the idle timer (3 s) fired.
        assert!(
            ended <= to + 1,
            "burst {from}..{to} ended at {ended}: {records:?}"
        );
        // Exactly its own bytes: three 1,000-byte pings and their framing,
        // no handshakes or keepalives from the idle time around it.
        let rx = end["rx_bytes"].as_u64().unwrap();
        assert!(
            (3_000..3_600).contains(&rx),
            "{rx} bytes for one burst: {end}"
        );
        assert_eq!(end["reason"], "idle");
    }

    // Pings five times a second, and 8 s into the session the controller
    // (and its gateway) is killed.
    let pinging = lab
        .spawn(
            "home",
            &["ping", "-i", "0.2", "-s", "1000", addr::SERVER],
            &town.dir.path().join("ping-until-kill.log"),
        )
        .unwrap();
    wait_until("the session to start", Duration::from_secs(10), || {
        town.admin(&lab, &["logs", "sessions"])
            .as_array()
            .is_some_and(|s| !s.is_empty())
    });
    std::thread::sleep(Duration::from_secs(8));
    let killed_at = unix_now();
    lab.kill(town.serve).unwrap();
    lab.kill(pinging).unwrap();
    town.start_again(&mut lab);
    wait_until(
        "the left-open session to end",
        Duration::from_secs(15),
        || {
            town.sessions_of(&lab, "anna-laptop")
                .iter()
                .any(|r| r["reason"] == "gateway_restart")
        },
    );
    let records = town.sessions_of(&lab, "anna-laptop");
    let restart = records
        .iter()
        .find(|r| r["reason"] == "gateway_restart")
        .unwrap();
    // What was saved a second before the kill: the end is within two
    // seconds of it, and the bytes are the session's (at least 6 of its
    // 8 s of 1,000-byte pings).
    assert!(unix_of(&restart["at"]) + 2 >= killed_at, "{restart}");
    assert!(
        restart["rx_bytes"].as_u64().unwrap() >= 30 * 1_000,
        "{restart}"
    );
    let open = town.admin(&lab, &["logs", "sessions"]);
    assert_eq!(open.as_array().map(Vec::len), Some(0), "{open}");
    let verified = town.admin(&lab, &["logs", "verify"]);
    assert!(
        verified.as_array().unwrap().iter().all(|l| l["ok"] == true),
        "{verified}"
    );
}
