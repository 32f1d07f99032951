//! The window's screens driven through their accessibility tree
//! (egui_kittest), fed by the model alone — no service, no renderer: every
//! screen in every language has its words, everything is reachable with
//! the keyboard, nothing is cut off at 200 % scaling. The same app against
//! a real service is driven end to end in tests/tests/desktop.rs.

#![allow(missing_docs, clippy::unwrap_used)]

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use porta_client::i18n::{Lang, Msg};
use porta_desktop::model::{Action, Event, Model, ServiceProblem};
use porta_desktop::settings::DesktopSettings;
use porta_proto::local::{self, status::Problem, status::State};

/// The model and what the person did to it.
struct Screen {
    model: Model,
    done: Vec<Action>,
}

fn harness(model: Model) -> Harness<'static, Screen> {
    Harness::builder()
        .with_size(egui::vec2(480.0, 640.0))
        .build_ui_state(
            |ui, screen: &mut Screen| {
                for action in porta_desktop::ui::show(ui, &screen.model, 1_000_100) {
                    screen.model.act(action.clone());
                    screen.done.push(action);
                }
            },
            Screen {
                model,
                done: Vec::new(),
            },
        )
}

fn connected() -> local::Status {
    local::Status {
        state: State::Connected.into(),
        device_name: "anna-home".into(),
        user: "anna".into(),
        gateway_endpoint: "203.0.113.1:51820".into(),
        connected_since: 1_000_000,
        last_handshake: 1_000_090,
        rx_bytes: 123_456,
        tx_bytes: 7_890,
        routes: vec!["10.20.0.0/16".into(), "10.20.5.0/24".into()],
        reach: vec![
            local::Reach {
                name: String::new(),
                ports: String::new(),
                cidr: "10.20.0.0/16".into(),
            },
            local::Reach {
                name: "GIS i cadastre".into(),
                ports: "tcp 443".into(),
                cidr: "10.20.5.0/24".into(),
            },
        ],
        organization: "Ajuntament de Calonge".into(),
        gateway_name: "embedded".into(),
        dns_servers: vec!["10.20.0.53".into()],
        problems: vec![Problem::ControllerUnreachable.into()],
        ..Default::default()
    }
}

/// Every screen, as a model in that state.
fn every_screen(lang: Lang) -> Vec<(&'static str, Model, Vec<Msg>)> {
    let settings = DesktopSettings {
        language: lang,
        ..Default::default()
    };
    let with = |events: Vec<Event>| {
        let mut model = Model::new(settings.clone(), None);
        for event in events {
            model.apply(event);
        }
        model
    };
    let status = |state: State| local::Status {
        state: state.into(),
        device_name: "anna-home".into(),
        ..Default::default()
    };
    let mut settings_open = with(vec![Event::Service(Ok(status(State::Disconnected)))]);
    settings_open.act(Action::ToggleSettings);
    vec![
        (
            "not running",
            with(vec![Event::Service(Err(ServiceProblem::NotRunning))]),
            vec![
                Msg::ServiceNotRunning,
                Msg::Retry,
                Msg::CopyCommand,
                Msg::CopyDiagnostics,
            ],
        ),
        (
            "not in group",
            with(vec![Event::Service(Err(ServiceProblem::NotAllowed {
                user: "anna".into(),
            }))]),
            vec![Msg::Retry],
        ),
        (
            "invitation",
            with(vec![Event::Service(Ok(status(State::NotEnrolled)))]),
            vec![Msg::PasteInvitation, Msg::InvitationHint, Msg::Continue],
        ),
        (
            "preview",
            with(vec![
                Event::Service(Ok(status(State::NotEnrolled))),
                Event::Previewed(Ok(local::PreviewResponse {
                    controller: "vpn.example:7443".into(),
                    fingerprint: "ab:cd".into(),
                    organization: "Ajuntament de Calonge".into(),
                    user: "anna".into(),
                    display_name: "Anna Puig".into(),
                    device_name: "anna-home".into(),
                    expires_at: 1_800_000_000,
                    ..Default::default()
                })),
            ]),
            vec![
                Msg::PreviewTitle,
                Msg::PreviewFor,
                Msg::PreviewWhat,
                Msg::Enroll,
                Msg::Back,
                Msg::PreviewDetails,
            ],
        ),
        (
            "disconnected",
            with(vec![Event::Service(Ok(status(State::Disconnected)))]),
            vec![
                Msg::StateDisconnected,
                Msg::Connect,
                Msg::Reach,
                Msg::CopyDiagnostics,
            ],
        ),
        (
            "connected",
            with(vec![Event::Service(Ok(connected()))]),
            vec![
                Msg::StateConnected,
                Msg::Disconnect,
                Msg::ConnectedSince,
                Msg::Traffic,
                Msg::LastHandshake,
                Msg::TownDns,
                Msg::ControllerUnreachable,
                Msg::ReachEveryone,
            ],
        ),
        (
            "revoked",
            with(vec![Event::Service(Ok(status(State::Revoked)))]),
            vec![Msg::Revoked, Msg::NewInvitation, Msg::CopyDiagnostics],
        ),
        (
            "paused",
            with(vec![Event::Service(Ok(status(State::Paused)))]),
            vec![Msg::Paused, Msg::Connect, Msg::CopyDiagnostics],
        ),
        (
            "service stopped",
            with(vec![Event::Service(Err(ServiceProblem::Stopped))]),
            vec![Msg::ServiceStopped, Msg::Retry, Msg::CopyDiagnostics],
        ),
        (
            "settings",
            settings_open,
            vec![
                Msg::ConnectAtLogin,
                Msg::StartMinimised,
                Msg::Language,
                Msg::Done,
            ],
        ),
    ]
}

#[test]
fn every_screen_shows_its_words_in_every_language() {
    for lang in Lang::ALL {
        for (name, model, words) in every_screen(lang) {
            let mut harness = harness(model);
            harness.run();
            for word in words {
                // Up to its first placeholder: the rest is the model's data.
                let text = word.text(lang).split('{').next().unwrap();
                assert!(
                    harness.query_all_by_label_contains(text).next().is_some(),
                    "{name} in {lang:?} lacks {word:?} ({text})"
                );
            }
        }
    }
}

#[test]
fn the_not_in_group_screen_names_the_command_for_it() {
    let model = every_screen(Lang::Ca).remove(1).1;
    let mut harness = harness(model);
    harness.run();
    assert!(
        harness
            .query_by_label_contains("sudo adduser anna porta")
            .is_some()
    );
}

#[test]
fn everything_is_reachable_with_the_keyboard() {
    let model = every_screen(Lang::En).remove(4).1;
    let mut harness = harness(model);
    harness.run();
    // Tab until the big button has the focus, then Enter.
    let mut focused = false;
    for _ in 0..10 {
        harness.key_press(egui::Key::Tab);
        harness.run();
        if harness.get_by_label("Connect").is_focused() {
            focused = true;
            break;
        }
    }
    assert!(focused, "Tab reaches Connect");
    harness.key_press(egui::Key::Enter);
    harness.run();
    assert_eq!(harness.state().done, vec![Action::Connect]);

    // The invitation field takes typing and Continue follows it.
    let mut pasting = self::harness(every_screen(Lang::En).remove(2).1);
    pasting.run();
    let field = pasting.get_by_role(egui::accesskit::Role::MultilineTextInput);
    field.focus();
    field.type_text("porta1_abc");
    pasting.run();
    assert_eq!(pasting.state().model.invitation, "porta1_abc");
}

#[test]
fn nothing_is_cut_off_at_200_percent() {
    for lang in Lang::ALL {
        for (name, model, _) in every_screen(lang) {
            // A 480×640-pixel window at 200 %: 240×320 points.
            let mut harness = Harness::builder()
                .with_size(egui::vec2(240.0, 320.0))
                .with_pixels_per_point(2.0)
                .build_ui(move |ui| {
                    porta_desktop::ui::show(ui, &model, 1_000_100);
                });
            harness.run();
            let mut checked = 0;
            for node in harness.root().children_recursive() {
                let node = node.accesskit_node();
                let text = node.label().or(node.value());
                let (Some(label), Some(bounds)) = (text, node.bounding_box()) else {
                    continue;
                };
                // AccessKit's bounds are in physical pixels: 480 wide.
                assert!(
                    bounds.x1 <= 480.0 + 1.0,
                    "{name} in {lang:?}: {label:?} ends at x={} of 480",
                    bounds.x1
                );
                checked += 1;
            }
            assert!(checked > 2, "{name}: only {checked} labelled widgets");
        }
    }
}

#[test]
fn what_a_computer_reaches_is_named_as_it_named_it_and_the_town_by_its_name() {
    let model = every_screen(Lang::Ca)
        .into_iter()
        .find(|(name, _, _)| *name == "connected")
        .unwrap()
        .1;
    let mut harness = harness(model);
    harness.run();
    for shown in [
        "• GIS i cadastre (tcp 443)",
        "• Els serveis comuns de l'ajuntament",
        "Ajuntament de Calonge",
    ] {
        assert!(
            harness.query_all_by_label_contains(shown).next().is_some(),
            "{shown}"
        );
    }
    assert!(
        harness
            .query_all_by_label_contains("10.20.5.0/24")
            .next()
            .is_none(),
        "prefixes are folded away for IT"
    );
}

#[test]
fn the_time_connected_counts_on_without_anyone_touching_the_window() {
    let screens = every_screen(Lang::En);
    let shown = |name: &str| {
        let model = screens
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap()
            .1
            .clone();
        let mut harness = harness(model);
        harness.step();
        harness.ctx.has_requested_repaint()
    };
    assert!(shown("connected"), "a connected window repaints by itself");
    assert!(!shown("disconnected"), "an idle one does not");
}
