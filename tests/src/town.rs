//! The town box for namespace tests: a controller in the `town` namespace
//! of a [`Lab`], reachable at `172.31.1.1:7443`, with a logged-in
//! `portactl` and laptops enrolled with `porta enroll` in `home`.

use crate::binary;
use crate::netns::{Lab, addr};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn json(output: std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts an iperf3 server on the town server (in `lan`) and waits until
/// the laptop in `home` gets a test through the tunnel to it.
pub fn iperf3_through_tunnel(lab: &mut Lab, log: &Path) {
    lab.spawn("lan", &["iperf3", "-s", "-B", addr::SERVER], log)
        .unwrap();
    wait_until("iperf3 server", Duration::from_secs(5), || {
        lab.run("home", &["iperf3", "-c", addr::SERVER, "-t", "1", "-J"])
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
}

/// Runs an iperf3 client in `ns` against `server` and returns its JSON
/// report. iperf3's server runs one test at a time and, for a moment after
/// a test ends, still answers the next client "the server is busy running
/// a test"; that answer is retried (a few times), any other error fails the
/// test with iperf3's own words.
pub fn iperf3_report(lab: &Lab, ns: &str, server: &str, extra: &[&str]) -> Value {
    let mut command = vec!["iperf3", "-c", server, "--connect-timeout", "2000", "-J"];
    command.extend_from_slice(extra);
    let mut attempts = 0;
    loop {
        let report = json(lab.run(ns, &command).unwrap());
        let Some(error) = report.get("error").and_then(Value::as_str) else {
            return report;
        };
        attempts += 1;
        assert!(
            error.contains("busy") && attempts < 10,
            "{}: {error}",
            command.join(" ")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The town box: a controller (with or without its embedded gateway) in
/// the `town` namespace and a logged-in portactl.
pub struct Town {
    pub dir: tempfile::TempDir,
    pub init: Value,
    pub serve_args: Vec<String>,
    pub serve: usize,
}

impl Town {
    pub fn start(lab: &mut Lab, embedded_gateway: bool) -> Town {
        Town::start_with(lab, embedded_gateway, &[])
    }

    /// Like [`Town::start`], with more `init` flags.
    pub fn start_with(lab: &mut Lab, embedded_gateway: bool, init_flags: &[&str]) -> Town {
        Town::start_serving(lab, embedded_gateway, init_flags, &[])
    }

    /// Like [`Town::start_with`], with more `serve` flags too.
    pub fn start_serving(
        lab: &mut Lab,
        embedded_gateway: bool,
        init_flags: &[&str],
        serve_flags: &[&str],
    ) -> Town {
        Town::start_under(lab, embedded_gateway, init_flags, serve_flags, &[])
    }

    /// Like [`Town::start_serving`], with `serve` run by `wrapper` (a
    /// command that execs its arguments, such as `prlimit --nofile=…`).
    pub fn start_under(
        lab: &mut Lab,
        embedded_gateway: bool,
        init_flags: &[&str],
        serve_flags: &[&str],
        wrapper: &[&str],
    ) -> Town {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let api = format!("{}:7443", addr::TOWN_PUBLIC);
        let endpoint = format!("{}:51820", addr::TOWN_PUBLIC);
        let controller = binary("porta-controller");
        let mut init_args = vec![
            path(&controller),
            "init",
            "--data",
            path(&data),
            "--api-endpoint",
            &api,
            "--endpoint",
            &endpoint,
            "--no-ipv6",
            "--json",
        ];
        init_args.extend_from_slice(init_flags);
        let init = json(lab.exec("town", &init_args).unwrap());
        let mut serve_args: Vec<String> = wrapper.iter().map(|w| w.to_string()).collect();
        serve_args.extend(
            [
                path(&controller),
                "serve",
                "--data",
                path(&data),
                "--listen",
                &api,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if embedded_gateway {
            serve_args.extend(["--gateway-interface".to_string(), lab.iface("gw")]);
        } else {
            serve_args.push("--no-gateway".into());
        }
        serve_args.extend(serve_flags.iter().map(|f| f.to_string()));
        let args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
        let serve = lab
            .spawn("town", &args, &dir.path().join("serve.log"))
            .unwrap();
        let town = Town {
            dir,
            init,
            serve_args,
            serve,
        };
        let invitation = town.init["admin_invitation"].as_str().unwrap().to_owned();
        lab.wait_for(
            town.serve,
            "the controller",
            Duration::from_secs(10),
            |lab| {
                lab.run(
                    "town",
                    &[
                        path(&binary("portactl")),
                        "--config",
                        path(&town.profiles()),
                        "login",
                        &invitation,
                    ],
                )
                .unwrap()
                .status
                .success()
            },
        );
        town
    }

    /// What `serve` logged (every start).
    pub fn log(&self) -> String {
        ["serve.log", "serve-again.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect()
    }

    pub fn profiles(&self) -> std::path::PathBuf {
        self.dir.path().join("p.toml")
    }

    /// Runs portactl --json --yes in the town namespace.
    pub fn admin(&self, lab: &Lab, args: &[&str]) -> Value {
        let portactl = binary("portactl");
        let profiles = self.profiles();
        let mut all = vec![
            path(&portactl),
            "--config",
            path(&profiles),
            "--json",
            "--yes",
        ];
        all.extend_from_slice(args);
        json(lab.exec("town", &all).unwrap())
    }

    /// A log exported with `portactl logs export --format jsonl`.
    pub fn export(&self, lab: &Lab, kind: &str) -> Vec<Value> {
        let portactl = binary("portactl");
        let profiles = self.profiles();
        let output = lab
            .exec(
                "town",
                &[
                    path(&portactl),
                    "--config",
                    path(&profiles),
                    "logs",
                    "export",
                    "--kind",
                    kind,
                    "--format",
                    "jsonl",
                ],
            )
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The connection records of `device`, oldest first.
    pub fn sessions_of(&self, lab: &Lab, device: &str) -> Vec<Value> {
        self.export(lab, "connections")
            .into_iter()
            .filter(|r| r["device"] == device)
            .collect()
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Stops `serve` (SIGTERM) and checks it exited cleanly.
    pub fn stop(&mut self, lab: &mut Lab) {
        assert_eq!(lab.stop(self.serve).unwrap(), Some(0), "a clean stop");
    }

    /// Stops and starts `serve` again.
    pub fn restart(&mut self, lab: &mut Lab) {
        self.stop(lab);
        self.start_again(lab);
    }

    /// Starts `serve` again after [`Town::stop`].
    pub fn start_again(&mut self, lab: &mut Lab) {
        let args: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        self.serve = lab
            .spawn("town", &args, &self.dir.path().join("serve-again.log"))
            .unwrap();
        lab.wait_for(
            self.serve,
            "the controller again",
            Duration::from_secs(10),
            |lab| {
                lab.run(
                    "town",
                    &[
                        path(&binary("portactl")),
                        "--config",
                        path(&self.profiles()),
                        "whoami",
                    ],
                )
                .unwrap()
                .status
                .success()
            },
        );
    }

    /// Enrolls a laptop in `home` with `porta enroll`; returns its state dir.
    /// A group `lan` that reaches the town server, and an invitation for
    /// `user`'s `device` in it.
    pub fn invite_to_lan(&self, lab: &Lab, user: &str, device: &str) -> String {
        self.admin(lab, &["groups", "add", "lan"]);
        let server = format!("{}/32", addr::SERVER);
        self.admin(lab, &["groups", "allow", "lan", &server]);
        self.admin(
            lab,
            &[
                "enroll", "--user", user, "--device", device, "--groups", "lan",
            ],
        )["invitation"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn enroll(&self, lab: &Lab, user: &str, device: &str, groups: &str) -> std::path::PathBuf {
        self.enroll_through(lab, user, device, groups, None)
    }

    /// Like [`Town::enroll`], for a device of the gateway named `gateway`.
    pub fn enroll_through(
        &self,
        lab: &Lab,
        user: &str,
        device: &str,
        groups: &str,
        gateway: Option<&str>,
    ) -> std::path::PathBuf {
        let state = self.dir.path().join(device);
        let mut args = vec![
            "enroll", "--user", user, "--device", device, "--groups", groups,
        ];
        if let Some(gateway) = gateway {
            args.extend(["--gateway", gateway]);
        }
        let enrolled = self.admin(lab, &args);
        lab.exec(
            "home",
            &[
                path(&binary("porta")),
                "--state",
                path(&state),
                "enroll",
                enrolled["invitation"].as_str().unwrap(),
            ],
        )
        .unwrap();
        state
    }
}
