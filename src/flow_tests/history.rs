use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::domain::directory::DirectoryUser;
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Action, CallerCheck, Helpdesk};
use crate::domain::policy::Violation;
use crate::domain::settings::{HelpdeskSettings, Settings};
use crate::domain::store::PasswordHistoryStore;

const OLD: &str = "Old-Harbor-2718";
const PASSWORDS: [&str; 4] = [
    "Blue-Harbor-7391",
    "Green-Quay-4410",
    "Amber-Tram-5528",
    "Slate-Ferry-6603",
];

/// A reset of `ann`'s password to `password` through a new verified flow (the clock moves on a
/// TOTP step first, so the authenticator's code is a new one).
async fn reset_to(f: &Fakes, totp: &[u8], password: &str) -> Result<(), FlowError> {
    f.clock.advance(Duration::from_secs(30));
    let flow = verified_flow(f, "ann", totp).await;
    Reset::new(&f.deps)
        .set_password(&flow, &secret(password), &f.client())
        .await
}

fn refused_as_reused(answer: Result<(), FlowError>, history: u32) {
    match answer {
        Err(FlowError::PasswordRejected(rules)) => {
            assert_eq!(rules, [Violation::Reused { history }]);
            assert_eq!(rules[0].rule(), "history");
        }
        other => panic!("expected a history refusal, got {other:?}"),
    }
}

async fn remembered(f: &Fakes, user: &DirectoryUser) -> usize {
    f.store
        .password_hashes(&user.guid, 100)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_reset_to_one_of_the_last_n_passwords_is_refused_and_older_ones_are_forgotten() {
    let f = Fakes::new().await;
    f.directory.set_history_length(2);
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;

    reset_to(&f, &totp, PASSWORDS[0]).await.unwrap();
    reset_to(&f, &totp, PASSWORDS[1]).await.unwrap();
    // The current password and the one before it.
    refused_as_reused(reset_to(&f, &totp, PASSWORDS[1]).await, 2);
    refused_as_reused(reset_to(&f, &totp, PASSWORDS[0]).await, 2);
    assert!(
        f.directory.has_password(&ann, PASSWORDS[1]),
        "nothing written"
    );
    assert_eq!(remembered(&f, &ann).await, 2);

    // One more, and the oldest of the three drops out of a history of two.
    reset_to(&f, &totp, PASSWORDS[2]).await.unwrap();
    assert_eq!(remembered(&f, &ann).await, 2);
    reset_to(&f, &totp, PASSWORDS[0]).await.unwrap();
    assert!(f.directory.has_password(&ann, PASSWORDS[0]));

    // The password the service never saw (set elsewhere) is not known.
    reset_to(&f, &totp, OLD).await.unwrap();
}

#[tokio::test]
async fn the_history_is_per_account_and_checked_without_a_reset() {
    let f = Fakes::new().await;
    f.directory.set_history_length(24);
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;
    let bob = f.directory.add_user("bob", OLD);

    reset_to(&f, &totp, PASSWORDS[0]).await.unwrap();
    let history = &f.deps.history;
    assert_eq!(
        history.check(&ann, &secret(PASSWORDS[0])).await.unwrap(),
        Some(Violation::Reused { history: 24 })
    );
    assert_eq!(
        history.check(&ann, &secret(PASSWORDS[1])).await.unwrap(),
        None
    );
    // Bob is not held to Ann's passwords.
    assert_eq!(
        history.check(&bob, &secret(PASSWORDS[0])).await.unwrap(),
        None
    );

    // What another flow (a change) remembers counts as well.
    history.remember(&bob, &secret(PASSWORDS[1])).await.unwrap();
    assert_eq!(
        history.check(&bob, &secret(PASSWORDS[1])).await.unwrap(),
        Some(Violation::Reused { history: 24 })
    );
    assert_eq!(remembered(&f, &ann).await, 1);
}

#[tokio::test]
async fn nothing_is_kept_where_the_directory_applies_history_or_the_policy_has_none() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;

    // The directory holds resets to its own history: it refuses, not the service.
    f.directory.set_history_length(24);
    f.directory.set_enforces_history(true);
    reset_to(&f, &totp, PASSWORDS[0]).await.unwrap();
    assert_eq!(remembered(&f, &ann).await, 0);
    reset_to(&f, &totp, PASSWORDS[0]).await.unwrap();

    // Kept here from now on.
    f.directory.set_enforces_history(false);
    reset_to(&f, &totp, PASSWORDS[1]).await.unwrap();
    assert_eq!(remembered(&f, &ann).await, 1);

    // A policy without history: what was kept goes, and nothing is refused.
    f.directory.set_history_length(0);
    reset_to(&f, &totp, PASSWORDS[1]).await.unwrap();
    assert_eq!(remembered(&f, &ann).await, 0);
}

#[tokio::test]
async fn the_helpdesks_temporary_password_is_remembered() {
    const GROUP: &str = "CN=Helpdesk,OU=Groups,DC=sspr,DC=test";
    let f = Fakes::with(Settings {
        helpdesk: HelpdeskSettings {
            group_dn: Some(GROUP.to_owned()),
            require_verification: true,
            session_idle: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(8 * 60 * 60),
            verification_lifetime: Duration::from_secs(10 * 60),
            temporary_password_length: 16,
            operator_max_sign_ins: 20,
            operator_max_actions: 1_000,
            operator_window: Duration::from_secs(60 * 60),
            verification_methods: vec![CallerCheck::Registered],
            membership_recheck: Duration::from_secs(60),
            ..HelpdeskSettings::default()
        },
        ..crate::domain::fakes::settings()
    })
    .await;
    f.directory.set_history_length(24);
    let op = f.directory.add_user("op", OLD);
    f.directory.add_to_group(&op, GROUP);
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;
    let helpdesk = Helpdesk::new(&f.deps);
    let client = f.client();
    let token = helpdesk
        .sign_in("op", &secret(OLD), None, &client)
        .await
        .unwrap();
    helpdesk
        .verify(
            &token,
            "ann",
            MethodKind::Totp,
            &f.totp_code(&totp),
            &client,
        )
        .await
        .unwrap();
    let temporary = helpdesk
        .act(
            &token,
            "ann",
            Action::Reset {
                deliver_by_email: false,
            },
            None,
            &client,
        )
        .await
        .unwrap()
        .expect("shown to the operator");
    assert_eq!(remembered(&f, &ann).await, 1);
    refused_as_reused(reset_to(&f, &totp, temporary.expose_secret()).await, 24);
}
