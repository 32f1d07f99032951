//! The invitation message (sans-IO): one per person, in their language,
//! as plain text and HTML.

use super::MailError;
use lettre::message::{Mailbox, MultiPart, header::ContentType};

/// What goes into one invitation message.
pub struct InvitationMail<'a> {
    /// The person's name ("" if unknown: the greeting goes without it).
    pub name: &'a str,
    /// Their address.
    pub email: &'a str,
    /// "ca", "es", "it" or "en".
    pub language: &'a str,
    /// The town hall ("" if not set at init).
    pub organization: &'a str,
    /// The device it enrolls.
    pub device: &'a str,
    /// The invitation string.
    pub invitation: &'a str,
    /// Unix seconds it expires.
    pub expires_at: u64,
}

/// One language's wording. `{org}`, `{device}` and `{until}` are filled
/// in.
struct Wording {
    subject: &'static str,
    hello: &'static str,
    purpose: &'static str,
    once: &'static str,
    steps_title: &'static str,
    steps: [&'static str; 3],
    by_hand: &'static str,
    ignore: &'static str,
    /// The one message an admin pastes into a chat: `{link}` and
    /// `{invitation}` are filled in too.
    chat: &'static str,
}

const CA: Wording = Wording {
    subject: "La teva invitació a Porta, la VPN de {org}",
    hello: "Hola",
    purpose: "Amb Porta pots treballar des de casa amb els sistemes de {org} (expedients, fitxers, SIG, escriptoris remots) de manera segura. Aquesta invitació connecta l'ordinador «{device}».",
    once: "La invitació funciona una sola vegada i fins al {until}.",
    steps_title: "Passos",
    steps: [
        "Instal·la l'aplicació Porta (el teu servei d'informàtica t'indica com).",
        "Obre l'enllaç de sota: l'aplicació s'obre amb la invitació ja posada. Si no s'obre, enganxa-hi el text de la invitació.",
        "Prem «Connecta». A partir d'aleshores, Porta et connecta sol.",
    ],
    by_hand: "O bé, en un terminal: porta enroll INVITACIÓ",
    ignore: "Si no esperaves aquest missatge, no facis res i avisa el servei d'informàtica.",
    chat: "per connectar l'ordinador «{device}» a {org}, obre aquest enllaç amb l'aplicació Porta: {link} (o enganxa'l a l'aplicació, o executa: porta enroll {invitation}). Funciona una sola vegada, fins al {until}.",
};

const ES: Wording = Wording {
    subject: "Tu invitación a Porta, la VPN de {org}",
    hello: "Hola",
    purpose: "Con Porta puedes trabajar desde casa con los sistemas de {org} (expedientes, archivos, SIG, escritorios remotos) de forma segura. Esta invitación conecta el ordenador «{device}».",
    once: "La invitación funciona una sola vez y hasta el {until}.",
    steps_title: "Pasos",
    steps: [
        "Instala la aplicación Porta (tu servicio de informática te indica cómo).",
        "Abre el enlace de abajo: la aplicación se abre con la invitación ya puesta. Si no se abre, pega en ella el texto de la invitación.",
        "Pulsa «Conectar». A partir de entonces, Porta te conecta solo.",
    ],
    by_hand: "O bien, en un terminal: porta enroll INVITACIÓN",
    ignore: "Si no esperabas este mensaje, no hagas nada y avisa al servicio de informática.",
    chat: "para conectar el ordenador «{device}» a {org}, abre este enlace con la aplicación Porta: {link} (o pégalo en la aplicación, o ejecuta: porta enroll {invitation}). Funciona una sola vez, hasta el {until}.",
};

const IT: Wording = Wording {
    subject: "Il tuo invito a Porta, la VPN di {org}",
    hello: "Ciao",
    purpose: "Con Porta puoi lavorare da casa con i sistemi di {org} (pratiche, file, GIS, desktop remoti) in modo sicuro. Questo invito collega il computer «{device}».",
    once: "L'invito funziona una sola volta e fino al {until}.",
    steps_title: "Passi",
    steps: [
        "Installa l'applicazione Porta (il tuo servizio informatico ti indica come).",
        "Apri il link qui sotto: l'applicazione si apre con l'invito già inserito. Se non si apre, incolla il testo dell'invito.",
        "Premi «Connetti». Da quel momento Porta ti collega da solo.",
    ],
    by_hand: "Oppure, in un terminale: porta enroll INVITO",
    ignore: "Se non aspettavi questo messaggio, non fare nulla e avvisa il servizio informatico.",
    chat: "per collegare il computer «{device}» a {org}, apri questo link con l'applicazione Porta: {link} (oppure incollalo nell'applicazione, o esegui: porta enroll {invitation}). Funziona una sola volta, fino al {until}.",
};

const EN: Wording = Wording {
    subject: "Your invitation to Porta, the VPN of {org}",
    hello: "Hello",
    purpose: "With Porta you can work from home with {org}'s systems (case files, file shares, GIS, remote desktops) safely. This invitation connects the computer \"{device}\".",
    once: "The invitation works once, until {until}.",
    steps_title: "Steps",
    steps: [
        "Install the Porta app (your IT unit tells you how).",
        "Open the link below: the app opens with the invitation filled in. If it does not open, paste the invitation text into it.",
        "Press \"Connect\". From then on, Porta connects you by itself.",
    ],
    by_hand: "Or, in a terminal: porta enroll INVITATION",
    ignore: "If you did not expect this message, do nothing and tell your IT unit.",
    chat: "to connect the computer \"{device}\" to {org}, open this link with the Porta app: {link} (or paste it into the app, or run: porta enroll {invitation}). It works once, until {until}.",
};

fn wording(language: &str) -> &'static Wording {
    match language {
        "ca" => &CA,
        "es" => &ES,
        "it" => &IT,
        _ => &EN,
    }
}

/// The expiry as people read it, in UTC: "2026-12-07 10:00 UTC".
fn until(expires_at: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_at);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!(
        "{} UTC",
        text.replace('T', " ")
            .trim_end_matches('Z')
            .get(..16)
            .unwrap_or(&text)
    )
}

/// The town hall's name, or a word for it in the mail's language.
fn organization<'a>(mail: &InvitationMail<'a>) -> &'a str {
    if mail.organization.is_empty() {
        match mail.language {
            "ca" => "l'Ajuntament",
            "es" => "el Ayuntamiento",
            "it" => "il Comune",
            _ => "the town hall",
        }
    } else {
        mail.organization
    }
}

/// The one message an admin pastes into a mail or chat instead of
/// e-mailing: the same words as the e-mail's, in one line
/// ("Hola Núria Puig: per connectar l'ordinador …").
pub fn ready_to_send(mail: &InvitationMail<'_>) -> String {
    let w = wording(mail.language);
    let link = format!(
        "{}:{}",
        porta_proto::invitation::LINK_SCHEME,
        mail.invitation
    );
    let hello = if mail.name.is_empty() {
        w.hello.to_owned()
    } else {
        format!("{} {}", w.hello, mail.name)
    };
    let body = w
        .chat
        .replace("{org}", organization(mail))
        .replace("{device}", mail.device)
        .replace("{until}", &until(mail.expires_at))
        .replace("{link}", &link)
        .replace("{invitation}", mail.invitation);
    format!("{hello}: {body}")
}

/// The text parts, filled in: (subject, plain text, HTML).
pub fn render(mail: &InvitationMail<'_>) -> (String, String, String) {
    let w = wording(mail.language);
    let org = organization(mail);
    let fill = |text: &str| {
        text.replace("{org}", org)
            .replace("{device}", mail.device)
            .replace("{until}", &until(mail.expires_at))
    };
    let link = format!(
        "{}:{}",
        porta_proto::invitation::LINK_SCHEME,
        mail.invitation
    );
    let hello = if mail.name.is_empty() {
        format!("{},", w.hello)
    } else {
        format!("{} {},", w.hello, mail.name)
    };
    let subject = fill(w.subject);
    let mut text = format!(
        "{hello}\n\n{}\n{}\n\n{}:\n",
        fill(w.purpose),
        fill(w.once),
        w.steps_title
    );
    for (n, step) in w.steps.iter().enumerate() {
        text.push_str(&format!("{}. {step}\n", n + 1));
    }
    text.push_str(&format!(
        "\n{link}\n\n{}\n{}\n\n{}\n",
        w.by_hand, mail.invitation, w.ignore
    ));
    let e = escape;
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n<body>\n<p>{hello}</p>\n<p>{purpose}</p>\n<p><strong>{once}</strong></p>\n<h3>{steps_title}</h3>\n<ol>\n",
        lang = e(mail.language),
        subject = e(&subject),
        hello = e(&hello),
        purpose = e(&fill(w.purpose)),
        once = e(&fill(w.once)),
        steps_title = e(w.steps_title),
    );
    for step in w.steps {
        html.push_str(&format!("<li>{}</li>\n", e(step)));
    }
    html.push_str(&format!(
        "</ol>\n<p><a href=\"{link}\">{link_text}</a></p>\n<p>{by_hand}</p>\n<pre>{invitation}</pre>\n<p><small>{ignore}</small></p>\n</body></html>\n",
        link = e(&link),
        link_text = e(&link),
        by_hand = e(w.by_hand),
        invitation = e(mail.invitation),
        ignore = e(w.ignore),
    ));
    (subject, text, html)
}

/// The message, ready to send.
pub fn compose(
    mail: &InvitationMail<'_>,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
) -> Result<lettre::Message, MailError> {
    let address = mail
        .email
        .parse()
        .map_err(|_| MailError::Address(mail.email.to_owned()))?;
    let to = Mailbox::new(
        (!mail.name.is_empty()).then(|| mail.name.to_owned()),
        address,
    );
    let (subject, text, html) = render(mail);
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject);
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Text safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(language: &str) -> InvitationMail<'static> {
        InvitationMail {
            name: "Núria Puig i Solà",
            email: "nuria@ajuntament.cat",
            language: match language {
                "ca" => "ca",
                "es" => "es",
                "it" => "it",
                _ => "en",
            },
            organization: "Ajuntament de Calonge",
            device: "nuria-laptop",
            invitation: "porta1_example",
            expires_at: 1_796_000_000,
        }
    }

    #[test]
    fn every_language_carries_the_link_the_text_and_the_expiry() {
        for language in super::super::LANGUAGES {
            let (subject, text, html) = render(&mail(language));
            assert!(subject.contains("Ajuntament de Calonge"), "{language}");
            for body in [&text, &html] {
                assert!(body.contains("porta:porta1_example"), "{language}");
                assert!(body.contains("2026-11-30 "), "{language}: {body}");
                assert!(body.contains("Núria Puig i Solà"), "{language}");
            }
            assert!(
                text.contains("\nporta1_example\n"),
                "{language}: the text by itself"
            );
        }
        assert!(render(&mail("ca")).0.starts_with("La teva invitació"));
        assert!(render(&mail("it")).1.contains("Ciao"));
    }

    #[test]
    fn names_in_headers_are_encoded_and_html_is_escaped() {
        let from: Mailbox = "Informàtica <it@ajuntament.cat>".parse().expect("from");
        let mut m = mail("ca");
        m.device = "<script>";
        let message = compose(&m, &from, None).expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("ascii");
        assert!(raw.contains("=?utf-8?"), "RFC 2047 words: {raw}");
        let (_, _, html) = render(&m);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(
            compose(
                &InvitationMail {
                    email: "nope",
                    ..mail("en")
                },
                &from,
                None
            )
            .is_err()
        );
    }
}
