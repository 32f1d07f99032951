//! The tray icon, where the desktop has a tray (KDE, Xfce, Cinnamon, MATE,
//! GNOME with the AppIndicator extension): a StatusNotifierItem on the
//! session bus (ksni, pure Rust). Its menu opens the window, connects or
//! disconnects, and quits the app. Where there is no tray, [`Tray::start`]
//! gives `None` and the window is all there is — the app never depends on
//! a tray.

use crate::model::{Action, Model};
use eframe::egui;
use ksni::blocking::TrayMethods;
use porta_client::i18n::{Lang, Msg};
use porta_proto::local::status::State;
use std::sync::mpsc;

/// What the tray shows: the language and whether the tunnel is up
/// (`None`: nothing to connect, e.g. not enrolled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shown {
    lang: Lang,
    up: Option<bool>,
}

struct Item {
    shown: Shown,
    ctx: egui::Context,
    actions: mpsc::Sender<Action>,
}

impl ksni::Tray for Item {
    fn id(&self) -> String {
        "porta-desktop".into()
    }

    fn title(&self) -> String {
        match self.shown.up {
            Some(true) => Msg::StateConnected.text(self.shown.lang),
            _ => Msg::StateDisconnected.text(self.shown.lang),
        }
        .into()
    }

    fn icon_name(&self) -> String {
        if self.shown.up == Some(true) {
            "porta"
        } else {
            "porta-disconnected"
        }
        .into()
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        show_window(&self.ctx);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        use ksni::menu::StandardItem;
        let lang = self.shown.lang;
        let mut items: Vec<ksni::MenuItem<Self>> = vec![
            StandardItem {
                label: Msg::OpenWindow.text(lang).into(),
                activate: Box::new(|item: &mut Self| show_window(&item.ctx)),
                ..Default::default()
            }
            .into(),
        ];
        if let Some(up) = self.shown.up {
            let (label, action) = if up {
                (Msg::Disconnect, Action::Disconnect)
            } else {
                (Msg::Connect, Action::Connect)
            };
            items.push(
                StandardItem {
                    label: label.text(lang).into(),
                    activate: Box::new(move |item: &mut Self| {
                        let _ = item.actions.send(action.clone());
                        item.ctx.request_repaint();
                    }),
                    ..Default::default()
                }
                .into(),
            );
        }
        items.push(ksni::MenuItem::Separator);
        items.push(
            StandardItem {
                label: Msg::Quit.text(lang).into(),
                // The tunnel belongs to the service: quitting the app
                // leaves it as it is.
                activate: Box::new(|_: &mut Self| std::process::exit(0)),
                ..Default::default()
            }
            .into(),
        );
        items
    }
}

fn show_window(ctx: &egui::Context) {
    ctx.send_viewport_cmd(egui::ViewportCommand::Visible(true));
    ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
    ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
}

/// The running tray icon.
pub struct Tray {
    handle: ksni::blocking::Handle<Item>,
    actions: mpsc::Receiver<Action>,
    shown: std::cell::Cell<Shown>,
}

impl Tray {
    /// Puts the icon in the tray; `None` where the desktop has no tray (or
    /// no session bus).
    pub fn start(ctx: egui::Context, lang: Lang) -> Option<Self> {
        let (sender, actions) = mpsc::channel();
        let shown = Shown { lang, up: None };
        match (Item {
            shown,
            ctx,
            actions: sender,
        })
        .spawn()
        {
            Ok(handle) => Some(Self {
                handle,
                actions,
                shown: std::cell::Cell::new(shown),
            }),
            Err(error) => {
                tracing::info!(%error, "no tray on this desktop; the window is all there is");
                None
            }
        }
    }

    /// True while the icon is in the tray.
    pub fn visible(&self) -> bool {
        !self.handle.is_closed()
    }

    /// What was chosen in the tray's menu since the last call.
    pub fn actions(&self) -> Vec<Action> {
        self.actions.try_iter().collect()
    }

    /// Follows the model (only when what the tray shows changes).
    pub fn show(&self, model: &Model) {
        let up = match model.state() {
            Some(State::Connected | State::Connecting) => Some(true),
            Some(State::Disconnected) => Some(false),
            _ => None,
        };
        let wanted = Shown {
            lang: model.lang(),
            up,
        };
        if wanted != self.shown.get() {
            self.shown.set(wanted);
            self.handle.update(|item| item.shown = wanted);
        }
    }
}
