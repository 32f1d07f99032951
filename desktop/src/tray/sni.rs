//! Linux: a StatusNotifierItem on the session bus (ksni, pure Rust), shown
//! by KDE, Xfce, Cinnamon, MATE, and GNOME with the AppIndicator
//! extension.

use super::{Choice, Shown, show_window};
use crate::model::{Action, Model};
use eframe::egui;
use ksni::blocking::TrayMethods;
use porta_client::i18n::Lang;
use std::sync::mpsc;

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
        self.shown.title().into()
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
        let mut items = Vec::new();
        for entry in self.shown.entries() {
            if entry.separated {
                items.push(ksni::MenuItem::Separator);
            }
            let activate: Box<dyn Fn(&mut Self) + Send> = match entry.choice {
                Choice::OpenWindow => Box::new(|item: &mut Self| show_window(&item.ctx)),
                Choice::Do(action) => Box::new(move |item: &mut Self| {
                    let _ = item.actions.send(action.clone());
                    item.ctx.request_repaint();
                }),
                Choice::Quit => Box::new(|_: &mut Self| super::quit()),
            };
            items.push(
                StandardItem {
                    label: entry.label,
                    activate,
                    ..Default::default()
                }
                .into(),
            );
        }
        items
    }
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
        let wanted = Shown::of(model);
        if wanted != self.shown.get() {
            self.shown.set(wanted);
            self.handle.update(|item| item.shown = wanted);
        }
    }
}
