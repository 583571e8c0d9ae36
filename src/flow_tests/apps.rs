//! More than one authenticator app: each spends its own steps, and however many a user has,
//! they are one kind of method.

use secrecy::ExposeSecret;

use super::*;
use crate::domain::enrollment::{Enrollment, StepUpMethod};
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::store::RegistrationStore;

const OLD: &str = "Old-Harbor-2718";
const NEW: &str = "Blue-Harbor-7391";

/// The last reset code mailed.
fn mailed_code(f: &Fakes) -> String {
    f.outbox
        .queued()
        .into_iter()
        .rev()
        .find_map(|(q, _)| match q.mail.kind {
            MailKind::ResetCode { code } => Some(code.expose_secret().to_owned()),
            _ => None,
        })
        .expect("a reset code was queued")
}

#[tokio::test]
async fn two_apps_do_not_finish_a_flow_that_needs_two_methods_and_an_app_and_email_do() {
    let mut settings = crate::domain::fakes::settings();
    settings.reset.methods_required = 2;
    let f = Fakes::with(settings).await;
    let ann = f.directory.add_user("ann", OLD);
    let phone = f.register_totp(&ann).await;
    let tablet = f.register_totp(&ann).await;
    f.register_email(&ann, "ann@home.test").await;
    let reset = Reset::new(&f.deps);
    let client = f.client();

    let flow = reset.start("ann", &client).await.unwrap().flow;
    let first = reset
        .verify(&flow, MethodKind::Totp, &f.totp_code(&phone), &client)
        .await
        .unwrap();
    assert_eq!(first.remaining, 1);
    let second = reset
        .verify(&flow, MethodKind::Totp, &f.totp_code(&tablet), &client)
        .await
        .unwrap();
    assert_eq!(second.remaining, 1, "a second app is the same kind");
    let answer = reset.set_password(&flow, &secret(NEW), &client).await;
    assert!(matches!(answer, Err(FlowError::NotVerified)), "{answer:?}");
    assert!(f.directory.has_password(&ann, OLD));

    reset.send_email_code(&flow, &client).await.unwrap();
    let done = reset
        .verify(&flow, MethodKind::Email, &mailed_code(&f), &client)
        .await
        .unwrap();
    assert_eq!(done.remaining, 0);
    reset
        .set_password(&flow, &secret(NEW), &client)
        .await
        .unwrap();
    assert!(f.directory.has_password(&ann, NEW));
}

#[tokio::test]
async fn a_user_with_only_apps_is_not_registered_for_two_methods() {
    let mut settings = crate::domain::fakes::settings();
    settings.reset.methods_required = 2;
    let f = Fakes::with(settings).await;
    let bob = f.directory.add_user("bob", OLD);
    let phone = f.register_totp(&bob).await;
    f.register_totp(&bob).await;
    let reset = Reset::new(&f.deps);
    let client = f.client();

    // A decoy: no code of either app verifies it.
    let flow = reset.start("bob", &client).await.unwrap().flow;
    let answer = reset
        .verify(&flow, MethodKind::Totp, &f.totp_code(&phone), &client)
        .await;
    assert!(
        matches!(answer, Err(FlowError::InvalidCode { .. })),
        "{answer:?}"
    );
    let started = f
        .audit()
        .await
        .into_iter()
        .find(|e| e.event.as_str() == "flow_started")
        .expect("the start is audited");
    assert_eq!(started.reason.as_deref(), Some("not_registered"));
}

#[tokio::test]
async fn each_app_spends_its_own_steps() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let phone = f.register_totp(&ann).await;
    let tablet = f.register_totp(&ann).await;
    let reset = Reset::new(&f.deps);
    let client = f.client();

    let code = f.totp_code(&phone);
    let first = reset.start("ann", &client).await.unwrap().flow;
    reset
        .verify(&first, MethodKind::Totp, &code, &client)
        .await
        .unwrap();
    let second = reset.start("ann", &client).await.unwrap().flow;
    let replay = reset
        .verify(&second, MethodKind::Totp, &code, &client)
        .await;
    assert!(
        matches!(replay, Err(FlowError::InvalidCode { .. })),
        "{replay:?}"
    );
    // The same instant, the other app: its step is unspent.
    reset
        .verify(&second, MethodKind::Totp, &f.totp_code(&tablet), &client)
        .await
        .unwrap();
    let apps = f.store.methods(&ann.guid).await.unwrap();
    assert!(apps.iter().all(|a| a.last_used_at.is_some()), "{apps:?}");
}

#[tokio::test]
async fn an_app_begun_before_the_fifth_was_added_elsewhere_is_refused_at_confirmation() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(f.register_totp(&ann).await);
    }
    let enrollment = Enrollment::new(&f.deps);
    let client = f.client();
    let token = enrollment
        .sign_in("ann", &secret(OLD), &client)
        .await
        .unwrap();
    enrollment
        .step_up(&token, StepUpMethod::Totp, &f.totp_code(&apps[0]), &client)
        .await
        .unwrap();
    let begun = enrollment
        .begin_totp(&token, Some(" Spare "), &client)
        .await
        .unwrap();
    // Meanwhile, another session of the user adds the fifth.
    f.register_totp(&ann).await;
    let secret_bytes = totp_rs::Secret::Encoded(begun.secret).to_bytes().unwrap();
    let answer = enrollment
        .confirm_totp(&token, &f.totp_code(&secret_bytes), &client)
        .await;
    assert!(matches!(answer, Err(FlowError::LimitReached)), "{answer:?}");
    assert_eq!(f.store.methods(&ann.guid).await.unwrap().len(), 5);
    let again = enrollment.begin_totp(&token, None, &client).await;
    assert!(matches!(again, Err(FlowError::LimitReached)), "{again:?}");
    for bad in ["", "   ", "a\u{0}b", &"x".repeat(65)] {
        let answer = enrollment.begin_totp(&token, Some(bad), &client).await;
        assert!(
            matches!(answer, Err(FlowError::InvalidInput(_))),
            "{bad:?}: {answer:?}"
        );
    }
}
