//! The controller's operations in process: a real store on disk in a
//! temporary directory, the time passed in, no network and no processes —
//! fast checks of what the end-to-end tests cover only slowly.

#![allow(missing_docs, clippy::unwrap_used)]

use porta_controller::error::Error;
use porta_controller::init::{InitOptions, init};
use porta_controller::logs::Actor;
use porta_controller::state::Controller;
use porta_controller::store::Store;
use porta_controller::store::records::UserRecord;
use porta_proto::PublicKey;

/// Unix seconds the tests start at.
const T0: u64 = 1_790_000_000;
const DAY: u64 = 86_400;

async fn controller() -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut options = InitOptions::defaults(data.clone());
    options.endpoint = Some("192.0.2.1:51820".into());
    options.api_endpoint = Some("192.0.2.1:7443".into());
    options.no_ipv6 = true;
    let report = init(options, T0).await.unwrap();
    let store = Store::open(&data.join("store")).unwrap();
    let ctl = Controller::new(store, report.certificate_sha256.parse().unwrap()).unwrap();
    (dir, ctl)
}

fn admin() -> Actor {
    Actor::system("test")
}

/// A real device key (the public half of a fresh private key).
fn key() -> PublicKey {
    porta_tunnel::keys::PrivateKey::generate().public_key()
}

/// The one-time token inside an invitation.
fn secret_of(invitation: &str) -> String {
    porta_proto::Invitation::decode(invitation).unwrap().token
}

async fn user(ctl: &Controller, name: &str) {
    ctl.create_user(&admin(), UserRecord::new(name, T0))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_invitation_works_once_and_never_after_it_expires() {
    let (_dir, ctl) = controller().await;
    user(&ctl, "anna").await;
    let (_, late) = ctl
        .create_enrollment_token(&admin(), "anna", "anna-old", None, 3_600, T0)
        .await
        .unwrap();
    let expired = ctl
        .enroll(&secret_of(&late), key(), "laptop", "linux", "", T0 + 3_601)
        .await
        .unwrap_err();
    assert!(
        matches!(&expired, Error::FailedPrecondition(m) if m.contains("expired")),
        "{expired}"
    );
    let (_, token) = ctl
        .create_enrollment_token(&admin(), "anna", "anna-laptop", None, 3_600, T0)
        .await
        .unwrap();
    let (device, _) = ctl
        .enroll(&secret_of(&token), key(), "laptop", "linux", "", T0 + 60)
        .await
        .unwrap();
    assert_eq!(device.name, "anna-laptop");
    let again = ctl
        .enroll(&secret_of(&token), key(), "laptop", "linux", "", T0 + 61)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, Error::FailedPrecondition(m) if m.contains("already used")),
        "{again}"
    );
    // A mistyped token says nothing about which tokens exist.
    let guessed = ctl
        .enroll("0123456789abcdef.guess", key(), "laptop", "linux", "", T0)
        .await
        .unwrap_err();
    assert!(matches!(guessed, Error::Unauthenticated(_)), "{guessed}");
}

#[tokio::test]
async fn a_revoked_key_never_returns_and_its_address_waits_out_the_quarantine() {
    let (_dir, ctl) = controller().await;
    user(&ctl, "anna").await;
    let (_, first) = ctl
        .create_enrollment_token(&admin(), "anna", "pc-1", None, DAY, T0)
        .await
        .unwrap();
    let laptop_key = key();
    let (old, _) = ctl
        .enroll(&secret_of(&first), laptop_key, "laptop", "linux", "", T0)
        .await
        .unwrap();
    ctl.revoke_device(&admin(), "pc-1", T0 + 10).await.unwrap();

    // The same key cannot be enrolled again, even with a fresh invitation.
    let (_, second) = ctl
        .create_enrollment_token(&admin(), "anna", "pc-2", None, DAY, T0 + 20)
        .await
        .unwrap();
    let reused = ctl
        .enroll(
            &secret_of(&second),
            laptop_key,
            "laptop",
            "linux",
            "",
            T0 + 30,
        )
        .await
        .unwrap_err();
    assert!(matches!(reused, Error::AlreadyExists(_)), "{reused}");
    // The invitation was not spent by the refusal; a new key gets an
    // address other than the one still in quarantine.
    let (new, _) = ctl
        .enroll(&secret_of(&second), key(), "laptop", "linux", "", T0 + 40)
        .await
        .unwrap();
    assert_ne!(new.ipv4, old.ipv4);
}

#[tokio::test]
async fn lookalike_names_are_refused_in_the_creating_transaction() {
    let (_dir, ctl) = controller().await;
    user(&ctl, "alice").await;
    let lookalike = ctl
        .create_user(&admin(), UserRecord::new("aIice", T0))
        .await
        .unwrap_err();
    assert!(
        matches!(&lookalike, Error::AlreadyExists(m) if m.contains("looks like")),
        "{lookalike}"
    );
    ctl.create_enrollment_token(&admin(), "alice", "rn-pc", None, DAY, T0)
        .await
        .unwrap();
    let device = ctl
        .create_enrollment_token(&admin(), "alice", "m-pc", None, DAY, T0)
        .await
        .unwrap_err();
    assert!(matches!(device, Error::AlreadyExists(_)), "{device}");
}
