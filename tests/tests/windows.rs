//! Porta on Windows, built here and run under Wine.
//!
//! What runs: the client crates' unit tests for the Windows target (Wine is
//! that target's runner: NRPT rules and the Run key in a real registry,
//! security descriptors, the clocks); `porta.exe daemon` — the tunnel
//! service — with `porta.exe` enrolling through its named pipe against a
//! real controller on loopback and reading its configuration back; the
//! MSI built by wixl, installed, upgraded and removed by Wine's own
//! msiexec, which starts and stops the service through Wine's service
//! control manager; and `porta-desktop.exe` rendered under Xvfb for the
//! Windows screenshots in docs/screenshots.
//!
//! What does not: the tunnel itself. Wintun is a kernel driver, which Wine
//! cannot load, so bringing the tunnel up fails there (the test checks
//! that it fails in words) and the Windows data path is not exercised in
//! CI.
//!
//! Needs the Windows target and mingw (`rustup target add
//! x86_64-pc-windows-gnu`, `gcc-mingw-w64-x86-64`), `wine64`, `wixl` and
//! `msitools`, Xvfb and ImageMagick: `.ci/run` installs them. Each test has
//! its own Wine prefix (scripts/wine-run makes it on first use).

use porta_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WINDOWS: &str = "x86_64-pc-windows-gnu";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Windows builds' own target directory (the outer `cargo test` holds
/// the workspace's).
fn windows_target_dir() -> PathBuf {
    workspace().join("target/windows")
}

/// Builds porta.exe and porta-desktop.exe once for all the tests here.
fn windows_binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", windows_target_dir())
            .args(["build", "--locked", "--target", WINDOWS])
            .args(["-p", "porta-client", "--bin", "porta"])
            .args(["-p", "porta-desktop", "--bin", "porta-desktop"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the Windows binaries do not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        windows_target_dir().join(WINDOWS).join("debug")
    })
}

/// A Wine prefix of the test's own; its wineserver ends with it.
struct Wine {
    prefix: tempfile::TempDir,
    /// The X display of every program of this prefix (its desktop is made
    /// once, by the first one: a prefix booted without a display has
    /// none for later windows either).
    display: Option<String>,
}

impl Wine {
    /// The prefix, booted, with its wineserver kept alive until the end
    /// of the test. Its service manager (and so the Porta service it
    /// starts) inherits the standard streams of the program that booted
    /// it: /dev/null here, not a test's pipe that closes when that
    /// program ends (a service writing to it would die of SIGPIPE).
    fn new() -> Self {
        Self::on_display(None)
    }

    /// [`Wine::new`], its windows on `display`.
    fn on_display(display: Option<String>) -> Self {
        let wine = Self {
            prefix: tempfile::tempdir().unwrap(),
            display,
        };
        let quiet = |mut command: Command| {
            wine.set_display(&mut command);
            let status = command
                .env("WINEPREFIX", wine.prefix.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{command:?}: {status}");
        };
        let mut boot = Command::new(workspace().join("scripts/wine-run"));
        boot.args(["cmd", "/c", "exit"]);
        quiet(boot);
        // A server that stays (the boot's may still be ending: -p then
        // makes that one stay instead, and says so with status 2).
        let mut persistent = Command::new("/usr/lib/wine/wineserver");
        wine.set_display(&mut persistent);
        let _ = persistent
            .arg("-p")
            .env("WINEPREFIX", wine.prefix.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let mut services = Command::new(workspace().join("scripts/wine-run"));
        services.args(["sc", "query", "PlugPlay"]);
        quiet(services);
        wine
    }

    fn set_display(&self, command: &mut Command) {
        match &self.display {
            Some(display) => command.env("DISPLAY", display),
            None => command.env_remove("DISPLAY"),
        };
    }

    /// `program args` under Wine (`program`: a path on this machine, or a
    /// Windows program such as msiexec).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(workspace().join("scripts/wine-run"));
        self.set_display(&mut command);
        command
            .arg(program)
            .env("WINEPREFIX", self.prefix.path())
            .stdin(Stdio::null());
        command
    }

    fn porta(&self, args: &[&str]) -> Output {
        self.run(windows_binaries().join("porta.exe"), args)
    }

    /// Runs `program args` to its end. Its output goes through files, not
    /// pipes: a Wine program may start the prefix's services, which keep
    /// its standard streams open long after it ends.
    fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        let mut command = self.command(program);
        command.args(args);
        run_through_files(command)
    }

    /// C:\ as seen from here.
    fn drive_c(&self) -> PathBuf {
        self.prefix.path().join("drive_c")
    }

    /// Reads a registry value with Wine's own `reg`.
    fn reg_query(&self, key: &str) -> String {
        let output = self.run("reg", &["query", key]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        kill_wineserver(self.prefix.path());
    }
}

/// Ends every Wine process of `prefix`.
fn kill_wineserver(prefix: &Path) {
    let _ = Command::new("/usr/lib/wine/wineserver")
        .arg("-k")
        .env("WINEPREFIX", prefix)
        .status();
}

/// Runs `command` to its end with its output going through files, not
/// pipes: a Wine program may start the prefix's services, which keep its
/// standard streams open long after it ends (`Command::output` would wait
/// for them).
fn run_through_files(mut command: Command) -> Output {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let status = command
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(out.path()).unwrap(),
        stderr: std::fs::read(err.path()).unwrap(),
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_client_crates_unit_tests_pass_under_wine() {
    let wine = Wine::new();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", windows_target_dir())
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER",
            workspace().join("scripts/wine-run"),
        )
        .env("WINEPREFIX", wine.prefix.path())
        .args(["test", "--locked", "--target", WINDOWS, "--lib"])
        .args(["-p", "porta-client", "-p", "porta-desktop"]);
    let output = run_through_files(cargo);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    // The Windows-only tests ran, not just the portable ones.
    for test in [
        "dns::nrpt::tests::the_rule_is_written_to_the_registry_and_removed ... ok",
        "platform::windows::tests::the_state_directory_and_a_private_file_take_their_descriptors ... ok",
        "settings::tests::connect_at_login_is_a_run_key_value_that_comes_and_goes ... ok",
    ] {
        assert!(said.contains(test), "{test} did not run:\n{said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn porta_exe_enrolls_through_its_service_and_reads_its_config() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let invitation = invite(&mut admin, "anna", "anna-laptop").await;
    let wine = Wine::new();
    let log = wine.prefix.path().join("service.log");

    // The tunnel service, in the foreground as a console program (the
    // MSI test below starts it as a Windows service).
    let mut service = wine
        .command(windows_binaries().join("porta.exe"))
        .args(["-v", "daemon"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let service_said = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        )
    };

    // The CLI is pointed at a state directory that does not exist: what
    // it enrolls can only land in the service's (C:\ProgramData\Porta),
    // through the pipe.
    let nowhere = r"C:\nowhere";
    let service_dir = wine.drive_c().join("ProgramData/Porta");
    let start = Instant::now();
    while !text(&wine.porta(&["--state", nowhere, "diagnostics"])).contains("service: running") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the service did not answer on its pipe:\n{}",
            service_said()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let enrolled = wine.porta(&["--state", nowhere, "enroll", &invitation]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    assert!(
        text(&enrolled).contains("anna-laptop"),
        "{}",
        text(&enrolled)
    );
    assert!(!wine.drive_c().join("nowhere").exists());

    // The key was made on the device and stays there; the controller
    // holds only its public half.
    let key = std::fs::read_to_string(service_dir.join("private.key")).unwrap();
    let key = porta_tunnel::keys::PrivateKey::from_base64(key.trim()).unwrap();
    let devices = snapshot(&mut admin).await.devices;
    let device = devices
        .iter()
        .find(|d| d.name == "anna-laptop")
        .expect("the controller lists the laptop");
    assert_eq!(device.public_key, key.public_key().to_base64());
    assert!(device.os.contains("Windows"), "os: {}", device.os);

    // Its configuration, as the controller sent it, through the service.
    let status = wine.porta(&["--state", nowhere, "status", "--json"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "disconnected", "{status}");
    assert_eq!(status["device"], "anna-laptop", "{status}");
    assert_eq!(status["user"], "anna", "{status}");
    assert_eq!(
        status["addresses"][0].as_str().unwrap_or_default(),
        format!("{}/32", device.addresses[0]),
        "{status}"
    );

    // Connecting needs Wintun, which Wine cannot load: it fails in words,
    // and the enrollment stays.
    let up = wine.porta(&["--state", nowhere, "up"]);
    let said = text(&up);
    eprintln!("porta up under Wine said: {said}");
    assert!(!up.status.success(), "{said}");
    assert!(said.to_lowercase().contains("wintun"), "{said}");
    let again = wine.porta(&["--state", nowhere, "status", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["device"], "anna-laptop", "{again}");

    let _ = service.kill();
    let _ = service.wait();
    drop(wine);
    let said = service_said();
    assert!(
        !said.contains(key.to_base64().as_str()),
        "the service logged the private key"
    );
}

/// Builds the MSI (version `version`) into `out` with
/// packaging/windows/build-msi.sh.
fn build_msi(out: &Path, version: &str, start_at_install: bool) -> PathBuf {
    windows_binaries();
    let output = Command::new(workspace().join("packaging/windows/build-msi.sh"))
        .arg(out)
        .env("CARGO_TARGET_DIR", windows_target_dir())
        .env("PORTA_MSI_VERSION", version)
        .env(
            "PORTA_MSI_START_AT_INSTALL",
            if start_at_install { "yes" } else { "no" },
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "build-msi.sh: {}", text(&output));
    let msi = out.join(format!("porta-{version}-x64.msi"));
    assert!(msi.exists(), "{}", text(&output));
    msi
}

/// One table of `msi`, as msiinfo exports it.
fn msi_table(msi: &Path, table: &str) -> String {
    let output = Command::new("msiinfo")
        .arg("export")
        .arg(msi)
        .arg(table)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "msiinfo {table}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// msiexec under Wine, silently (as IT-managed machines run it).
fn msiexec(wine: &Wine, action: &str, msi: &Path) {
    let package = format!("Z:{}", msi.display()).replace('/', "\\");
    let output = wine.run("msiexec", &[action, &package, "/qn"]);
    assert!(
        output.status.success(),
        "msiexec {action}: {}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_msi_installs_the_service_upgrades_keeping_the_enrollment_and_uninstalls() {
    let out = tempfile::tempdir().unwrap();

    // The package staff get: the service starts at install, as LocalSystem,
    // and goes at uninstall; porta: links open the app; Wintun and its
    // licence are in.
    let shipped = build_msi(&out.path().join("shipped"), "0.1.0", true);
    let services = msi_table(&shipped, "ServiceInstall");
    assert!(
        services.contains("Porta\tPorta tunnel service")
            && services.contains("LocalSystem")
            && services.contains("daemon --windows-service"),
        "{services}"
    );
    let control = msi_table(&shipped, "ServiceControl");
    let events: u32 = control
        .lines()
        .find(|l| l.starts_with("PortaServiceControl"))
        .and_then(|l| l.split('\t').nth(2))
        .and_then(|e| e.parse().ok())
        .expect("the service's control row");
    // msidbServiceControlEvent: Start 1, Stop 2, UninstallStop 32,
    // UninstallDelete 128.
    assert_eq!(events, 1 | 2 | 32 | 128, "{control}");
    let files = msi_table(&shipped, "File");
    for file in [
        "porta.exe",
        "porta-desktop.exe",
        "wintun.dll",
        "wintun-LICENSE.txt",
    ] {
        assert!(
            files.contains(&format!("\t{file}\t")),
            "{file} missing:\n{files}"
        );
    }
    let registry = msi_table(&shipped, "Registry");
    assert!(
        registry.contains("Software\\Classes\\porta\tURL Protocol")
            && registry.contains("\"[INSTALLDIR]porta-desktop.exe\" \"%1\""),
        "{registry}"
    );
    assert!(msi_table(&shipped, "Shortcut").contains("[INSTALLDIR]porta-desktop.exe"));

    // Installed, used, upgraded and removed under Wine.
    let first = build_msi(&out.path().join("first"), "0.1.0", false);
    let second = build_msi(&out.path().join("second"), "0.1.1", false);
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let invitation = invite(&mut admin, "marc", "marc-home").await;
    let wine = Wine::new();
    let installed = wine.drive_c().join("Program Files/Porta");
    let porta_exe = r"C:\Program Files\Porta\porta.exe";
    let porta = |args: &[&str]| wine.run(porta_exe, args);
    let start_service = |phase: &str| {
        // Wine's service manager sees a service msiexec has just created
        // only after a moment (until then: error 1060, which is also why
        // its msiexec cannot start it at install), and its sc exits 1 even
        // when a start succeeds: ask until the manager says it runs (asking
        // it, not the service: front ends polling the pipe meanwhile were
        // seen to keep the start from finishing under Wine), then the
        // service must answer on its pipe.
        let start = Instant::now();
        let mut asked = None::<Instant>;
        loop {
            let query = wine.run("sc", &["query", "Porta"]);
            if String::from_utf8_lossy(&query.stdout).contains("RUNNING") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the service did not start ({phase}): {}",
                text(&query)
            );
            if asked.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                let _ = wine.run("sc", &["start", "Porta"]);
                asked = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        wait_for("the service's pipe", Duration::from_secs(90), || {
            text(&porta(&["diagnostics"])).contains("service: running")
        });
    };

    msiexec(&wine, "/i", &first);
    for file in [
        "porta.exe",
        "porta-desktop.exe",
        "wintun.dll",
        "wintun-LICENSE.txt",
    ] {
        assert!(installed.join(file).exists(), "{file} not installed");
    }
    let handler = wine.reg_query(r"HKLM\Software\Classes\porta\shell\open\command");
    assert!(handler.contains("porta-desktop.exe"), "{handler}");
    start_service("after the install");
    let enrolled = porta(&["enroll", &invitation]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    let key_file = wine.drive_c().join("ProgramData/Porta/private.key");
    let key = std::fs::read_to_string(&key_file).unwrap();

    // The upgrade replaces the programs and keeps the enrollment.
    msiexec(&wine, "/i", &second);
    start_service("after the upgrade");
    let status = porta(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["device"], "marc-home", "{status}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);

    // Uninstalling asks nothing, stops and removes the service and the
    // programs; the enrollment stays for a reinstall (`porta leave` first
    // forgets it).
    msiexec(&wine, "/x", &second);
    assert!(!installed.join("porta.exe").exists());
    let query = wine.run("sc", &["query", "Porta"]);
    assert!(
        !String::from_utf8_lossy(&query.stdout).contains("SERVICE_NAME"),
        "{}",
        text(&query)
    );
    assert!(key_file.exists());
}

/// A virtual X server of the test's own.
struct Xvfb {
    server: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let number = (100..600)
            .map(|n| n + std::process::id() % 300)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free display");
        let display = format!(":{number}");
        let server = Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt-get install xvfb)");
        wait_for("Xvfb", Duration::from_secs(20), || {
            Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
        });
        Self { server, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Captures porta-desktop.exe's window under Wine and Xvfb as
/// `windows-<screen>-<lang>.png` in `into`, in every language, with the
/// tunnel service of `wine` answering on its pipe; fails if the window
/// does not render.
fn windows_screenshots(wine: &Wine, screen: &str, into: &Path) {
    let script = workspace().join("tests/scripts/screenshot.sh");
    for lang in porta_client::i18n::Lang::ALL {
        let out = into.join(format!("windows-{screen}-{}.png", lang.code()));
        let locale = format!("{}_ES.UTF-8", lang.code())
            .replace("it_ES", "it_IT")
            .replace("en_ES", "en_GB");
        let mut capture = Command::new(&script);
        wine.set_display(&mut capture);
        capture
            .arg(&out)
            .env(
                "PORTA_DESKTOP",
                workspace().join("tests/scripts/wine-desktop.sh"),
            )
            .env(
                "PORTA_DESKTOP_EXE",
                windows_binaries().join("porta-desktop.exe"),
            )
            .env("WINEPREFIX", wine.prefix.path())
            // Wine starts slower than a native app.
            .env("SETTLE", "6")
            .env("LANG", &locale)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("LC_MESSAGES")
            .env("LIBGL_ALWAYS_SOFTWARE", "1");
        let output = run_through_files(capture);
        assert!(
            output.status.success(),
            "{screen} in {lang:?} did not render under Wine: {}",
            text(&output)
        );
        assert_window_rendered(&out, &format!("{screen} in {lang:?}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn porta_desktop_exe_renders_its_screens_under_wine() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let invitation = invite(&mut admin, "nuria", "nuria-home").await;
    let xvfb = Xvfb::start();
    let wine = Wine::on_display(Some(xvfb.display.clone()));
    let temp = tempfile::tempdir().unwrap();
    let shots = screenshot_dir(temp.path());
    let mut service = wine
        .command(windows_binaries().join("porta.exe"))
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the service's pipe", Duration::from_secs(120), || {
        text(&wine.porta(&["diagnostics"])).contains("service: running")
    });
    windows_screenshots(&wine, "invitation", &shots);
    let enrolled = wine.porta(&["enroll", &invitation]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    windows_screenshots(&wine, "disconnected", &shots);
    let _ = service.kill();
    let _ = service.wait();
}
