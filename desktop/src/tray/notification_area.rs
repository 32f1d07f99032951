//! Windows: an icon in the notification area (tray-icon), its tooltip
//! saying whether the tunnel is up, its menu on a right click, the window
//! on a left click. The icon lives on the window's thread, whose message
//! loop (winit's) also serves it; its events arrive through handlers that
//! wake the window.

use super::{Choice, Shown, show_window};
use crate::model::{Action, Model};
use eframe::egui;
use porta_client::i18n::Lang;
use std::cell::Cell;
use std::sync::{Arc, Mutex, mpsc};
use tray_icon::menu::{Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem};
use tray_icon::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};

const CONNECTED: &[u8] = include_bytes!("../../../packaging/desktop/icons/32x32/porta.png");
const DISCONNECTED: &[u8] =
    include_bytes!("../../../packaging/desktop/icons/32x32/porta-disconnected.png");

/// The menu's entries by id, for the menu's event handler.
type Choices = Arc<Mutex<Vec<(MenuId, Choice)>>>;

/// The running tray icon.
pub struct Tray {
    icon: TrayIcon,
    choices: Choices,
    actions: mpsc::Receiver<Action>,
    shown: Cell<Shown>,
}

impl Tray {
    /// Puts the icon in the notification area; `None` if Windows refuses.
    pub fn start(ctx: egui::Context, lang: Lang) -> Option<Self> {
        let shown = Shown { lang, up: None };
        let choices: Choices = Arc::default();
        let (sender, actions) = mpsc::channel();
        {
            let choices = choices.clone();
            let ctx = ctx.clone();
            MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
                let chosen = choices
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .find(|(id, _)| *id == event.id)
                    .map(|(_, choice)| choice.clone());
                match chosen {
                    Some(Choice::OpenWindow) => show_window(&ctx),
                    Some(Choice::Do(action)) => {
                        let _ = sender.send(action);
                        ctx.request_repaint();
                    }
                    Some(Choice::Quit) => super::quit(),
                    None => {}
                }
            }));
        }
        {
            let ctx = ctx.clone();
            TrayIconEvent::set_event_handler(Some(move |event: TrayIconEvent| {
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = event
                {
                    show_window(&ctx);
                }
            }));
        }
        let built = TrayIconBuilder::new()
            .with_tooltip(shown.title())
            .with_menu(Box::new(menu(&shown, &choices)))
            .with_icon(picture(false)?)
            .build();
        match built {
            Ok(icon) => Some(Self {
                icon,
                choices,
                actions,
                shown: Cell::new(shown),
            }),
            Err(error) => {
                tracing::info!(%error, "no notification-area icon; the window is all there is");
                None
            }
        }
    }

    /// True while the icon is shown (for as long as the app runs).
    pub fn visible(&self) -> bool {
        true
    }

    /// What was chosen in the menu since the last call.
    pub fn actions(&self) -> Vec<Action> {
        self.actions.try_iter().collect()
    }

    /// Follows the model (only when what the icon shows changes).
    pub fn show(&self, model: &Model) {
        let wanted = Shown::of(model);
        if wanted == self.shown.get() {
            return;
        }
        self.shown.set(wanted);
        self.icon
            .set_menu(Some(Box::new(menu(&wanted, &self.choices))));
        let _ = self.icon.set_tooltip(Some(wanted.title()));
        let _ = self.icon.set_icon(picture(wanted.up == Some(true)));
    }
}

/// The menu for `shown`; its entries' ids replace those in `choices`.
fn menu(shown: &Shown, choices: &Choices) -> Menu {
    let menu = Menu::new();
    let mut ids = Vec::new();
    for entry in shown.entries() {
        if entry.separated {
            let _ = menu.append(&PredefinedMenuItem::separator());
        }
        let item = MenuItem::new(&entry.label, true, None);
        ids.push((item.id().clone(), entry.choice));
        let _ = menu.append(&item);
    }
    *choices
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = ids;
    menu
}

/// The icon's picture (the same as the Linux icon theme's).
fn picture(connected: bool) -> Option<tray_icon::Icon> {
    let png = if connected { CONNECTED } else { DISCONNECTED };
    let data = eframe::icon_data::from_png_bytes(png).ok()?;
    tray_icon::Icon::from_rgba(data.rgba, data.width, data.height).ok()
}
