//! `porta-desktop`: parse, open the window.

use clap::Parser;
use eframe::egui;
use porta_desktop::app::{Options, PortaApp};
use porta_desktop::settings::Places;

/// Porta: connect this computer to your town hall's network.
#[derive(Debug, Parser)]
#[command(name = "porta-desktop", version)]
struct Cli {
    /// A `porta:` invitation link (as the desktop passes it when a link
    /// in the invitation e-mail is clicked).
    link: Option<String>,
    /// The tunnel service's socket.
    #[arg(long, env = "PORTA_SOCKET", default_value = porta_client::local::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    /// Started at login by the autostart entry: connect when the setting
    /// says so.
    #[arg(long)]
    at_login: bool,
    /// Start with the window minimised.
    #[arg(long)]
    minimised: bool,
    /// Open the settings.
    #[arg(long)]
    settings: bool,
}

fn main() -> eframe::Result {
    let cli = Cli::parse();
    porta_proto::terminal::init_logging("warn", false);
    let places = Places::of_user();
    let minimised = cli.minimised || places.load().start_minimised;
    let viewport = egui::ViewportBuilder::default()
        .with_title("Porta")
        .with_app_id("porta-desktop")
        .with_inner_size([480.0, 640.0])
        .with_min_inner_size([320.0, 400.0]);
    let native = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    let options = Options {
        socket: cli.socket,
        link: cli.link,
        at_login: cli.at_login,
        places,
        notifications: true,
        tray: true,
        minimised,
        settings: cli.settings,
    };
    eframe::run_native(
        "Porta",
        native,
        Box::new(move |creation| Ok(Box::new(PortaApp::new(&creation.egui_ctx, options)))),
    )
}
