//! Invitations by e-mail through a real SMTP server on loopback (aiosmtpd,
//! STARTTLS with a test CA, AUTH), parsed back by Python's MIME parser:
//! one message per person in their language, accents intact, the
//! invitation redeemable by `porta enroll`; a refused recipient reported
//! per row with the invitation still valid, and a re-run that retries only
//! that one.

use porta_tests::smtp::{SMTP_PASSWORD, Sink, invitation_in, redeem};
use porta_tests::{TestController, binary};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// portactl with `profile`: exit code, stdout, stderr.
fn portactl(profile: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("portactl"))
        .arg("--config")
        .arg(profile)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A controller following `smtp`, and portactl logged in to it.
async fn controller_with(smtp: &str) -> (TestController, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(&config, smtp).unwrap();
    let mut controller =
        TestController::start_in(dir, &["--organization", "Ajuntament de Calonge"])
            .await
            .unwrap();
    controller.stop().await.unwrap();
    controller
        .serve_with(&["--config", config.to_str().unwrap()])
        .await
        .unwrap();
    let profile = controller.dir.path().join("p.toml");
    let (code, _, stderr) = portactl(&profile, &["login", &controller.admin_invitation]);
    assert_eq!(code, 0, "{stderr}");
    (controller, profile)
}

#[tokio::test]
async fn invitations_arrive_by_mail_in_each_language_and_failures_are_retried_alone() {
    let work = tempfile::tempdir().unwrap();
    let sink = Sink::start(&work.path().join("sink")).await;
    let (controller, profile) = controller_with(&sink.smtp_toml(SMTP_PASSWORD)).await;

    let csv = work.path().join("staff.csv");
    std::fs::write(
        &csv,
        "user,device,display_name,email,language\n\
         nuria,nuria-laptop,Núria Puig i Solà,nuria@ajuntament.test,ca\n\
         jordi,jordi-laptop,Jordi Martí,jordi@ajuntament.test,es\n\
         anna,anna-laptop,Anna Rossi,anna@ajuntament.test,it\n\
         joan,joan-laptop,Joan Vidal,joan@ajuntament.test,\n\
         marta,marta-laptop,Marta Ferrer,marta@ajuntament.test,ca\n",
    )
    .unwrap();
    let out = work.path().join("invitations.csv");
    std::fs::write(sink.dir.join("refuse"), "marta@ajuntament.test\n").unwrap();
    let enroll = [
        "enroll",
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--email",
    ];
    let (code, stdout, stderr) = portactl(&profile, &enroll);
    assert_eq!(code, 1, "one row failed: {stdout}{stderr}");
    assert!(
        stdout.contains("5 enrolled") && stdout.contains("4 e-mailed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("marta") && stderr.contains("550") && stderr.contains("stays valid"),
        "{stderr}"
    );
    assert!(!stderr.contains(SMTP_PASSWORD) && !controller.log().contains(SMTP_PASSWORD));

    // One message per person, in their language, names intact.
    let messages = sink.messages();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    let of = |address: &str| -> Value {
        messages
            .iter()
            .find(|m| m["envelope_to"][0] == address)
            .unwrap_or_else(|| panic!("no message to {address}"))
            .clone()
    };
    let nuria = of("nuria@ajuntament.test");
    assert_eq!(nuria["to"], "Núria Puig i Solà <nuria@ajuntament.test>");
    assert!(
        nuria["subject"]
            .as_str()
            .unwrap()
            .starts_with("La teva invitació a Porta")
    );
    assert!(
        nuria["subject"]
            .as_str()
            .unwrap()
            .contains("Ajuntament de Calonge")
    );
    assert!(
        nuria["text"]
            .as_str()
            .unwrap()
            .contains("Hola Núria Puig i Solà")
    );
    assert_eq!(
        nuria["from"],
        "Informàtica de l'Ajuntament <informatica@ajuntament.test>"
    );
    assert_eq!(nuria["reply_to"], "suport@ajuntament.test");
    assert!(
        of("jordi@ajuntament.test")["subject"]
            .as_str()
            .unwrap()
            .starts_with("Tu invitación")
    );
    assert!(
        of("anna@ajuntament.test")["subject"]
            .as_str()
            .unwrap()
            .starts_with("Il tuo invito")
    );
    // No language given: the town's default.
    assert!(
        of("joan@ajuntament.test")["subject"]
            .as_str()
            .unwrap()
            .starts_with("Your invitation")
    );

    // The mailed invitation is the one in --out, and it enrolls a laptop.
    let rows = std::fs::read_to_string(&out).unwrap();
    let nuria_invitation = invitation_in(&nuria);
    assert!(rows.contains(&nuria_invitation));
    let enrolled = redeem(&nuria_invitation);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    // marta's failed delivery is on her token, which stays open.
    let (_, tokens, _) = portactl(&profile, &["--json", "tokens", "list"]);
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    let marta = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["device"] == "marta-laptop")
        .expect("marta's token is open");
    assert!(
        marta["email_error"].as_str().unwrap().contains("550"),
        "{marta}"
    );

    // The mailbox is fixed; the same command again mails marta only.
    std::fs::remove_file(sink.dir.join("refuse")).unwrap();
    let (code, stdout, stderr) = portactl(&profile, &enroll);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 enrolled") && stdout.contains("1 e-mailed"),
        "{stdout}"
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 5, "no duplicates");
    let marta_mail = &messages[4];
    assert_eq!(marta_mail["envelope_to"][0], "marta@ajuntament.test");
    let marta_invitation = invitation_in(marta_mail);
    assert!(
        rows.contains(&marta_invitation),
        "the same invitation as in --out"
    );

    // `tokens resend` sends a new invitation; the old one stops working.
    let jordi_old = invitation_in(&of("jordi@ajuntament.test"));
    let (code, stdout, stderr) = portactl(&profile, &["tokens", "resend", "jordi-laptop"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 6);
    let jordi_new = invitation_in(&messages[5]);
    assert_ne!(jordi_new, jordi_old);
    assert!(
        !redeem(&jordi_old).status.success(),
        "the old invitation is dead"
    );
    let enrolled = redeem(&jordi_new);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    // Every delivery is in the admin log.
    let (_, log, _) = portactl(
        &profile,
        &["logs", "export", "--kind", "admin", "--format", "jsonl"],
    );
    assert_eq!(log.matches("token.email.sent").count(), 6, "{log}");
    assert_eq!(log.matches("token.email.failed").count(), 1, "{log}");
}

#[tokio::test]
async fn a_mail_server_that_refuses_the_login_leaves_the_invitation_valid() {
    let work = tempfile::tempdir().unwrap();
    let sink = Sink::start(&work.path().join("sink")).await;
    let (_controller, profile) = controller_with(&sink.smtp_toml("wrong-password")).await;
    let (code, _, _) = portactl(
        &profile,
        &[
            "users",
            "add",
            "pere",
            "--email",
            "pere@ajuntament.test",
            "--language",
            "ca",
        ],
    );
    assert_eq!(code, 0);
    let (code, stdout, stderr) = portactl(
        &profile,
        &["enroll", "--user", "pere", "--device", "pere-pc", "--email"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("not e-mailed") && stderr.contains("535"),
        "{stderr}"
    );
    assert!(sink.messages().is_empty());
    // The invitation was printed and works.
    let invitation = stdout
        .split_whitespace()
        .find(|w| w.starts_with("porta1"))
        .unwrap_or_else(|| panic!("no invitation in {stdout}"));
    assert!(redeem(invitation).status.success());
    // A user without an address: refused before any token is made.
    portactl(&profile, &["users", "add", "quim"]);
    let (code, _, stderr) = portactl(
        &profile,
        &["enroll", "--user", "quim", "--device", "quim-pc", "--email"],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("no e-mail address"), "{stderr}");
    let (_, tokens, _) = portactl(&profile, &["--json", "tokens", "list"]);
    assert!(!tokens.contains("quim-pc"), "{tokens}");
}
