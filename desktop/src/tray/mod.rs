//! The tray icon, where the desktop has one: its menu opens the window,
//! connects or disconnects, and quits the app. Where there is no tray,
//! `Tray::start` gives `None` and the window is all there is — the app
//! never depends on a tray.
//!
//! What the tray shows and offers is decided here, once ([`Shown`],
//! [`Shown::entries`]); each system draws it its own way:
//! * `sni` (Linux): a StatusNotifierItem on the session bus (ksni).
//! * `notification_area` (Windows): an icon in the notification area
//!   (tray-icon), its menu on a right click.

use crate::model::{Action, Model};
use eframe::egui;
use porta_client::i18n::{Lang, Msg};
use porta_proto::local::status::State;

#[cfg(target_os = "linux")]
mod sni;
#[cfg(target_os = "linux")]
pub use sni::Tray;
#[cfg(windows)]
mod notification_area;
#[cfg(windows)]
pub use notification_area::Tray;

/// What the tray shows: the language and whether the tunnel is up
/// (`None`: nothing to connect, e.g. not enrolled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    /// The language of the menu.
    pub lang: Lang,
    /// Up, down, or nothing to connect.
    pub up: Option<bool>,
}

/// What a menu entry does.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Brings the window back.
    OpenWindow,
    /// Hands an action to the model.
    Do(Action),
    /// Ends the app (the tunnel stays as it is: it is the service's).
    Quit,
}

/// One menu entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its words.
    pub label: String,
    /// What it does.
    pub choice: Choice,
    /// A separator goes above it.
    pub separated: bool,
}

impl Shown {
    /// What the tray shows for `model`.
    pub fn of(model: &Model) -> Self {
        let up = match model.state() {
            Some(State::Connected | State::Connecting) => Some(true),
            Some(State::Disconnected) => Some(false),
            _ => None,
        };
        Self {
            lang: model.lang(),
            up,
        }
    }

    /// The icon's tooltip.
    pub fn title(&self) -> &'static str {
        match self.up {
            Some(true) => Msg::StateConnected.text(self.lang),
            _ => Msg::StateDisconnected.text(self.lang),
        }
    }

    /// The menu: open the window, connect or disconnect (when there is a
    /// tunnel to drive), quit.
    pub fn entries(&self) -> Vec<Entry> {
        let lang = self.lang;
        let entry = |msg: Msg, choice, separated| Entry {
            label: msg.text(lang).into(),
            choice,
            separated,
        };
        let mut entries = vec![entry(Msg::OpenWindow, Choice::OpenWindow, false)];
        match self.up {
            Some(true) => entries.push(entry(
                Msg::Disconnect,
                Choice::Do(Action::Disconnect),
                false,
            )),
            Some(false) => entries.push(entry(Msg::Connect, Choice::Do(Action::Connect), false)),
            None => {}
        }
        entries.push(entry(Msg::Quit, Choice::Quit, true));
        entries
    }
}

fn show_window(ctx: &egui::Context) {
    ctx.send_viewport_cmd(egui::ViewportCommand::Visible(true));
    ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
    ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
}

/// Quits the app from the tray (the tunnel belongs to the service:
/// quitting leaves it as it is).
fn quit() -> ! {
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_offers_what_the_tunnel_allows() {
        let lang = Lang::En;
        let choices = |up| {
            Shown { lang, up }
                .entries()
                .into_iter()
                .map(|e| e.choice)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            choices(Some(true)),
            [
                Choice::OpenWindow,
                Choice::Do(Action::Disconnect),
                Choice::Quit
            ]
        );
        assert_eq!(
            choices(Some(false)),
            [
                Choice::OpenWindow,
                Choice::Do(Action::Connect),
                Choice::Quit
            ]
        );
        assert_eq!(choices(None), [Choice::OpenWindow, Choice::Quit]);
        let quit = Shown { lang, up: None }.entries().pop().expect("quit");
        assert!(quit.separated);
    }
}
