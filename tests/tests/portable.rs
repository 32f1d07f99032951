//! The portable data path (one packet per system call, no offloads: the
//! path Windows and macOS use) on a real laptop in the lab, against the
//! town's gateway on Linux's fast path — the pairing a Windows laptop
//! meets in production.

use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, iperf3_report, iperf3_through_tunnel, path, wait_until};
use porta_tests::*;
use std::time::Duration;

#[test]
fn the_portable_data_path_carries_full_size_packets_and_bulk_tcp_both_ways() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let interface = lab.iface("port");
    lab.owns_socket(&interface);
    let log = town.dir.path().join("portable.log");
    let porta = binary("porta");
    lab.spawn(
        "home",
        &[
            "env",
            "PORTA_DATAPATH=portable",
            path(&porta),
            "--state",
            path(&state),
            "--interface",
            &interface,
            "-v",
            "up",
            "--foreground",
        ],
        &log,
    )
    .unwrap();
    wait_until("the portable tunnel", Duration::from_secs(15), || {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    });
    let said = read_log(&log);
    assert!(said.contains("Portable"), "the portable path ran: {said}");

    // A packet of the tunnel's full MTU (1420), not fragmented.
    lab.exec(
        "home",
        &[
            "ping",
            "-c",
            "2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1392",
            addr::SERVER,
        ],
    )
    .unwrap();

    // Bulk TCP, the laptop sending and receiving.
    iperf3_through_tunnel(&mut lab, &town.dir.path().join("iperf.log"));
    for direction in [&[][..], &["-R"][..]] {
        let mut extra = vec!["-t", "2"];
        extra.extend_from_slice(direction);
        let result = iperf3_report(&lab, "home", addr::SERVER, &extra);
        let received = result["end"]["sum_received"]["bytes"].as_u64().unwrap();
        assert!(
            received > 1_000_000,
            "{direction:?}: TCP moved {received} bytes through the portable path"
        );
    }
}
