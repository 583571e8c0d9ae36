use std::time::Duration;

use super::*;
use crate::domain::enrollment::{Enrollment, RECOVERY_CODES, StepUpMethod};
use crate::domain::error::FlowError;
use crate::domain::fakes::settings;

const PASSWORD: &str = "Old-Harbor-2718";

/// A user with an authenticator app, signed in to registration and stepped up with it; returns
/// the session token and the app's secret.
async fn stepped_up(f: &Fakes, login: &str) -> (String, Vec<u8>) {
    let user = f.directory.add_user(login, PASSWORD);
    let app = f.register_totp(&user).await;
    let enrollment = Enrollment::new(&f.deps);
    let client = f.client();
    let token = enrollment
        .sign_in(login, &secret(PASSWORD), &client)
        .await
        .unwrap();
    let code = f.totp_code(&app);
    enrollment
        .step_up(&token, StepUpMethod::Totp, &code, &client)
        .await
        .unwrap();
    // The step-up spent this step's code; the next one is the app's next.
    f.clock.advance(Duration::from_secs(30));
    (token, app)
}

#[tokio::test]
async fn two_recovery_codes_are_one_kind_and_a_code_and_an_app_are_two() {
    let mut two = settings();
    two.reset.methods_required = 2;
    let f = Fakes::with(two).await;
    let (token, app) = stepped_up(&f, "ann").await;
    let client = f.client();
    let set = Enrollment::new(&f.deps)
        .new_recovery_codes(&token, &client)
        .await
        .unwrap();
    assert_eq!(set.codes.len(), RECOVERY_CODES);

    let reset = Reset::new(&f.deps);
    let started = reset.start("ann", &client).await.unwrap();
    assert!(started.methods.contains(&MethodKind::RecoveryCode));
    let flow = started.flow;
    for code in &set.codes[..2] {
        let verified = reset
            .verify(&flow, MethodKind::RecoveryCode, code, &client)
            .await
            .unwrap();
        assert_eq!(verified.remaining, 1, "two codes never make two methods");
    }
    let verified = reset
        .verify(&flow, MethodKind::Totp, &f.totp_code(&app), &client)
        .await
        .unwrap();
    assert_eq!(verified.remaining, 0, "a code and an app do");
}

#[tokio::test]
async fn a_code_works_once_and_a_new_set_voids_the_old() {
    let f = Fakes::new().await;
    let (token, _) = stepped_up(&f, "ann").await;
    let client = f.client();
    let enrollment = Enrollment::new(&f.deps);
    let old = enrollment
        .new_recovery_codes(&token, &client)
        .await
        .unwrap();
    let status = enrollment.status(&token, &client).await.unwrap();
    assert_eq!(status.recovery_codes_left, 10);
    assert!(status.step_up_methods.contains(&StepUpMethod::RecoveryCode));

    let reset = Reset::new(&f.deps);
    let typed = old.codes[0].to_uppercase().replace('-', " ");
    let flow = reset.start("ann", &client).await.unwrap().flow;
    reset
        .verify(&flow, MethodKind::RecoveryCode, &typed, &client)
        .await
        .unwrap();
    let again = reset.start("ann", &client).await.unwrap().flow;
    let spent = reset
        .verify(&again, MethodKind::RecoveryCode, &old.codes[0], &client)
        .await;
    assert!(
        matches!(spent, Err(FlowError::InvalidCode { .. })),
        "{spent:?}"
    );
    let status = enrollment.status(&token, &client).await.unwrap();
    assert_eq!(status.recovery_codes_left, 9);

    let new = enrollment
        .new_recovery_codes(&token, &client)
        .await
        .unwrap();
    let voided = reset
        .verify(&again, MethodKind::RecoveryCode, &old.codes[1], &client)
        .await;
    assert!(
        matches!(voided, Err(FlowError::InvalidCode { .. })),
        "{voided:?}"
    );
    reset
        .verify(&again, MethodKind::RecoveryCode, &new.codes[1], &client)
        .await
        .unwrap();
}

#[tokio::test]
async fn codes_are_a_backup_and_a_decoy_takes_none() {
    let f = Fakes::new().await;
    f.directory.add_user("cid", PASSWORD);
    let client = f.client();
    let enrollment = Enrollment::new(&f.deps);
    let token = enrollment
        .sign_in("cid", &secret(PASSWORD), &client)
        .await
        .unwrap();
    let alone = enrollment.new_recovery_codes(&token, &client).await;
    assert!(matches!(alone, Err(FlowError::MethodRequired)), "{alone:?}");

    let (token, _) = stepped_up(&f, "ann").await;
    let set = enrollment
        .new_recovery_codes(&token, &client)
        .await
        .unwrap();
    let reset = Reset::new(&f.deps);
    let decoy = reset.start("nobody-here", &client).await.unwrap().flow;
    let refused = reset
        .verify(&decoy, MethodKind::RecoveryCode, &set.codes[0], &client)
        .await;
    assert!(
        matches!(refused, Err(FlowError::InvalidCode { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn turned_off_codes_are_neither_offered_nor_taken() {
    let f = Fakes::new().await;
    let (token, _) = stepped_up(&f, "ann").await;
    let client = f.client();
    let set = Enrollment::new(&f.deps)
        .new_recovery_codes(&token, &client)
        .await
        .unwrap();
    let mut off = f.deps.clone();
    off.settings.registration.recovery_codes = false;
    let reset = Reset::new(&off);
    let started = reset.start("ann", &client).await.unwrap();
    assert!(!started.methods.contains(&MethodKind::RecoveryCode));
    let refused = reset
        .verify(
            &started.flow,
            MethodKind::RecoveryCode,
            &set.codes[0],
            &client,
        )
        .await;
    assert!(
        matches!(refused, Err(FlowError::InvalidCode { .. })),
        "{refused:?}"
    );
    let made = Enrollment::new(&off)
        .new_recovery_codes(&token, &client)
        .await;
    assert!(matches!(made, Err(FlowError::Forbidden(_))), "{made:?}");
}
