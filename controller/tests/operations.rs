//! The controller's operations in process: a real store on disk in a
//! temporary directory, the time passed in, no network and no processes —
//! fast checks of what the end-to-end tests cover only slowly.

#![allow(missing_docs, clippy::unwrap_used)]

use porta_controller::error::Error;
use porta_controller::init::{InitOptions, init};
use porta_controller::logs::Actor;
use porta_controller::state::{Controller, DeviceEnrollment};
use porta_controller::store::Store;
use porta_controller::store::records::{
    Destination, GroupRecord, PortRange, Protocol, Role, UserRecord,
};
use porta_gateway::peer::{PeerChange, Update};
use porta_proto::PublicKey;
use porta_proto::refusal::Refusal;

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
    let ctl = Controller::new(store, report.certificate_sha256.parse().unwrap(), T0).unwrap();
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
/// A device's enrollment request with `token` and `key`, named `hostname`,
/// without an attempt id.
fn laptop<'a>(token: &'a str, public_key: PublicKey, hostname: &'a str) -> DeviceEnrollment<'a> {
    DeviceEnrollment {
        token,
        public_key,
        hostname,
        os: "linux",
        attempt: None,
    }
}

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
        .enroll(&laptop(&secret_of(&late), key(), "laptop"), "", T0 + 3_601)
        .await
        .unwrap_err();
    assert!(
        matches!(&expired, Error::Refused { kind: Refusal::InvitationExpired, message } if message.contains("expired")),
        "{expired}"
    );
    let (_, token) = ctl
        .create_enrollment_token(&admin(), "anna", "anna-laptop", None, 3_600, T0)
        .await
        .unwrap();
    let (device, _) = ctl
        .enroll(&laptop(&secret_of(&token), key(), "laptop"), "", T0 + 60)
        .await
        .unwrap();
    assert_eq!(device.name, "anna-laptop");
    let again = ctl
        .enroll(&laptop(&secret_of(&token), key(), "laptop"), "", T0 + 61)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, Error::Refused { kind: Refusal::InvitationUsed, message } if message.contains("already used")),
        "{again}"
    );
    // A mistyped token says nothing about which tokens exist.
    let guessed = ctl
        .enroll(&laptop("0123456789abcdef.guess", key(), "laptop"), "", T0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            guessed,
            Error::Refused {
                kind: Refusal::InvitationUnknown,
                ..
            }
        ),
        "{guessed}"
    );
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
        .enroll(&laptop(&secret_of(&first), laptop_key, "laptop"), "", T0)
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
            &laptop(&secret_of(&second), laptop_key, "laptop"),
            "",
            T0 + 30,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            reused,
            Error::Refused {
                kind: Refusal::KeyInUse,
                ..
            }
        ),
        "{reused}"
    );
    // The invitation was not spent by the refusal; a new key gets an
    // address other than the one still in quarantine.
    let (new, _) = ctl
        .enroll(&laptop(&secret_of(&second), key(), "laptop"), "", T0 + 40)
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

/// Logs in with a login invitation; the credential's secret.
async fn log_in(ctl: &Controller, invitation: &str, now: u64) -> String {
    ctl.login(&secret_of(invitation), "test", "", now)
        .await
        .unwrap()
        .1
}

#[tokio::test]
async fn each_credential_speaks_for_its_role_until_revoked_and_a_device_until_its_user_is_disabled()
{
    let (_dir, ctl) = controller().await;
    let (_, pending) = ctl
        .create_api_credential(&admin(), "audit-2026", Role::Auditor, DAY, T0)
        .await
        .unwrap();
    let (_, gateway_invitation) = ctl
        .create_gateway(&admin(), "annex", "192.0.2.9:51820", DAY, T0)
        .await
        .unwrap();
    let auditor = log_in(&ctl, &pending, T0 + 1).await;
    let gateway = log_in(&ctl, &gateway_invitation, T0 + 1).await;
    user(&ctl, "anna").await;
    let (_, token) = ctl
        .create_enrollment_token(&admin(), "anna", "anna-pc", None, DAY, T0)
        .await
        .unwrap();
    let (_, device) = ctl
        .enroll(&laptop(&secret_of(&token), key(), "pc"), "", T0 + 2)
        .await
        .unwrap();
    let role = |secret: &str| ctl.authenticate(secret).map(|caller| caller.role);
    assert_eq!(role(&auditor).unwrap(), Role::Auditor);
    assert_eq!(role(&gateway).unwrap(), Role::Gateway);
    assert_eq!(role(&device).unwrap(), Role::Device);
    // A mistyped or made-up secret, and a login token used as a credential.
    for wrong in [
        "nonsense".to_owned(),
        format!("{}x", auditor),
        secret_of(&pending),
    ] {
        assert!(
            matches!(role(&wrong), Err(e) if e.refused_secret().is_some()),
            "{wrong}"
        );
    }

    ctl.set_user_disabled(&admin(), "anna", true, T0 + 3)
        .await
        .unwrap();
    assert!(matches!(
        role(&device),
        Err(Error::Refused { kind: Refusal::UserDisabled, message }) if message.contains("disabled")
    ));
    ctl.set_user_disabled(&admin(), "anna", false, T0 + 4)
        .await
        .unwrap();
    assert_eq!(role(&device).unwrap(), Role::Device, "enabled again");
    ctl.revoke_device(&admin(), "anna-pc", T0 + 5)
        .await
        .unwrap();
    assert!(
        matches!(
            role(&device),
            Err(Error::Refused {
                kind: Refusal::DeviceRevoked,
                ..
            })
        ),
        "a revoked device's credential says it was revoked"
    );

    ctl.revoke_api_credential(&admin(), "audit-2026", T0 + 6)
        .await
        .unwrap();
    assert!(matches!(role(&auditor), Err(e) if e.refused_secret().is_some()));
    ctl.remove_gateway(&admin(), "annex", T0 + 7).await.unwrap();
    assert!(matches!(role(&gateway), Err(e) if e.refused_secret().is_some()));
}

/// What `gateway` holds after the store's latest change, as the journal
/// task would compute it, starting from `after`.
fn journal_step(ctl: &Controller, gateway: &str, after: u64) -> Vec<Update> {
    ctl.fanout()
        .advance(ctl.revision(), ctl.gateway_peers().unwrap());
    ctl.fanout().updates(gateway, after)
}

fn end_of(updates: &[Update]) -> u64 {
    match updates.last() {
        Some(Update::End(revision)) => *revision,
        other => panic!("updates end with a revision: {other:?}"),
    }
}

#[tokio::test]
async fn each_gateway_gets_only_the_changes_to_its_own_peers() {
    let (_dir, ctl) = controller().await;
    let town = ctl.settings().gateway_name.clone();
    let (_, annex_invitation) = ctl
        .create_gateway(&admin(), "annex", "192.0.2.9:51820", DAY, T0)
        .await
        .unwrap();
    let annex_secret = log_in(&ctl, &annex_invitation, T0).await;
    let annex = ctl.authenticate(&annex_secret).unwrap();
    ctl.register_gateway(&annex, key(), T0).await.unwrap();
    user(&ctl, "anna").await;
    user(&ctl, "pau").await;
    let first = journal_step(&ctl, &town, 0);
    assert!(matches!(&first[0], Update::Snapshot(peers) if peers.is_empty()));
    let town_at = end_of(&first);
    let annex_at = end_of(&journal_step(&ctl, "annex", 0));

    for (user, device, gateway) in [("anna", "anna-pc", None), ("pau", "pau-pc", Some("annex"))] {
        let (_, token) = ctl
            .create_enrollment_token(&admin(), user, device, gateway, DAY, T0)
            .await
            .unwrap();
        ctl.enroll(&laptop(&secret_of(&token), key(), "pc"), "", T0 + 1)
            .await
            .unwrap();
    }
    let anna_id = ctl.find_device("anna-pc").unwrap().id;
    let town_updates = journal_step(&ctl, &town, town_at);
    assert!(
        matches!(&town_updates[..], [Update::Change(PeerChange::Upsert(p)), Update::End(_)] if p.device_id == anna_id),
        "{town_updates:?}"
    );
    let annex_updates = ctl.fanout().updates("annex", annex_at);
    assert!(
        matches!(&annex_updates[..], [Update::Change(PeerChange::Upsert(p)), Update::End(_)] if p.device_id != anna_id),
        "{annex_updates:?}"
    );
    let town_at = end_of(&town_updates);
    let annex_at = end_of(&annex_updates);

    // A policy change reaches anna's peer in place; the annex has nothing
    // to do but acknowledge.
    let mut gis = GroupRecord::new("gis", T0);
    gis.destinations.push(Destination {
        cidr: "10.1.40.0/24".parse().unwrap(),
        protocol: Protocol::Tcp,
        ports: vec![PortRange {
            first: 443,
            last: 443,
        }],
    });
    ctl.create_group(&admin(), gis).await.unwrap();
    ctl.set_membership(&admin(), "gis", &["anna".into()], true, T0 + 2)
        .await
        .unwrap();
    let town_updates = journal_step(&ctl, &town, town_at);
    assert!(
        matches!(&town_updates[..], [Update::Change(PeerChange::Upsert(p)), Update::End(_)]
            if p.destinations.iter().any(|d| d.cidr.to_string() == "10.1.40.0/24")),
        "{town_updates:?}"
    );
    assert!(matches!(
        &ctl.fanout().updates("annex", annex_at)[..],
        [Update::End(_)]
    ));
    let town_at = end_of(&town_updates);

    // Disabling anna removes her peer; revoking pau's device removes his
    // from the annex only.
    ctl.set_user_disabled(&admin(), "anna", true, T0 + 3)
        .await
        .unwrap();
    ctl.revoke_device(&admin(), "pau-pc", T0 + 4).await.unwrap();
    let town_updates = journal_step(&ctl, &town, town_at);
    assert!(
        matches!(&town_updates[..], [Update::Change(PeerChange::Removed { device_id, .. }), Update::End(_)] if *device_id == anna_id),
        "{town_updates:?}"
    );
    let annex_updates = ctl.fanout().updates("annex", annex_at);
    assert!(
        matches!(
            &annex_updates[..],
            [
                ..,
                Update::Change(PeerChange::Removed { .. }),
                Update::End(_)
            ]
        ),
        "{annex_updates:?}"
    );
}

#[tokio::test]
async fn a_spent_invitation_answers_again_only_the_same_key_and_attempt_while_it_would_be_valid() {
    let (_dir, ctl) = controller().await;
    user(&ctl, "anna").await;
    let (_, token) = ctl
        .create_enrollment_token(&admin(), "anna", "anna-pc", None, 3_600, T0)
        .await
        .unwrap();
    let token = secret_of(&token);
    let laptop_key = key();
    let attempt = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let asking = |public_key, attempt| DeviceEnrollment {
        attempt,
        ..laptop(&token, public_key, "pc")
    };
    let (first, first_credential) = ctl
        .enroll(&asking(laptop_key, Some(attempt)), "", T0 + 10)
        .await
        .unwrap();
    // The answer was lost; the same device asks again.
    let (again, credential) = ctl
        .enroll(&asking(laptop_key, Some(attempt)), "", T0 + 20)
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.ipv4),
        (first.id.as_str(), first.ipv4)
    );
    assert_ne!(credential, first_credential, "a new credential");
    assert_eq!(ctl.list_devices(None, false).unwrap().len(), 1);
    // Not another attempt, not another key, not without an attempt.
    let already_used = |e: &Error| {
        matches!(
            e,
            Error::Refused {
                kind: Refusal::InvitationUsed,
                ..
            }
        )
    };
    for (public_key, attempt) in [
        (laptop_key, Some("ffffffffffffffffffffffffffffffff")),
        (key(), Some(attempt)),
        (laptop_key, None),
    ] {
        let refused = ctl
            .enroll(&asking(public_key, attempt), "", T0 + 30)
            .await
            .unwrap_err();
        assert!(already_used(&refused), "{refused}");
    }
    // Not once the invitation would have expired, nor for a revoked device.
    let late = ctl
        .enroll(&asking(laptop_key, Some(attempt)), "", T0 + 3_600)
        .await
        .unwrap_err();
    assert!(already_used(&late), "{late}");
    ctl.revoke_device(&admin(), "anna-pc", T0 + 40)
        .await
        .unwrap();
    let revoked = ctl
        .enroll(&asking(laptop_key, Some(attempt)), "", T0 + 50)
        .await
        .unwrap_err();
    assert!(already_used(&revoked), "{revoked}");
}
