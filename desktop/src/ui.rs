//! The window's contents: the [`Model`] drawn with egui, the person's
//! clicks and keys turned into [`Action`]s. Nothing here talks to the
//! service or keeps state of its own.
//!
//! Accessibility: every control is a real egui widget with its text as
//! its AccessKit label (the field is labelled by its heading), reachable
//! with Tab and activated with Enter or Space; the layout is one column
//! in a scroll area, so it stays usable at 200 % scaling.

use crate::model::{Action, Model, Notice, Screen};
use crate::settings::DesktopSettings;
use eframe::egui::{self, Align, Button, Color32, Layout, RichText, ScrollArea, TextEdit};
use porta_client::i18n::{Lang, Msg};
use porta_proto::local::{self, status::State};

/// The big Connect/Disconnect button's size, in points.
const BIG_BUTTON: egui::Vec2 = egui::vec2(240.0, 56.0);

/// Warning and success colours with at least 4.5:1 contrast on egui's
/// light and dark panels (WCAG AA for text).
fn warning_colour(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(0xff, 0xa0, 0x5c)
    } else {
        Color32::from_rgb(0xa6, 0x3c, 0x00)
    }
}

fn good_colour(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(0x7c, 0xd9, 0x8c)
    } else {
        Color32::from_rgb(0x1b, 0x6e, 0x2a)
    }
}

/// Draws the model; returns what the person did. `now` is Unix seconds.
pub fn show(ui: &mut egui::Ui, model: &Model, now: u64) -> Vec<Action> {
    let mut actions = Vec::new();
    let lang = model.lang();
    ui.horizontal(|ui| {
        ui.heading(Msg::AppTitle.text(lang));
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            let label = if model.settings_open {
                Msg::Done
            } else {
                Msg::Settings
            };
            if ui.button(label.text(lang)).clicked() {
                actions.push(Action::ToggleSettings);
            }
        });
    });
    ui.separator();
    ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.set_max_width(ui.available_width().min(560.0));
            match model.screen() {
                Screen::Starting => {
                    ui.label(Msg::Working.text(lang));
                }
                Screen::ServiceProblem => service_problem(ui, model, &mut actions),
                Screen::Invitation => invitation(ui, model, &mut actions),
                Screen::Preview => preview(ui, model, &mut actions),
                Screen::Tunnel => tunnel(ui, model, now, &mut actions),
                Screen::Revoked => revoked(ui, model, &mut actions),
                Screen::Paused => paused(ui, model, &mut actions),
                Screen::Settings => settings(ui, model, &mut actions),
            }
            if let Some(notice) = &model.notice {
                ui.add_space(12.0);
                warning(ui, notice, lang);
            }
        });
    actions
}

fn warning(ui: &mut egui::Ui, notice: &Notice, lang: Lang) {
    let colour = warning_colour(ui);
    ui.label(RichText::new(notice.words(lang)).color(colour).strong());
}

fn service_problem(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    if let Some(problem) = model.service_problem() {
        warning(ui, &problem, lang);
    }
    ui.add_space(8.0);
    if ui.button(Msg::Retry.text(lang)).clicked() {
        actions.push(Action::Retry);
    }
    ui.add_space(12.0);
    if model.service_command().is_some() && ui.button(Msg::CopyCommand.text(lang)).clicked() {
        actions.push(Action::CopyCommand);
    }
    diagnostics_button(ui, model, actions);
}

fn invitation(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let heading = ui.label(RichText::new(Msg::PasteInvitation.text(lang)).size(18.0));
    ui.label(Msg::InvitationHint.text(lang));
    let mut text = model.invitation.clone();
    let field = ui.add(
        TextEdit::multiline(&mut text)
            .desired_rows(5)
            .desired_width(f32::INFINITY)
            .hint_text("porta1_…"),
    );
    let field = field.labelled_by(heading.id);
    if field.changed() {
        actions.push(Action::EditInvitation(text));
    }
    ui.add_space(8.0);
    let ready = !model.busy && !model.invitation.trim().is_empty();
    let label = if model.busy {
        Msg::Working
    } else {
        Msg::Continue
    };
    if ui
        .add_enabled(ready, Button::new(label.text(lang)))
        .clicked()
    {
        actions.push(Action::SubmitInvitation);
    }
}

fn preview(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let Some(preview) = &model.preview else {
        return;
    };
    ui.label(RichText::new(Msg::PreviewTitle.text(lang)).size(18.0));
    ui.add_space(6.0);
    if !preview.organization.is_empty() {
        ui.label(RichText::new(&preview.organization).strong());
    }
    // Whom it is for, as the town hall's server says: a clerk sees at
    // once an invitation meant for a colleague.
    if !preview.device_name.is_empty() {
        let person = if preview.display_name.is_empty() {
            &preview.user
        } else {
            &preview.display_name
        };
        ui.label(
            RichText::new(Msg::PreviewFor.fill(
                lang,
                &[
                    ("person", person),
                    ("device", &preview.device_name),
                    ("until", &until(preview.expires_at)),
                ],
            ))
            .strong(),
        );
    } else if !preview.unconfirmed.is_empty() {
        let colour = warning_colour(ui);
        ui.label(RichText::new(Msg::PreviewUnconfirmed.text(lang)).color(colour));
    }
    ui.add_space(6.0);
    ui.label(Msg::PreviewWhat.text(lang));
    if !preview.enrolled_as.is_empty() {
        ui.add_space(6.0);
        let colour = warning_colour(ui);
        ui.label(
            RichText::new(Msg::PreviewReplaces.fill(lang, &[("device", &preview.enrolled_as)]))
                .color(colour),
        );
    }
    ui.add_space(10.0);
    ui.horizontal(|ui| {
        let (label, replace) = if model.confirm_replace {
            (Msg::EnrollAgain, true)
        } else {
            (Msg::Enroll, false)
        };
        let label = if model.busy { Msg::Working } else { label };
        if ui
            .add_enabled(!model.busy, Button::new(label.text(lang)))
            .clicked()
        {
            actions.push(Action::Enroll { replace });
        }
        if ui
            .add_enabled(!model.busy, Button::new(Msg::Back.text(lang)))
            .clicked()
        {
            actions.push(Action::Back);
        }
    });
    ui.add_space(10.0);
    egui::CollapsingHeader::new(Msg::PreviewDetails.text(lang))
        .id_salt("preview-details")
        .show(ui, |ui| {
            ui.label(Msg::PreviewController.fill(lang, &[("controller", &preview.controller)]));
            ui.label(
                RichText::new(
                    Msg::PreviewFingerprint.fill(lang, &[("fingerprint", &preview.fingerprint)]),
                )
                .small()
                .monospace(),
            );
        });
}

/// An expiry as staff read it, in UTC: "2026-12-15 10:00 UTC".
fn until(unix: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", text.replace('T', " ").get(..16).unwrap_or(&text))
}

fn tunnel(ui: &mut egui::Ui, model: &Model, now: u64, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let Some(status) = model.status() else { return };
    if status.connected_since != 0 {
        // The time connected counts on by itself, with nobody moving the
        // mouse (the service sends news only when something changes).
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(1));
    }
    ui.label(
        RichText::new(Msg::EnrolledAs.fill(
            lang,
            &[("device", &status.device_name), ("user", &status.user)],
        ))
        .strong(),
    );
    let (state_text, colour) = match status.state() {
        State::Connected => (Msg::StateConnected, good_colour(ui)),
        State::Connecting => (Msg::StateConnecting, warning_colour(ui)),
        _ => (Msg::StateDisconnected, ui.visuals().text_color()),
    };
    ui.label(
        RichText::new(state_text.text(lang))
            .size(18.0)
            .color(colour),
    );
    ui.add_space(8.0);
    let up = matches!(status.state(), State::Connected | State::Connecting);
    let label = match (model.busy, up) {
        (true, _) => Msg::Working,
        (false, true) => Msg::Disconnect,
        (false, false) => Msg::Connect,
    };
    let size = egui::vec2(BIG_BUTTON.x.min(ui.available_width()), BIG_BUTTON.y);
    let button = Button::new(RichText::new(label.text(lang)).size(22.0)).min_size(size);
    if ui.add_enabled(!model.busy, button).clicked() {
        actions.push(if up {
            Action::Disconnect
        } else {
            Action::Connect
        });
    }
    ui.add_space(8.0);
    for problem in status.problems() {
        let Some(msg) = porta_client::i18n::problem_words(problem) else {
            continue;
        };
        let colour = warning_colour(ui);
        ui.label(RichText::new(msg.text(lang)).color(colour));
    }
    if up {
        details(ui, status, lang, now);
    }
    ui.add_space(8.0);
    ui.label(RichText::new(Msg::Reach.text(lang)).strong());
    reach(ui, status, lang);
    ui.add_space(12.0);
    diagnostics_button(ui, model, actions);
}

/// What the town lets this computer reach, named as IT named it (the
/// groups' descriptions) with the ports; the prefixes folded away for IT.
fn reach(ui: &mut egui::Ui, status: &local::Status, lang: Lang) {
    if status.reach.is_empty() {
        // An older controller names nothing: the prefixes it is.
        for route in &status.routes {
            ui.label(RichText::new(route).monospace());
        }
        return;
    }
    let mut named: Vec<String> = Vec::new();
    for reach in &status.reach {
        let name = if reach.name.is_empty() {
            Msg::ReachEveryone.text(lang).to_owned()
        } else {
            reach.name.clone()
        };
        let line = if reach.ports.is_empty() {
            name
        } else {
            format!("{name} ({})", reach.ports)
        };
        if !named.contains(&line) {
            named.push(line);
        }
    }
    for line in named {
        ui.label(format!("• {line}"));
    }
    egui::CollapsingHeader::new(Msg::PreviewDetails.text(lang))
        .id_salt("reach-details")
        .show(ui, |ui| {
            for reach in &status.reach {
                let ports = if reach.ports.is_empty() {
                    String::new()
                } else {
                    format!(" {}", reach.ports)
                };
                ui.label(RichText::new(format!("{}{ports}", reach.cidr)).monospace());
            }
        });
}

fn details(ui: &mut egui::Ui, status: &local::Status, lang: Lang, now: u64) {
    // Name and value on one line where they fit, wrapped where they do not
    // (a grid would run off a narrow or zoomed window).
    let row = |ui: &mut egui::Ui, name: Msg, value: String| {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("{}:", name.text(lang))).strong());
            ui.label(value);
        });
    };
    row(
        ui,
        Msg::ConnectedSince,
        elapsed(now.saturating_sub(status.connected_since)),
    );
    // Through the town hall, by name; the gateway's own name only when
    // the town has none (or for a branch's gateway).
    let through = if status.organization.is_empty() || status.gateway_name != "embedded" {
        status.gateway_name.clone()
    } else {
        status.organization.clone()
    };
    row(ui, Msg::Gateway, through);
    row(
        ui,
        Msg::Traffic,
        Msg::TrafficEachWay.fill(
            lang,
            &[
                ("received", &bytes(status.rx_bytes)),
                ("sent", &bytes(status.tx_bytes)),
            ],
        ),
    );
    let handshake = if status.last_handshake == 0 {
        Msg::Never.text(lang).to_owned()
    } else {
        let ago = now.saturating_sub(status.last_handshake).to_string();
        Msg::SecondsAgo.fill(lang, &[("seconds", &ago)])
    };
    row(ui, Msg::LastHandshake, handshake);
    if !status.dns_servers.is_empty() {
        row(ui, Msg::TownDns, status.dns_servers.join(", "));
    }
}

fn revoked(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let colour = warning_colour(ui);
    ui.label(
        RichText::new(Msg::Revoked.text(lang))
            .size(18.0)
            .color(colour),
    );
    ui.add_space(10.0);
    if ui.button(Msg::NewInvitation.text(lang)).clicked() {
        actions.push(Action::NewInvitation);
    }
    ui.add_space(12.0);
    diagnostics_button(ui, model, actions);
}

/// The person's account is paused: nothing to do here but wait (the
/// service asks again by itself), or ask again now.
fn paused(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let colour = warning_colour(ui);
    ui.label(
        RichText::new(Msg::Paused.text(lang))
            .size(18.0)
            .color(colour),
    );
    ui.add_space(10.0);
    if ui
        .add_enabled(!model.busy, egui::Button::new(Msg::Connect.text(lang)))
        .clicked()
    {
        actions.push(Action::Connect);
    }
    ui.add_space(12.0);
    diagnostics_button(ui, model, actions);
}

fn diagnostics_button(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    if ui.button(Msg::CopyDiagnostics.text(lang)).clicked() {
        actions.push(Action::CopyDiagnostics);
    }
    if model.copied {
        ui.label(Msg::DiagnosticsCopied.text(lang));
    }
}

fn settings(ui: &mut egui::Ui, model: &Model, actions: &mut Vec<Action>) {
    let lang = model.lang();
    let mut wanted: DesktopSettings = model.settings.clone();
    ui.checkbox(&mut wanted.connect_at_login, Msg::ConnectAtLogin.text(lang));
    ui.checkbox(&mut wanted.start_minimised, Msg::StartMinimised.text(lang));
    ui.add_space(8.0);
    let heading = ui.label(RichText::new(Msg::Language.text(lang)).strong());
    ui.horizontal_wrapped(|ui| {
        for choice in Lang::ALL {
            ui.radio_value(&mut wanted.language, choice, choice.name())
                .labelled_by(heading.id);
        }
    });
    if wanted != model.settings {
        actions.push(Action::Set(wanted));
    }
}

/// "1 h 05 min", "12 min", "40 s".
pub fn elapsed(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// "512 B", "3.4 KiB", "12.0 MiB", "1.2 GiB".
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3500), "3.4 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(elapsed(40), "40 s");
        assert_eq!(elapsed(12 * 60 + 5), "12 min");
        assert_eq!(elapsed(3600 + 5 * 60), "1 h 05 min");
    }
}
