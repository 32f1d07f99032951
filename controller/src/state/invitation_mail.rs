//! Invitations by e-mail: sending one (after the token is durable, so a
//! failure never loses it), recording each delivery on the token and in
//! the admin log, and re-issuing an open token for a resend.
use super::{Controller, invite_json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::mail::message::{InvitationMail, compose};
use crate::secret;
use crate::store::records::{EmailRecord, InvitePurpose, InviteRecord, UserRecord};
use porta_proto::{Invitation, pb};

impl Controller {
    /// Checks, before a token is made, that its invitation can be
    /// e-mailed to `user`: a mail server is configured and the user has an
    /// address.
    pub fn check_can_email(&self, user: &str) -> Result<()> {
        if self.mailer.is_none() {
            return Err(Error::FailedPrecondition(
                "this controller sends no e-mail: its config file has no [smtp] section".into(),
            ));
        }
        let record = self.user(user)?;
        if record.email.trim().is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "user {user:?} has no e-mail address; add one (or let the directory fill it in)"
            )));
        }
        Ok(())
    }

    /// The language `person` is written to in: theirs, or the town's
    /// default (the mail settings'), or English.
    fn language_of(&self, person: &UserRecord) -> String {
        if !person.language.is_empty() {
            return person.language.clone();
        }
        self.mailer
            .as_ref()
            .map_or_else(|| "en".into(), |m| m.smtp().default_language.clone())
    }

    /// The ready-to-send message for `invitation` (the text of `token`),
    /// in its person's language, greeting them by name.
    pub fn ready_to_send(&self, token: &InviteRecord, invitation: &str) -> Result<String> {
        let to = self.addressee(token)?;
        Ok(crate::mail::message::ready_to_send(&to.mail(
            &self.settings.organization,
            invitation,
            token.expires_at,
        )))
    }

    /// Whom a device invitation goes to: its person, in their language,
    /// and the device it enrolls.
    fn addressee(&self, token: &InviteRecord) -> Result<Addressee> {
        let InvitePurpose::Device {
            user, device_name, ..
        } = &token.purpose
        else {
            return Err(Error::invalid("only device invitations are sent to people"));
        };
        let person: UserRecord = self.user(user)?;
        Ok(Addressee {
            language: self.language_of(&person),
            person,
            device: device_name.clone(),
        })
    }

    /// E-mails `invitation` (the text of `token`) to its user, and records
    /// the outcome on the token and in the admin log. A failed delivery is
    /// an `Ok` with `sent = false`: the invitation stays valid.
    pub async fn email_invitation(
        &self,
        actor: &Actor,
        token: &InviteRecord,
        invitation: &str,
        now: u64,
    ) -> Result<pb::EmailDelivery> {
        let to = self.addressee(token)?;
        self.check_can_email(&to.person.name)?;
        let mailer = self.mailer.clone().expect("checked above");
        let mail = to.mail(&self.settings.organization, invitation, token.expires_at);
        let smtp = mailer.smtp();
        let outcome = match compose(&mail, &smtp.from, smtp.reply_to.as_ref()) {
            Ok(message) => mailer.send(message).await,
            Err(error) => Err(error),
        };
        let delivery = pb::EmailDelivery {
            to: mail.email.to_owned(),
            sent: outcome.is_ok(),
            error: outcome
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
        };
        match &outcome {
            Ok(()) => {
                tracing::info!(device = %to.device, language = %to.language, "invitation e-mailed")
            }
            Err(error) => {
                tracing::warn!(device = %to.device, %error, "invitation not e-mailed; it stays valid")
            }
        }
        let record = EmailRecord {
            to: delivery.to.clone(),
            sent_at: delivery.sent.then_some(now),
            error: delivery.error.clone(),
        };
        self.write(|t| {
            let Some(mut current) = t.invite(&token.id)? else {
                return Err(Error::not_found("enrollment token", &token.id).into());
            };
            current.email = Some(record.clone());
            t.put_invite(&current)?;
            let action = if record.sent_at.is_some() {
                "token.email.sent"
            } else {
                "token.email.failed"
            };
            log_admin(
                t,
                actor,
                action,
                &to.device,
                None,
                Some(serde_json::json!({ "to": record.to, "error": record.error })),
                now,
            )
        })
        .await?;
        Ok(delivery)
    }

    /// The open device token called `id_or_device` (a token id or the
    /// device name it reserves).
    pub fn open_enrollment_token(&self, id_or_device: &str, now: u64) -> Result<InviteRecord> {
        self.list_enrollment_tokens(now)?
            .into_iter()
            .find(|t| {
                t.id == id_or_device
                    || matches!(&t.purpose, InvitePurpose::Device { device_name, .. } if device_name == id_or_device)
            })
            .ok_or_else(|| Error::not_found("open enrollment token", id_or_device))
    }

    /// The invitation text for a resend of the open token `id_or_device`:
    /// `presented` if given and it is this token's (checked in constant
    /// time), else a new secret for the same token — the earlier
    /// invitation stops working (the controller keeps only hashes, so it
    /// cannot send the old one again).
    pub async fn reissue_enrollment_token(
        &self,
        actor: &Actor,
        id_or_device: &str,
        presented: Option<&str>,
        now: u64,
    ) -> Result<(InviteRecord, String)> {
        let token = self.open_enrollment_token(id_or_device, now)?;
        if let Some(text) = presented {
            let invitation =
                Invitation::decode(text).map_err(|e| Error::invalid(format!("invitation: {e}")))?;
            let matches = secret::parse(&invitation.token)
                .is_some_and(|s| s.id == token.id && s.matches(&token.hash));
            if !matches {
                return Err(Error::invalid(format!(
                    "the invitation given is not the one of token {}",
                    token.id
                )));
            }
            return Ok((token, text.to_owned()));
        }
        let issued = secret::issue_for(token.id.clone());
        let reissued = self
            .write(|t| {
                let Some(mut current) = t.invite(&token.id)? else {
                    return Err(Error::not_found("enrollment token", &token.id).into());
                };
                if current.redeemed_at.is_some() {
                    return Err(Error::FailedPrecondition(
                        "the invitation was redeemed meanwhile".into(),
                    )
                    .into());
                }
                let before = invite_json(&current);
                current.hash = issued.hash;
                t.put_invite(&current)?;
                let target = match &current.purpose {
                    InvitePurpose::Device { device_name, .. } => device_name.clone(),
                    InvitePurpose::Login { .. } => current.id.clone(),
                };
                log_admin(
                    t,
                    actor,
                    "token.reissue",
                    &target,
                    before,
                    invite_json(&current),
                    now,
                )?;
                Ok(current)
            })
            .await?;
        Ok((
            reissued,
            self.invitation(&issued.text, pb::InvitationKind::Device),
        ))
    }
}

/// A device invitation's person, their language and the device.
struct Addressee {
    person: UserRecord,
    language: String,
    device: String,
}

impl Addressee {
    /// The invitation message to them.
    fn mail<'a>(
        &'a self,
        organization: &'a str,
        invitation: &'a str,
        expires_at: u64,
    ) -> InvitationMail<'a> {
        InvitationMail {
            name: &self.person.display_name,
            email: self.person.email.trim(),
            language: &self.language,
            organization,
            device: &self.device,
            invitation,
            expires_at,
        }
    }
}
