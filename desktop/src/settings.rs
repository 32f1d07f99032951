//! The app's own settings, per user: language, start minimised, connect
//! when I log in. Saved in `~/.config/porta/desktop.toml`
//! (`%APPDATA%\porta\desktop.toml` on Windows). "Connect when I log in"
//! starts the app at login with `--at-login`, through the system's own
//! mechanism, which the person can also see and change in their system's
//! settings: an XDG autostart entry
//! (`~/.config/autostart/porta-desktop.desktop`) on Linux, the per-user
//! Run key (`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`,
//! value `Porta`) on Windows.

use porta_client::i18n::Lang;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopSettings {
    /// The language shown (from the system's locale until chosen).
    pub language: Lang,
    /// Start with the window minimised.
    pub start_minimised: bool,
    /// Start at login and connect.
    pub connect_at_login: bool,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        Self {
            language: Lang::from_environment(),
            start_minimised: false,
            connect_at_login: false,
        }
    }
}

/// Where the settings and the autostart entry live.
#[derive(Clone, Debug)]
pub struct Places {
    /// `~/.config` (or `$XDG_CONFIG_HOME`).
    pub config: PathBuf,
}

impl Places {
    /// This user's places.
    pub fn of_user() -> Self {
        Self {
            config: dirs::config_dir().unwrap_or_else(|| PathBuf::from(".config")),
        }
    }

    fn file(&self) -> PathBuf {
        self.config.join("porta").join("desktop.toml")
    }

    /// The autostart entry.
    pub fn autostart(&self) -> PathBuf {
        self.config.join("autostart").join("porta-desktop.desktop")
    }

    /// The saved settings; defaults when none (or damaged: the app must
    /// open whatever the file says).
    pub fn load(&self) -> DesktopSettings {
        std::fs::read_to_string(self.file())
            .ok()
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Saves the settings and makes the autostart entry match.
    pub fn save(&self, settings: &DesktopSettings) -> std::io::Result<()> {
        write(
            &self.file(),
            &toml::to_string_pretty(settings).map_err(std::io::Error::other)?,
        )?;
        self.start_at_login(
            settings
                .connect_at_login
                .then_some(settings.start_minimised),
        )
    }

    /// Starts the app at login (minimised or not), or not at all (`None`).
    #[cfg(not(windows))]
    fn start_at_login(&self, minimised: Option<bool>) -> std::io::Result<()> {
        let autostart = self.autostart();
        match minimised {
            Some(minimised) => write(&autostart, &autostart_entry(minimised)),
            None => match std::fs::remove_file(&autostart) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Starts the app at login (minimised or not), or not at all (`None`).
    #[cfg(windows)]
    fn start_at_login(&self, minimised: Option<bool>) -> std::io::Result<()> {
        let (run, _) =
            winreg::RegKey::predef(winreg::enums::HKEY_CURRENT_USER).create_subkey(RUN_KEY)?;
        match minimised {
            Some(minimised) => {
                let app = std::env::current_exe()?;
                run.set_value(RUN_VALUE, &run_command(&app, minimised))
            }
            None => match run.delete_value(RUN_VALUE) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }
}

/// Windows: where the programs that start at login are named, per user.
#[cfg(windows)]
pub const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
/// Windows: the app's value under [`RUN_KEY`].
#[cfg(windows)]
pub const RUN_VALUE: &str = "Porta";

/// Windows: the command the Run key holds.
pub fn run_command(app: &Path, minimised: bool) -> String {
    format!(
        "\"{}\" --at-login{}",
        app.display(),
        if minimised { " --minimised" } else { "" }
    )
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// The XDG autostart entry.
pub fn autostart_entry(minimised: bool) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Porta\nComment=Connect to the town hall's network\n\
         Exec=porta-desktop --at-login{}\nIcon=porta\nTerminal=false\nHidden=false\nX-GNOME-Autostart-enabled=true\n",
        if minimised { " --minimised" } else { "" }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(not(windows))]
    #[test]
    fn connect_at_login_is_an_autostart_entry_that_comes_and_goes() {
        let home = tempfile::tempdir().unwrap();
        let places = Places {
            config: home.path().join(".config"),
        };
        let mut settings = DesktopSettings {
            language: Lang::Ca,
            start_minimised: true,
            connect_at_login: true,
        };
        places.save(&settings).unwrap();
        assert_eq!(places.load(), settings);
        let entry = std::fs::read_to_string(places.autostart()).unwrap();
        assert!(
            entry.contains("Exec=porta-desktop --at-login --minimised"),
            "{entry}"
        );
        settings.connect_at_login = false;
        places.save(&settings).unwrap();
        assert!(!places.autostart().exists());
        assert_eq!(places.load(), settings);
    }

    /// Under Wine (the Windows target's test runner) the registry is real.
    #[cfg(windows)]
    #[test]
    fn connect_at_login_is_a_run_key_value_that_comes_and_goes() {
        use winreg::RegKey;
        use winreg::enums::HKEY_CURRENT_USER;
        let home = tempfile::tempdir().unwrap();
        let places = Places {
            config: home.path().to_owned(),
        };
        let mut settings = DesktopSettings {
            language: Lang::It,
            start_minimised: true,
            connect_at_login: true,
        };
        places.save(&settings).unwrap();
        assert_eq!(places.load(), settings);
        let run = RegKey::predef(HKEY_CURRENT_USER)
            .open_subkey(RUN_KEY)
            .unwrap();
        let command: String = run.get_value(RUN_VALUE).unwrap();
        let app = std::env::current_exe().unwrap();
        assert_eq!(command, run_command(&app, true));
        assert!(command.ends_with("\" --at-login --minimised"), "{command}");
        settings.connect_at_login = false;
        places.save(&settings).unwrap();
        assert!(run.get_value::<String, _>(RUN_VALUE).is_err());
        assert_eq!(places.load(), settings);
    }

    #[test]
    fn a_damaged_file_opens_with_defaults() {
        let home = tempfile::tempdir().unwrap();
        let places = Places {
            config: home.path().to_owned(),
        };
        std::fs::create_dir_all(home.path().join("porta")).unwrap();
        std::fs::write(home.path().join("porta/desktop.toml"), "language = 7").unwrap();
        assert_eq!(places.load(), DesktopSettings::default());
    }
}
