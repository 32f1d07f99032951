//! The staff app end to end: `porta-desktop`'s window (its real code,
//! driven through its accessibility tree with egui_kittest) against a real
//! `porta daemon` in the home namespace and a real controller in the town:
//! paste an invitation wrapped by e-mail → enrolled → Connect → the town's
//! server answers through the tunnel → Disconnect; revoked by IT → the app
//! says so in plain words; a `porta:` link opens the app with the
//! invitation filled in and enrolls again.
//!
//! Along the way the real binary is started under Xvfb for each screen in
//! each language and captured (docs/screenshots/, regenerated with
//! PORTA_UPDATE_SCREENSHOTS=1); the test fails if a screen does not render.
//! One more copy of the binary runs on its own session bus (a real
//! dbus-daemon) while the tunnel comes up and is revoked: its desktop
//! notifications are the org.freedesktop.Notifications calls dbus-monitor
//! sees on that bus.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use porta_client::i18n::Lang;
use porta_desktop::app::{Options, PortaApp};
use porta_desktop::settings::Places;
use porta_tests::laptop::{TunnelService, town_server_reachable};
use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, wait_until};
use porta_tests::{assert_window_rendered, binary, screenshot_dir};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type App = Harness<'static, Option<PortaApp>>;

/// The app's window, on the service at `socket`, opened from `link`.
fn open_app(socket: &Path, link: Option<String>, config: &Path) -> App {
    open_app_at(socket, link, config, false)
}

/// [`open_app`], started by the autostart entry at login when `at_login`.
fn open_app_at(socket: &Path, link: Option<String>, config: &Path, at_login: bool) -> App {
    let options = Options {
        socket: socket.to_owned(),
        link,
        at_login,
        places: Places {
            config: config.to_owned(),
        },
        notifications: false,
        tray: false,
        minimised: false,
        settings: false,
    };
    Harness::builder()
        .with_size(porta_desktop::egui::vec2(480.0, 640.0))
        .build_ui_state(
            move |ui, app: &mut Option<PortaApp>| {
                app.get_or_insert_with(|| PortaApp::new(ui.ctx(), options.clone()))
                    .frame(ui);
            },
            None,
        )
}

/// Steps the window until `text` shows (the service answers in its own
/// time; each step is one frame).
fn wait_for_text(app: &mut App, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        app.step();
        if app.query_all_by_label_contains(text).next().is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the app never showed {text:?}; it shows:\n{:#?}",
            app.root()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn click(app: &mut App, label: &str) {
    app.get_by_label(label).click_accesskit();
    // As a screen reader activates it; then the frames that act on it.
    app.run_steps(3);
}

/// The screens captured, each in every language.
const SCREENS: [&str; 8] = [
    "service-stopped",
    "paused",
    "invitation",
    "preview",
    "connected",
    "disconnected",
    "revoked",
    "settings",
];

/// Captures porta-desktop's window under Xvfb as `<screen>-<lang>.png` in
/// `into`, for every language; fails if it does not render.
fn screenshots(screen: &str, socket: &Path, args: &[&str], into: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/screenshot.sh");
    for lang in Lang::ALL {
        let out = into.join(format!("{screen}-{}.png", lang.code()));
        let home = tempfile::tempdir().unwrap();
        let locale = format!("{}_ES.UTF-8", lang.code())
            .replace("it_ES", "it_IT")
            .replace("en_ES", "en_GB");
        let output = std::process::Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1024x768x24"])
            .arg(&script)
            .arg(&out)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env("PORTA_DESKTOP", binary("porta-desktop"))
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("LANG", &locale)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("LC_MESSAGES")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{screen} in {lang:?} did not render: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_window_rendered(&out, &format!("{screen} in {lang:?}"));
    }
}

/// A private session bus (dbus-daemon), a dbus-monitor recording the
/// notification calls on it, and porta-desktop under Xvfb on that bus.
struct NotifiedApp {
    bus: std::process::Child,
    monitor: std::process::Child,
    app: std::process::Child,
    seen: PathBuf,
    _home: tempfile::TempDir,
}

impl NotifiedApp {
    fn start(socket: &Path) -> Self {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut bus = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dbus-daemon (apt install dbus)");
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        let home = tempfile::tempdir().unwrap();
        let seen = home.path().join("notifications.txt");
        let monitor = std::process::Command::new("dbus-monitor")
            .args([
                "--address",
                &address,
                "interface='org.freedesktop.Notifications'",
            ])
            .stdout(std::fs::File::create(&seen).unwrap())
            .spawn()
            .unwrap();
        let app = std::process::Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1024x768x24"])
            .arg(binary("porta-desktop"))
            .arg("--socket")
            .arg(socket)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("LANG", "en_GB.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Self {
            bus,
            monitor,
            app,
            seen,
            _home: home,
        }
    }

    /// The notification texts shown so far.
    fn shown(&self) -> String {
        std::fs::read_to_string(&self.seen).unwrap_or_default()
    }
}

impl Drop for NotifiedApp {
    fn drop(&mut self) {
        // xvfb-run, its X server and the app are one process group.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.app.id())])
            .status();
        let _ = self.app.wait();
        for child in [&mut self.monitor, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A device invitation for anna.
fn invite(town: &Town, lab: &Lab, device: &str) -> String {
    town.admin(
        lab,
        &[
            "enroll", "--user", "anna", "--device", device, "--groups", "lan",
        ],
    )["invitation"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_staff_member_enrolls_connects_and_disconnects_from_the_app() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start_with(&mut lab, true, &["--organization", "Ajuntament de Calonge"]);
    town.admin(
        &lab,
        &[
            "groups",
            "add",
            "lan",
            "--description",
            "Servidor de fitxers",
        ],
    );
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let tunnel = lab.iface("d");
    let mut service = TunnelService::start(&mut lab, &town, &tunnel);
    let socket = service.socket.clone();
    let config = town.dir.path().join("config");
    let shots_temp = tempfile::tempdir().unwrap();
    let shots = screenshot_dir(shots_temp.path());
    let second = invite(&town, &lab, "anna-home-2");
    let link = porta_proto::Invitation::decode(&second).unwrap().link();

    screenshots(
        "service-stopped",
        &town.dir.path().join("none.sock"),
        &[],
        &shots,
    );
    screenshots("invitation", &socket, &[], &shots);
    screenshots("preview", &socket, &[&link], &shots);
    screenshots("settings", &socket, &["--settings"], &shots);

    // First run: the invitation as an e-mail wraps it, pasted whole.
    let invitation = invite(&town, &lab, "anna-home");
    let mut app = open_app(&socket, None, &config);
    wait_for_text(
        &mut app,
        "Paste the invitation your IT unit sent you",
        Duration::from_secs(10),
    );
    let wrapped = format!("{}\n   {}\r\n", &invitation[..70], &invitation[70..]);
    let field = app.get_by_role(porta_desktop::egui::accesskit::Role::MultilineTextInput);
    field.focus();
    field.type_text(&wrapped);
    app.step();
    click(&mut app, "Continue");
    // What will happen, with whom, and for whom: the town hall's server
    // says whose computer the invitation is for, and until when.
    wait_for_text(&mut app, "Enroll this computer", Duration::from_secs(10));
    wait_for_text(&mut app, "Ajuntament de Calonge", Duration::from_secs(1));
    wait_for_text(
        &mut app,
        "This invitation is for anna's computer \"anna-home\", valid until 20",
        Duration::from_secs(1),
    );
    // The server's address and certificate are folded away for IT.
    assert!(
        app.query_all_by_label_contains(&format!("{}:7443", addr::TOWN_PUBLIC))
            .next()
            .is_none()
    );
    click(&mut app, "Details for IT");
    wait_for_text(
        &mut app,
        &format!("{}:7443", addr::TOWN_PUBLIC),
        Duration::from_secs(1),
    );
    click(&mut app, "Enroll");
    wait_for_text(&mut app, "Connect", Duration::from_secs(15));
    wait_for_text(&mut app, "• Servidor de fitxers", Duration::from_secs(1));
    let notified = NotifiedApp::start(&socket);
    std::thread::sleep(Duration::from_secs(3));
    click(&mut app, "Connect");
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(30),
    );
    wait_until(
        "the town server through the tunnel",
        Duration::from_secs(20),
        || town_server_reachable(&lab),
    );
    wait_for_text(
        &mut app,
        "Last contact with the town hall",
        Duration::from_secs(1),
    );
    screenshots("connected", &socket, &[], &shots);

    // Diagnostics for the help desk, on the clipboard.
    click(&mut app, "Copy diagnostics for IT");
    wait_for_text(&mut app, "Copied.", Duration::from_secs(10));

    click(&mut app, "Disconnect");
    wait_for_text(&mut app, "Not connected", Duration::from_secs(10));
    assert!(!town_server_reachable(&lab));
    screenshots("disconnected", &socket, &[], &shots);

    // Revoked by IT while connected: the tunnel goes and the app says so.
    click(&mut app, "Connect");
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(30),
    );
    town.admin(&lab, &["devices", "revoke", "anna-home"]);
    wait_for_text(
        &mut app,
        "Your IT unit withdrew this computer's access to the town hall's network. To connect \
         it again you need a new invitation from them",
        Duration::from_secs(30),
    );
    assert!(!town_server_reachable(&lab));
    // The app on the desktop said so, each time.
    wait_until("the notifications", Duration::from_secs(10), || {
        notified.shown().contains("withdrew this computer's access")
    });
    let shown = notified.shown();
    assert_eq!(
        shown
            .matches("Porta: connected to the town hall's network")
            .count(),
        2,
        "{shown}"
    );
    assert!(
        !shown.contains("the connection to the town hall was lost"),
        "Disconnect was asked for (in the other window): {shown}"
    );
    assert_eq!(
        shown.matches("withdrew this computer's access").count(),
        1,
        "{shown}"
    );
    drop(notified);
    screenshots("revoked", &socket, &[], &shots);
    drop(app);

    // The `porta:` link in a new invitation e-mail opens the app with it
    // filled in: it replaces the revoked enrollment after asking.
    let mut app = open_app(&socket, Some(link), &config);
    wait_for_text(&mut app, "Enroll this computer", Duration::from_secs(10));
    wait_for_text(
        &mut app,
        "This computer is enrolled as anna-home",
        Duration::from_secs(1),
    );
    click(&mut app, "Enroll");
    wait_for_text(
        &mut app,
        "Enroll again with a new key",
        Duration::from_secs(15),
    );
    click(&mut app, "Enroll again with a new key");
    wait_for_text(&mut app, "anna-home-2 · anna", Duration::from_secs(15));
    click(&mut app, "Connect");
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(30),
    );
    wait_until("the town server again", Duration::from_secs(20), || {
        town_server_reachable(&lab)
    });

    // IT pauses Anna's account: the app says it is a pause (not a
    // revocation), and the laptop is back by itself when she is enabled.
    town.admin(&lab, &["users", "disable", "anna"]);
    wait_for_text(
        &mut app,
        "Your account is paused by your IT unit",
        Duration::from_secs(30),
    );
    screenshots("paused", &socket, &[], &shots);
    town.admin(&lab, &["users", "enable", "anna"]);
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(120),
    );

    // The service stops (an upgrade restarts it) while the app watches:
    // it stops at once, cleanly, the app says so and finds it again.
    assert_eq!(
        lab.stop(service.handle).unwrap(),
        Some(0),
        "the service stopped by itself, with the app open"
    );
    wait_for_text(
        &mut app,
        "The Porta service on this computer stopped",
        Duration::from_secs(10),
    );
    service.start_again(&mut lab);
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(30),
    );
    click(&mut app, "Disconnect");
    wait_for_text(&mut app, "Not connected", Duration::from_secs(10));

    // "Connect when I log in", chosen in the settings: the autostart entry
    // starts the app at login, and it connects by itself.
    click(&mut app, "Settings");
    wait_for_text(&mut app, "Connect when I log in", Duration::from_secs(5));
    click(&mut app, "Connect when I log in");
    let autostart = config.join("autostart/porta-desktop.desktop");
    assert!(
        std::fs::read_to_string(&autostart)
            .unwrap()
            .contains("Exec=porta-desktop --at-login"),
        "the autostart entry"
    );
    drop(app);
    let mut app = open_app_at(&socket, None, &config, true);
    wait_for_text(
        &mut app,
        "Connected to the town hall's network",
        Duration::from_secs(30),
    );
    wait_until(
        "the town server after login",
        Duration::from_secs(20),
        || town_server_reachable(&lab),
    );
    drop(app);

    // The docs hold a screenshot of every screen in every language.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    for screen in SCREENS {
        for lang in Lang::ALL {
            let name = format!("{screen}-{}.png", lang.code());
            assert!(shots.join(&name).exists(), "{name} was not captured");
            assert!(
                docs.join(&name).exists(),
                "docs/screenshots/{name} is missing"
            );
        }
    }
}
