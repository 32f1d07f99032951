//! The window: eframe runs it, [`PortaApp`] glues the model, the backend,
//! the UI, the tray and notifications. Each frame first applies what the
//! service reported, then draws and applies what the person did; nothing
//! redraws unless one of them happened (the backend wakes the window), so
//! an idle app costs nothing.

use crate::backend::Backend;
use crate::model::{Action, Effect, Model};
use crate::settings::Places;
use eframe::egui;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the app was started.
#[derive(Clone, Debug)]
pub struct Options {
    /// The tunnel service's socket.
    pub socket: PathBuf,
    /// An invitation from a `porta:` link.
    pub link: Option<String>,
    /// Started by the autostart entry: connect.
    pub at_login: bool,
    /// Where the settings live.
    pub places: Places,
    /// Show desktop notifications (off in tests without a session bus).
    pub notifications: bool,
    /// Offer a tray icon where the desktop has a tray.
    pub tray: bool,
    /// Start with the window minimised.
    pub minimised: bool,
    /// Open the settings.
    pub settings: bool,
}

/// The app.
pub struct PortaApp {
    model: Model,
    backend: Backend,
    places: Places,
    notifications: bool,
    #[cfg(any(target_os = "linux", windows))]
    tray: Option<crate::tray::Tray>,
    connect_when_ready: bool,
}

impl PortaApp {
    /// Starts the app's backend; `ctx` is woken when the service reports.
    pub fn new(ctx: &egui::Context, options: Options) -> Self {
        let settings = options.places.load();
        if options.minimised {
            ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(true));
        }
        let wake = ctx.clone();
        let backend = Backend::start(options.socket, move || wake.request_repaint());
        #[cfg(any(target_os = "linux", windows))]
        let tray = options
            .tray
            .then(|| crate::tray::Tray::start(ctx.clone(), settings.language))
            .flatten();
        let mut model = Model::new(settings.clone(), options.link);
        model.settings_open = options.settings;
        Self {
            connect_when_ready: options.at_login && settings.connect_at_login,
            model,
            backend,
            places: options.places,
            notifications: options.notifications,
            #[cfg(any(target_os = "linux", windows))]
            tray,
        }
    }

    /// The model, for tests.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Applies what the service and the tray reported (also while the
    /// window is hidden).
    pub fn logic(&mut self, ctx: &egui::Context) {
        for event in self.backend.poll() {
            let effects = self.model.apply(event);
            self.perform(effects, ctx);
        }
        if self.connect_when_ready
            && self
                .model
                .state()
                .is_some_and(|s| s == porta_proto::local::status::State::Disconnected)
        {
            self.connect_when_ready = false;
            let effects = self.model.act(Action::Connect);
            self.perform(effects, ctx);
        }
        #[cfg(any(target_os = "linux", windows))]
        {
            let chosen = self
                .tray
                .as_ref()
                .map(crate::tray::Tray::actions)
                .unwrap_or_default();
            for action in chosen {
                let effects = self.model.act(action);
                self.perform(effects, ctx);
            }
            if let Some(tray) = &self.tray {
                tray.show(&self.model);
            }
        }
    }

    /// One frame: the service's news, then the window and what the person
    /// did in it.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.logic(&ctx);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let actions = egui::Frame::central_panel(ui.style())
            .show(ui, |ui| crate::ui::show(ui, &self.model, now))
            .inner;
        for action in actions {
            let effects = self.model.act(action);
            self.perform(effects, &ctx);
        }
        if ctx.input(|i| i.viewport().close_requested()) {
            self.closing(&ctx);
        }
    }

    /// Closing the window leaves the tunnel as it is. With a tray, the app
    /// stays there (its menu quits); without one, it ends.
    fn closing(&mut self, ctx: &egui::Context) {
        #[cfg(any(target_os = "linux", windows))]
        if self.tray.as_ref().is_some_and(crate::tray::Tray::visible) {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            ctx.send_viewport_cmd(egui::ViewportCommand::Visible(false));
        }
        let _ = ctx;
    }

    fn perform(&mut self, effects: Vec<Effect>, ctx: &egui::Context) {
        for effect in effects {
            match effect {
                Effect::Send(request) => self.backend.send(request),
                Effect::Copy(text) => ctx.copy_text(text),
                Effect::Notify(msg) => {
                    if self.notifications {
                        notify(msg.text(self.model.lang()));
                    }
                }
                Effect::SaveSettings(settings) => {
                    if let Err(error) = self.places.save(&settings) {
                        tracing::warn!(%error, "could not save the settings");
                    }
                }
            }
        }
    }
}

impl eframe::App for PortaApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        PortaApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }
}

/// A desktop notification (org.freedesktop.Notifications); nothing where
/// the desktop has no notification service.
fn notify(text: &str) {
    #[cfg(target_os = "linux")]
    {
        let shown = notify_rust::Notification::new()
            .appname("Porta")
            .summary(text)
            .icon("porta")
            .show();
        if let Err(error) = shown {
            tracing::info!(%error, "no desktop notification service");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = text;
}
