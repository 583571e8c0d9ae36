use std::time::Duration;

use super::*;
use crate::domain::enrollment::Enrollment;
use crate::domain::error::FlowError;
use crate::domain::store::{AuditKind, Outcome, RegistrationStore};

const PASSWORD: &str = "Old-Harbor-2718";

#[tokio::test]
async fn a_sign_in_fails_alike_for_a_wrong_password_an_unknown_or_a_disabled_user() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", PASSWORD);
    let bob = f.directory.add_user("bob", PASSWORD);
    f.directory.disable(&bob);
    let enrollment = Enrollment::new(&f.deps);
    let client = f.client();

    for (login, password) in [
        ("ann", "Wrong-Harbor-1"),
        ("nobody-here", PASSWORD),
        ("bob", PASSWORD),
    ] {
        let answer = enrollment.sign_in(login, &secret(password), &client).await;
        assert!(
            matches!(answer, Err(FlowError::InvalidCredentials)),
            "{login}: {answer:?}"
        );
    }
    let reasons: Vec<_> = f
        .audit()
        .await
        .into_iter()
        .map(|e| (e.event, e.outcome, e.reason.unwrap_or_default()))
        .collect();
    assert_eq!(
        reasons,
        [
            (AuditKind::SignIn, Outcome::Failure, "wrong".into()),
            (AuditKind::SignIn, Outcome::Failure, "unknown_user".into()),
            (AuditKind::SignIn, Outcome::Failure, "disabled".into()),
        ]
    );
    enrollment
        .sign_in("Ann", &secret(PASSWORD), &client)
        .await
        .unwrap();
    let signed_in = f.audit().await.pop().unwrap();
    assert_eq!(
        (signed_in.outcome.as_str(), signed_in.object_guid),
        ("success", Some(ann.guid))
    );
    assert!(
        f.directory.writes().is_empty(),
        "a sign-in changes nothing in AD"
    );
}

#[tokio::test]
async fn the_code_that_confirms_an_app_is_spent_and_cannot_verify_a_reset() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", PASSWORD);
    let enrollment = Enrollment::new(&f.deps);
    let client = f.client();
    let token = enrollment
        .sign_in("ann", &secret(PASSWORD), &client)
        .await
        .unwrap();

    let provisioning = enrollment.begin_totp(&token, None, &client).await.unwrap();
    let app = totp_rs::Secret::Encoded(provisioning.secret)
        .to_bytes()
        .unwrap();
    let code = f.totp_code(&app);
    enrollment
        .confirm_totp(&token, &code, &client)
        .await
        .unwrap();
    let methods = f.store.methods(&ann.guid).await.unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(
        methods[0].last_step,
        Some(f.deps.now().as_millis() / 30_000)
    );

    // Neither a reconfirmation nor a reset takes the code again.
    let again = enrollment.reconfirm_totp(&token, &code, &client).await;
    assert!(
        matches!(again, Err(FlowError::InvalidCode { .. })),
        "{again:?}"
    );
    let reset = Reset::new(&f.deps);
    let flow = reset.start("ann", &client).await.unwrap().flow;
    let replay = reset.verify(&flow, MethodKind::Totp, &code, &client).await;
    assert!(
        matches!(replay, Err(FlowError::InvalidCode { .. })),
        "{replay:?}"
    );

    // The app's next code is good for the reset.
    f.clock.advance(Duration::from_secs(30));
    reset
        .verify(&flow, MethodKind::Totp, &f.totp_code(&app), &client)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reload_of_the_app_page_shows_the_same_secret_until_it_is_confirmed() {
    let f = Fakes::new().await;
    f.directory.add_user("ann", PASSWORD);
    let enrollment = Enrollment::new(&f.deps);
    let client = f.client();
    let token = enrollment
        .sign_in("ann", &secret(PASSWORD), &client)
        .await
        .unwrap();
    let none = enrollment.pending_totp(&token, &client).await.unwrap();
    assert!(none.is_none(), "nothing begun, nothing to show");

    let begun = enrollment.begin_totp(&token, None, &client).await.unwrap();
    for _ in 0..2 {
        let shown = enrollment.pending_totp(&token, &client).await.unwrap();
        assert_eq!(shown.map(|p| p.secret), Some(begun.secret.clone()));
    }
    let app = totp_rs::Secret::Encoded(begun.secret).to_bytes().unwrap();
    enrollment
        .confirm_totp(&token, &f.totp_code(&app), &client)
        .await
        .unwrap();
    let after = enrollment.pending_totp(&token, &client).await.unwrap();
    assert!(after.is_none(), "a confirmed secret is no longer pending");
}
