//! The app's state and rules, without any IO: what the person sees follows
//! from the service's status and the requests in flight; what the person
//! does becomes [`Effect`]s for the shell (requests to the service,
//! clipboard, notifications, saving settings). Tested without a window or
//! a service.

use crate::settings::DesktopSettings;
use porta_client::i18n::{Lang, Msg};
use porta_proto::local::{self, status::State};
use porta_proto::refusal::Refusal;

/// Why the service cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceProblem {
    /// Nothing listens on the socket.
    NotRunning,
    /// The service was running and stopped (restarted by an update, or
    /// stopped by IT); the app looks for it again until it is back.
    Stopped,
    /// This user is not in the `porta` group.
    NotAllowed {
        /// The user's name.
        user: String,
    },
    /// Anything else, in the service's or system's words.
    Other(String),
}

/// A request to the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// What an invitation will do.
    Preview(String),
    /// Enroll with an invitation.
    Enroll {
        /// The invitation as pasted.
        invitation: String,
        /// Replace an existing enrollment.
        replace: bool,
    },
    /// Connect.
    Up,
    /// Disconnect.
    Down,
    /// The help-desk report.
    Diagnostics,
    /// Look for the service again now.
    Reconnect,
}

/// A failed request, as the service answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The gRPC code (see local.proto for their meaning).
    pub code: tonic::Code,
    /// The service's message.
    pub message: String,
    /// The service refused because only an administrator of this computer
    /// may do it (local.proto: PERMISSION_DENIED marked so).
    pub needs_administrator: bool,
    /// The controller's refusal, when it named one (local.proto:
    /// `porta-refusal`).
    pub refusal: Option<Refusal>,
}

impl Failure {
    /// A failure with `code` and `message`, for no other reason.
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            needs_administrator: false,
            refusal: None,
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            needs_administrator: status
                .metadata()
                .contains_key(porta_client::daemon::NEEDS_ADMINISTRATOR),
            refusal: Refusal::of(&status),
        }
    }
}

/// What the shell reports back.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The service's status (or why it cannot be reached), at every change.
    Service(Result<local::Status, ServiceProblem>),
    /// The answer to [`Request::Preview`].
    Previewed(Result<local::PreviewResponse, Failure>),
    /// The answer to [`Request::Enroll`].
    Enrolled(Result<local::EnrollResponse, Failure>),
    /// The answer to [`Request::Up`] or [`Request::Down`].
    Switched(Result<local::Status, Failure>),
    /// The answer to [`Request::Diagnostics`].
    Diagnostics(Result<String, Failure>),
}

/// What the person did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The invitation field changed.
    EditInvitation(String),
    /// Go on with the pasted invitation.
    SubmitInvitation,
    /// Back from the preview.
    Back,
    /// Enroll (again, with a new key, when `replace`).
    Enroll {
        /// Replace the existing enrollment.
        replace: bool,
    },
    /// Connect.
    Connect,
    /// Disconnect.
    Disconnect,
    /// Copy the diagnostics.
    CopyDiagnostics,
    /// Copy the command the service problem's words name (for IT).
    CopyCommand,
    /// Open or close the settings.
    ToggleSettings,
    /// A revoked computer gets a new invitation.
    NewInvitation,
    /// Look for the service again.
    Retry,
    /// Change a setting.
    Set(DesktopSettings),
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a request to the service.
    Send(Request),
    /// Put text on the clipboard.
    Copy(String),
    /// Show a desktop notification.
    Notify(Msg),
    /// Save the settings (and the autostart entry).
    SaveSettings(DesktopSettings),
}

/// A message for the person, with its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The message.
    pub msg: Msg,
    /// Its `{placeholder}` values.
    pub values: Vec<(&'static str, String)>,
}

impl Notice {
    fn new(msg: Msg) -> Self {
        Self {
            msg,
            values: Vec::new(),
        }
    }

    fn with(msg: Msg, name: &'static str, value: impl Into<String>) -> Self {
        Self {
            msg,
            values: vec![(name, value.into())],
        }
    }

    /// The notice in `lang`.
    pub fn words(&self, lang: Lang) -> String {
        let values: Vec<(&str, &str)> = self.values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.msg.fill(lang, &values)
    }
}

/// The service as the app knows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Service {
    /// Not heard from yet.
    Unknown,
    /// Cannot be used.
    Problem(ServiceProblem),
    /// Its latest status.
    Ready(Box<local::Status>),
}

/// Which screen shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Waiting for the service's first answer.
    Starting,
    /// The service cannot be used.
    ServiceProblem,
    /// Paste the invitation.
    Invitation,
    /// What the invitation will do; Enroll.
    Preview,
    /// Enrolled: Connect/Disconnect and the status.
    Tunnel,
    /// Revoked by IT.
    Revoked,
    /// The person's account is paused.
    Paused,
    /// The app's settings.
    Settings,
}

/// The app's whole state.
#[derive(Clone, Debug)]
pub struct Model {
    /// The language shown.
    pub settings: DesktopSettings,
    /// The service.
    pub service: Service,
    /// The invitation being pasted.
    pub invitation: String,
    /// The preview of the submitted invitation.
    pub preview: Option<local::PreviewResponse>,
    /// The service asked before replacing an enrollment.
    pub confirm_replace: bool,
    /// A request runs (buttons wait).
    pub busy: bool,
    /// The last failure, in plain words.
    pub notice: Option<Notice>,
    /// Diagnostics were copied.
    pub copied: bool,
    /// The settings are open.
    pub settings_open: bool,
    /// A revoked computer is being enrolled again.
    pub new_invitation: bool,
}

impl Model {
    /// A model with these settings, and an invitation from a `porta:` link
    /// (submitted as soon as the service answers).
    pub fn new(settings: DesktopSettings, link: Option<String>) -> Self {
        Self {
            settings,
            service: Service::Unknown,
            invitation: link.unwrap_or_default(),
            preview: None,
            confirm_replace: false,
            busy: false,
            notice: None,
            copied: false,
            settings_open: false,
            new_invitation: false,
        }
    }

    /// The language shown.
    pub fn lang(&self) -> Lang {
        self.settings.language
    }

    /// The service's status, when it answers.
    pub fn status(&self) -> Option<&local::Status> {
        match &self.service {
            Service::Ready(status) => Some(status),
            _ => None,
        }
    }

    /// The tunnel's state, when the service answers.
    pub fn state(&self) -> Option<State> {
        self.status().map(|s| s.state())
    }

    /// The screen to show.
    pub fn screen(&self) -> Screen {
        if self.settings_open {
            return Screen::Settings;
        }
        match (&self.service, self.state()) {
            (Service::Unknown, _) => Screen::Starting,
            (Service::Problem(_), _) => Screen::ServiceProblem,
            _ if self.preview.is_some() => Screen::Preview,
            (_, Some(State::NotEnrolled)) => Screen::Invitation,
            (_, Some(State::Revoked)) if self.new_invitation => Screen::Invitation,
            (_, Some(State::Revoked)) => Screen::Revoked,
            (_, Some(State::Paused)) => Screen::Paused,
            _ => Screen::Tunnel,
        }
    }

    /// The command the service problem's words ask IT to run, if any.
    pub fn service_command(&self) -> Option<String> {
        match &self.service {
            Service::Problem(ServiceProblem::NotRunning) => {
                Some("sudo systemctl enable --now porta".into())
            }
            Service::Problem(ServiceProblem::NotAllowed { user }) => {
                Some(format!("sudo adduser {user} porta"))
            }
            _ => None,
        }
    }

    /// The service's problem in plain words.
    pub fn service_problem(&self) -> Option<Notice> {
        match &self.service {
            Service::Problem(ServiceProblem::NotRunning) => {
                Some(Notice::new(Msg::ServiceNotRunning))
            }
            Service::Problem(ServiceProblem::Stopped) => Some(Notice::new(Msg::ServiceStopped)),
            Service::Problem(ServiceProblem::NotAllowed { user }) => {
                Some(Notice::with(Msg::NotInGroup, "user", user.clone()))
            }
            Service::Problem(ServiceProblem::Other(detail)) => {
                Some(Notice::with(Msg::Failed, "detail", detail.clone()))
            }
            _ => None,
        }
    }

    /// What the person did.
    pub fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::EditInvitation(text) => {
                self.invitation = text;
                self.notice = None;
                vec![]
            }
            Action::SubmitInvitation => self.submit(),
            Action::Back => {
                self.preview = None;
                self.confirm_replace = false;
                self.notice = None;
                vec![]
            }
            Action::Enroll { replace } => self.request(Request::Enroll {
                invitation: self.invitation.clone(),
                replace,
            }),
            Action::Connect => self.request(Request::Up),
            Action::Disconnect => self.request(Request::Down),
            Action::CopyDiagnostics => {
                self.copied = false;
                vec![Effect::Send(Request::Diagnostics)]
            }
            Action::CopyCommand => match self.service_command() {
                Some(command) => {
                    self.copied = true;
                    vec![Effect::Copy(command)]
                }
                None => vec![],
            },
            Action::ToggleSettings => {
                self.settings_open = !self.settings_open;
                vec![]
            }
            Action::NewInvitation => {
                self.new_invitation = true;
                self.notice = None;
                vec![]
            }
            Action::Retry => vec![Effect::Send(Request::Reconnect)],
            Action::Set(settings) => {
                self.settings = settings.clone();
                vec![Effect::SaveSettings(settings)]
            }
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        if self.invitation.trim().is_empty() {
            return vec![];
        }
        self.request(Request::Preview(self.invitation.clone()))
    }

    fn request(&mut self, request: Request) -> Vec<Effect> {
        if self.busy {
            return vec![];
        }
        self.busy = true;
        self.notice = None;
        vec![Effect::Send(request)]
    }

    /// What the shell reported.
    pub fn apply(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Service(Ok(status)) => self.status_changed(status),
            Event::Service(Err(problem)) => {
                self.service = Service::Problem(problem);
                self.busy = false;
                vec![]
            }
            Event::Previewed(answer) => {
                self.busy = false;
                match answer {
                    Ok(preview) => self.preview = Some(preview),
                    Err(failure) => self.notice = Some(enroll_notice(&failure)),
                }
                vec![]
            }
            Event::Enrolled(answer) => {
                self.busy = false;
                match answer {
                    Ok(_) => {
                        self.preview = None;
                        self.confirm_replace = false;
                        self.invitation.clear();
                        self.new_invitation = false;
                    }
                    Err(failure) if failure.code == tonic::Code::AlreadyExists => {
                        self.confirm_replace = true;
                    }
                    Err(failure) => self.notice = Some(enroll_notice(&failure)),
                }
                vec![]
            }
            Event::Switched(answer) => {
                self.busy = false;
                match answer {
                    Ok(status) => return self.status_changed(status),
                    Err(failure) => self.notice = Some(failure_notice(&failure)),
                }
                vec![]
            }
            Event::Diagnostics(answer) => match answer {
                Ok(text) => {
                    self.copied = true;
                    vec![Effect::Copy(text)]
                }
                Err(failure) => {
                    self.notice = Some(failure_notice(&failure));
                    vec![]
                }
            },
        }
    }

    fn status_changed(&mut self, status: local::Status) -> Vec<Effect> {
        let before = self.state();
        let now = status.state();
        let first = matches!(self.service, Service::Unknown);
        self.service = Service::Ready(Box::new(status));
        let mut effects = Vec::new();
        if first && !self.invitation.trim().is_empty() {
            // Opened from a `porta:` link: show what it will do.
            effects.extend(self.submit());
        }
        if first || before == Some(now) {
            return effects;
        }
        // Disconnected is only ever asked for (here, or by another front
        // end such as `porta down`); a tunnel that loses its gateway goes
        // back to Connecting.
        match (before, now) {
            (_, State::Connected) => effects.push(Effect::Notify(Msg::NotifyConnected)),
            (_, State::Revoked) => effects.push(Effect::Notify(Msg::Revoked)),
            (_, State::Paused) => effects.push(Effect::Notify(Msg::Paused)),
            (Some(State::Connected), State::Connecting) => {
                effects.push(Effect::Notify(Msg::NotifyDropped));
            }
            _ => {}
        }
        effects
    }
}

/// An enrollment's failure in plain words.
fn enroll_notice(failure: &Failure) -> Notice {
    if failure.needs_administrator {
        return Notice::new(Msg::NeedsAdministrator);
    }
    if let Some(refusal) = failure.refusal {
        return Notice::new(match refusal {
            Refusal::InvitationUsed => Msg::InvitationUsed,
            Refusal::InvitationExpired => Msg::InvitationExpired,
            Refusal::InvitationUnknown => Msg::InvitationUnknown,
            Refusal::UserDisabled | Refusal::UserSuspended => Msg::InvitationPaused,
            Refusal::DeviceNameTaken => Msg::DeviceNameTaken,
            Refusal::KeyInUse => Msg::KeyInUse,
            Refusal::DeviceRevoked | Refusal::CredentialUnknown => Msg::Revoked,
        });
    }
    match failure.code {
        tonic::Code::InvalidArgument => Notice::new(Msg::InvitationDamaged),
        tonic::Code::PermissionDenied => Notice::new(Msg::InvitationRefused),
        tonic::Code::Unavailable => Notice::new(Msg::EnrollUnreachable),
        _ => failure_notice(failure),
    }
}

/// Any other failure in plain words.
fn failure_notice(failure: &Failure) -> Notice {
    if let Some(refusal) = failure.refusal {
        return Notice::new(if refusal.is_pause() {
            Msg::Paused
        } else {
            Msg::Revoked
        });
    }
    match failure.code {
        tonic::Code::Unauthenticated => {
            Notice::with(Msg::NotInGroup, "user", porta_client::local::user_name())
        }
        // The local API's own timeout (local::connect): the service is stuck.
        tonic::Code::Cancelled if failure.message.contains("Timeout expired") => {
            Notice::new(Msg::ServiceSilent)
        }
        _ => Notice::with(Msg::Failed, "detail", failure.message.clone()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(state: State) -> local::Status {
        local::Status {
            state: state.into(),
            device_name: "anna-home".into(),
            ..Default::default()
        }
    }

    fn model() -> Model {
        Model::new(DesktopSettings::default(), None)
    }

    #[test]
    fn the_screen_follows_the_service() {
        let mut model = model();
        assert_eq!(model.screen(), Screen::Starting);
        model.apply(Event::Service(Err(ServiceProblem::NotAllowed {
            user: "bob".into(),
        })));
        assert_eq!(model.screen(), Screen::ServiceProblem);
        assert!(
            model
                .service_problem()
                .unwrap()
                .words(Lang::En)
                .contains("sudo adduser bob porta")
        );
        model.apply(Event::Service(Ok(status(State::NotEnrolled))));
        assert_eq!(model.screen(), Screen::Invitation);
        model.apply(Event::Service(Ok(status(State::Disconnected))));
        assert_eq!(model.screen(), Screen::Tunnel);
        model.apply(Event::Service(Ok(status(State::Revoked))));
        assert_eq!(model.screen(), Screen::Revoked);
        model.act(Action::NewInvitation);
        assert_eq!(model.screen(), Screen::Invitation);
    }

    #[test]
    fn an_invitation_is_previewed_then_enrolled_and_a_replacement_confirmed() {
        let mut model = model();
        model.apply(Event::Service(Ok(status(State::NotEnrolled))));
        assert!(
            model.act(Action::SubmitInvitation).is_empty(),
            "nothing pasted yet"
        );
        model.act(Action::EditInvitation("porta1_abc".into()));
        assert_eq!(
            model.act(Action::SubmitInvitation),
            vec![Effect::Send(Request::Preview("porta1_abc".into()))]
        );
        assert!(
            model.act(Action::SubmitInvitation).is_empty(),
            "one request at a time"
        );
        model.apply(Event::Previewed(Ok(local::PreviewResponse {
            controller: "vpn.example:7443".into(),
            ..Default::default()
        })));
        assert_eq!(model.screen(), Screen::Preview);
        let enroll = model.act(Action::Enroll { replace: false });
        assert_eq!(
            enroll,
            vec![Effect::Send(Request::Enroll {
                invitation: "porta1_abc".into(),
                replace: false
            })]
        );
        model.apply(Event::Enrolled(Err(Failure::new(
            tonic::Code::AlreadyExists,
            "enrolled as old",
        ))));
        assert!(model.confirm_replace);
        model.act(Action::Enroll { replace: true });
        model.apply(Event::Enrolled(Ok(local::EnrollResponse::default())));
        assert!(model.preview.is_none() && model.invitation.is_empty());
    }

    #[test]
    fn failures_are_plain_words() {
        let mut model = model();
        model.apply(Event::Service(Ok(status(State::NotEnrolled))));
        for (code, msg) in [
            (tonic::Code::InvalidArgument, Msg::InvitationDamaged),
            (tonic::Code::PermissionDenied, Msg::InvitationRefused),
            (tonic::Code::Unavailable, Msg::EnrollUnreachable),
        ] {
            model.busy = true;
            model.apply(Event::Previewed(Err(Failure::new(code, ""))));
            assert_eq!(model.notice.as_ref().map(|n| n.msg), Some(msg));
            assert!(!model.busy);
        }
        // Refused for want of an administrator, and a stuck service: their
        // own words, not the controller's refusal or a raw English text.
        let mut status = tonic::Status::permission_denied("moving … needs an administrator");
        status.metadata_mut().insert(
            porta_client::daemon::NEEDS_ADMINISTRATOR,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        model.busy = true;
        model.apply(Event::Enrolled(Err(Failure::from(status))));
        assert_eq!(
            model.notice.as_ref().map(|n| n.msg),
            Some(Msg::NeedsAdministrator)
        );
        model.apply(Event::Switched(Err(Failure::from(
            tonic::Status::cancelled("Timeout expired"),
        ))));
        assert_eq!(
            model.notice.as_ref().map(|n| n.msg),
            Some(Msg::ServiceSilent)
        );
    }

    #[test]
    fn every_refusal_the_controller_names_has_its_own_words() {
        let mut model = model();
        model.apply(Event::Service(Ok(status(State::NotEnrolled))));
        let mut said = std::collections::HashSet::new();
        for refusal in [
            Refusal::InvitationUsed,
            Refusal::InvitationExpired,
            Refusal::InvitationUnknown,
            Refusal::UserDisabled,
            Refusal::DeviceNameTaken,
            Refusal::KeyInUse,
        ] {
            let mut status = tonic::Status::permission_denied("the controller's English words");
            refusal.mark(&mut status);
            model.busy = true;
            model.apply(Event::Enrolled(Err(Failure::from(status))));
            let msg = model.notice.as_ref().map(|n| n.msg).expect("a notice");
            assert_ne!(msg, Msg::Failed, "{refusal}: no raw text in a sentence");
            assert!(said.insert(msg), "{refusal} shares {msg:?}");
        }
        // A suspended person's invitation reads like a disabled one's.
        let mut status = tonic::Status::permission_denied("suspended");
        Refusal::UserSuspended.mark(&mut status);
        model.apply(Event::Enrolled(Err(Failure::from(status))));
        assert_eq!(
            model.notice.as_ref().map(|n| n.msg),
            Some(Msg::InvitationPaused)
        );
    }

    #[test]
    fn an_error_that_names_a_command_copies_it_for_it() {
        let mut model = model();
        model.apply(Event::Service(Err(ServiceProblem::NotAllowed {
            user: "anna".into(),
        })));
        assert_eq!(
            model.act(Action::CopyCommand),
            vec![Effect::Copy("sudo adduser anna porta".into())]
        );
        assert!(model.copied);
        model.apply(Event::Service(Err(ServiceProblem::NotRunning)));
        assert_eq!(
            model.act(Action::CopyCommand),
            vec![Effect::Copy("sudo systemctl enable --now porta".into())]
        );
        model.apply(Event::Service(Err(ServiceProblem::Stopped)));
        assert_eq!(model.act(Action::CopyCommand), vec![]);
    }

    #[test]
    fn a_paused_account_is_told_apart_from_a_revoked_computer() {
        let mut model = model();
        model.apply(Event::Service(Ok(status(State::Connected))));
        assert_eq!(
            model.apply(Event::Service(Ok(status(State::Paused)))),
            vec![Effect::Notify(Msg::Paused)]
        );
        assert_eq!(model.screen(), Screen::Paused);
        // Connect asks again; still paused is said as such.
        assert_eq!(model.act(Action::Connect), vec![Effect::Send(Request::Up)]);
        let mut refused = tonic::Status::failed_precondition("Your account is paused");
        Refusal::UserDisabled.mark(&mut refused);
        model.apply(Event::Switched(Err(Failure::from(refused))));
        assert_eq!(model.notice.as_ref().map(|n| n.msg), Some(Msg::Paused));
        model.apply(Event::Service(Ok(status(State::Revoked))));
        assert_eq!(model.screen(), Screen::Revoked);
    }

    #[test]
    fn notifications_on_connect_unexpected_loss_and_revocation_only() {
        let mut model = model();
        model.apply(Event::Service(Ok(status(State::Disconnected))));
        model.act(Action::Connect);
        assert!(
            model
                .apply(Event::Service(Ok(status(State::Connecting))))
                .is_empty()
        );
        assert_eq!(
            model.apply(Event::Service(Ok(status(State::Connected)))),
            vec![Effect::Notify(Msg::NotifyConnected)]
        );
        assert_eq!(
            model.apply(Event::Service(Ok(status(State::Connecting)))),
            vec![Effect::Notify(Msg::NotifyDropped)]
        );
        model.apply(Event::Service(Ok(status(State::Connected))));
        assert!(
            model
                .apply(Event::Service(Ok(status(State::Disconnected))))
                .is_empty(),
            "asked for, here or by `porta down`"
        );
        assert_eq!(
            model.apply(Event::Service(Ok(status(State::Revoked)))),
            vec![Effect::Notify(Msg::Revoked)]
        );
    }

    #[test]
    fn a_link_is_previewed_as_soon_as_the_service_answers() {
        let mut model = Model::new(DesktopSettings::default(), Some("porta:porta1_abc".into()));
        assert_eq!(
            model.apply(Event::Service(Ok(status(State::NotEnrolled)))),
            vec![Effect::Send(Request::Preview("porta:porta1_abc".into()))]
        );
    }
}
