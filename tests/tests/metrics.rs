//! Metrics as an operations team sees them: a real Prometheus (Debian's)
//! scrapes the controller (with its embedded gateway) and a remote
//! gateway, and its HTTP API is asked for the series after known actions
//! — an enrollment, a replayed invitation, traffic through the remote
//! gateway, a revocation.
//!
//! Everything runs in the lab's namespaces: the controller listens for
//! scrapes on the town LAN, the remote gateway on the branch link, and
//! Prometheus runs in `town` on its own loopback, with the alert rules
//! docs/monitoring ships (checked by promtool first); every query of the
//! shipped Grafana dashboard is evaluated by it too.

use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, path, wait_until};
use porta_tests::*;
use serde_json::Value;
use std::time::Duration;

/// Where the controller and the remote gateway serve their metrics.
fn controller_metrics() -> String {
    format!("{}:9464", addr::TOWN_LAN)
}
fn gateway_metrics() -> String {
    format!("{}:9465", addr::BRANCH_PUBLIC)
}
const PROMETHEUS: &str = "127.0.0.1:9090";

fn monitoring_doc(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/monitoring")
        .join(name)
}

/// Starts Prometheus in `town`, scraping both targets and evaluating the
/// shipped alert rules every second.
fn start_prometheus(lab: &mut Lab, dir: &std::path::Path) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             \x20 - job_name: porta-controller\n    static_configs:\n      - targets: ['{}']\n\
             \x20 - job_name: porta-gateway\n    static_configs:\n      - targets: ['{}']\n",
            monitoring_doc("porta-alerts.yml").display(),
            controller_metrics(),
            gateway_metrics()
        ),
    )
    .unwrap();
    let listen = format!("--web.listen-address={PROMETHEUS}");
    let storage = format!("--storage.tsdb.path={}", dir.join("tsdb").display());
    let config_flag = format!("--config.file={}", config.display());
    lab.spawn(
        "town",
        &["prometheus", &config_flag, &storage, &listen],
        &dir.join("prometheus.log"),
    )
    .unwrap();
}

/// The instant vector `expr` evaluates to, as (labels, value) pairs, asked
/// of Prometheus's HTTP API.
fn query(lab: &Lab, expr: &str) -> Vec<(Value, f64)> {
    let script = format!(
        "import sys, urllib.request, urllib.parse\n\
         url = 'http://{PROMETHEUS}/api/v1/query?' + urllib.parse.urlencode({{'query': sys.argv[1]}})\n\
         print(urllib.request.urlopen(url, timeout=5).read().decode())"
    );
    let out = lab
        .run("town", &["/usr/bin/python3", "-c", &script, expr])
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let value = series["value"][1].as_str().unwrap().parse().unwrap();
            (series["metric"].clone(), value)
        })
        .collect()
}

/// The single value `expr` has in Prometheus, once it has one.
fn value(lab: &Lab, expr: &str) -> Option<f64> {
    match query(lab, expr).as_slice() {
        [(_, value)] => Some(*value),
        _ => None,
    }
}

/// Waits until Prometheus says `expr` is `expected`.
fn wait_for_value(lab: &Lab, expr: &str, expected: f64) {
    let mut last = None;
    wait_until(
        &format!("{expr} to be {expected} in Prometheus"),
        Duration::from_secs(30),
        || {
            last = value(lab, expr);
            last == Some(expected)
        },
    );
}

#[test]
fn prometheus_scrapes_the_controller_and_a_remote_gateway_and_sees_what_happened() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let controller_listen = controller_metrics();
    let town = Town::start_serving(
        &mut lab,
        true,
        &[],
        &["--metrics-listen", &controller_listen],
    );
    let endpoint = format!("{}:51820", addr::BRANCH_PUBLIC);
    let added = town.admin(&lab, &["gateways", "add", "annex", "--endpoint", &endpoint]);
    let gateway_data = town.dir.path().join("annex");
    let gateway_if = lab.iface("rgw");
    let gateway_listen = gateway_metrics();
    let annex = lab
        .spawn(
            "branch",
            &[
                path(&binary("porta-gateway")),
                "--data",
                path(&gateway_data),
                "--interface",
                &gateway_if,
                "--controller",
                added["invitation"].as_str().unwrap(),
                "--metrics-listen",
                &gateway_listen,
            ],
            &town.dir.path().join("annex.log"),
        )
        .unwrap();
    wait_until("the annex to connect", Duration::from_secs(20), || {
        town.admin(&lab, &["gateways", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "annex" && g["last_seen_at"].is_string())
    });
    let rules = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(monitoring_doc("porta-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        rules.status.success(),
        "{}",
        String::from_utf8_lossy(&rules.stdout)
    );
    start_prometheus(&mut lab, town.dir.path());
    wait_for_value(&lab, "sum(up)", 2.0);
    // Both gateways follow the controller and are in step.
    wait_for_value(&lab, "porta_controller_gateways_connected", 2.0);
    wait_for_value(&lab, "max(porta_controller_gateway_revision_lag)", 0.0);

    // One enrollment through the annex; the invitation presented with a
    // wrong secret is refused and counted as a failed authentication.
    town.admin(&lab, &["groups", "add", "annex-staff"]);
    town.admin(&lab, &["groups", "allow", "annex-staff", "172.31.4.0/24"]);
    let enrolled = town.admin(
        &lab,
        &[
            "enroll",
            "--user",
            "pau",
            "--device",
            "pau-laptop",
            "--groups",
            "annex-staff",
            "--gateway",
            "annex",
        ],
    );
    let invitation = enrolled["invitation"].as_str().unwrap();
    let mut forged = porta_proto::Invitation::decode(invitation).unwrap();
    let (id, secret) = forged.token.split_once('.').unwrap();
    forged.token = format!("{id}.{}", secret.chars().rev().collect::<String>());
    let porta = binary("porta");
    let state = town.dir.path().join("pau-laptop");
    let redeem = |state: &std::path::Path, invitation: &str| {
        lab.run(
            "home",
            &[path(&porta), "--state", path(state), "enroll", invitation],
        )
        .unwrap()
    };
    let refused = redeem(&town.dir.path().join("forged"), &forged.encode());
    assert!(!refused.status.success(), "a wrong secret is refused");
    assert!(redeem(&state, invitation).status.success());
    wait_for_value(
        &lab,
        "porta_controller_enrollments_total{job='porta-controller'}",
        1.0,
    );
    wait_for_value(&lab, "sum(porta_controller_auth_failures_total)", 1.0);
    wait_for_value(&lab, "porta_gateway_peers{job='porta-gateway'}", 1.0);
    wait_for_value(&lab, "porta_gateway_peers{job='porta-controller'}", 0.0);

    // Traffic through the annex: pings to the branch server.
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
        &town.dir.path().join("up.log"),
    )
    .unwrap();
    wait_until(
        "the branch server through the annex",
        Duration::from_secs(15),
        || {
            lab.run("home", &["ping", "-c", "1", "-W", "1", addr::BRANCH_SERVER])
                .unwrap()
                .status
                .success()
        },
    );
    let pings = lab
        .run(
            "home",
            &[
                "ping",
                "-c",
                "20",
                "-i",
                "0.05",
                "-s",
                "1000",
                addr::BRANCH_SERVER,
            ],
        )
        .unwrap();
    assert!(pings.status.success());
    wait_for_value(&lab, "porta_gateway_sessions{job='porta-gateway'}", 1.0);
    wait_until(
        "the annex's handshake and traffic in Prometheus",
        Duration::from_secs(30),
        || {
            let handshakes = value(
                &lab,
                "porta_gateway_handshakes_total{job='porta-gateway',result='completed'}",
            );
            // 20 pings of 1,000 bytes came in, each in one datagram.
            let bytes_in = value(
                &lab,
                "porta_gateway_bytes_total{job='porta-gateway',direction='in'}",
            );
            let datagrams_out = value(
                &lab,
                "porta_gateway_datagrams_total{job='porta-gateway',direction='out'}",
            );
            handshakes >= Some(1.0) && bytes_in >= Some(20_000.0) && datagrams_out >= Some(20.0)
        },
    );
    // No series names a device, a user or an address.
    let everything = query(&lab, "{job=~'porta-.*'}");
    assert!(everything.len() > 50, "{} series", everything.len());
    let text = serde_json::to_string(&everything).unwrap();
    for private in ["pau", addr::HOME, "10.77."] {
        assert!(!text.contains(private), "{private} appears in a series");
    }

    // One revocation, confirmed by both gateways: counted, its
    // confirmation timed, and the annex's peer gone.
    let revoked = town.admin(&lab, &["devices", "revoke", "pau-laptop"]);
    assert_eq!(revoked["pending_gateways"], serde_json::json!([]));
    wait_for_value(&lab, "porta_controller_revocations_total", 1.0);
    wait_for_value(
        &lab,
        "porta_controller_revocation_confirm_seconds_count",
        1.0,
    );
    wait_for_value(&lab, "porta_controller_revocations_unconfirmed_total", 0.0);
    wait_for_value(&lab, "porta_gateway_peers{job='porta-gateway'}", 0.0);
    wait_for_value(
        &lab,
        "sum(porta_controller_rpc_requests_total{method='/porta.v1.Admin/RevokeDevice',code='Ok'})",
        1.0,
    );
    // The revocation's confirmation time is in the histogram's range
    // (it waited at most 10 s).
    let took = value(&lab, "porta_controller_revocation_confirm_seconds_sum").unwrap();
    assert!(took > 0.0 && took <= 10.0, "{took}");
    // The admin log has the enrollment and the revocation; the store's
    // files and the free space beside them are reported.
    assert!(value(&lab, "porta_controller_log_records_total{log='admin'}") >= Some(4.0));
    assert!(value(&lab, "porta_controller_store_bytes") > Some(0.0));
    assert!(value(&lab, "porta_controller_data_free_bytes") > Some(0.0));

    // A path no service has is counted as `unknown`, never by its name.
    let bogus = lab
        .run(
            "town",
            &[
                "/usr/bin/python3",
                "-c",
                "import sys, urllib.request\n\
                 try:\n    urllib.request.urlopen('http://' + sys.argv[1] + '/metrics/../x', timeout=5)\n\
                 except Exception as e:\n    print(e)",
                &controller_listen,
            ],
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bogus.stdout).contains("404"),
        "{}",
        String::from_utf8_lossy(&bogus.stdout)
    );
    let methods = query(&lab, "porta_controller_rpc_requests_total");
    assert!(
        methods.iter().all(|(labels, _)| {
            let method = labels["method"].as_str().unwrap();
            method == "unknown" || method.starts_with("/porta.v1.") || method.starts_with("/grpc.")
        }),
        "{methods:?}"
    );

    // Every query of the shipped Grafana dashboard is valid PromQL over
    // series that exist.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_doc("porta-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        assert!(
            !query(&lab, expr).is_empty(),
            "the dashboard's {expr} has no data"
        );
    }

    // The annex stops: the shipped "gateway down" alert becomes active.
    let down = "ALERTS{alertname='PortaGatewayDown'}";
    assert!(query(&lab, down).is_empty(), "{:?}", query(&lab, down));
    lab.kill(annex).unwrap();
    wait_until(
        "the PortaGatewayDown alert",
        Duration::from_secs(30),
        || !query(&lab, down).is_empty(),
    );
}
