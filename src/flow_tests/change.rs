use super::*;
use crate::domain::change::PasswordChange;
use crate::domain::directory::DirectoryError;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::policy::Violation;
use crate::domain::store::{AuditKind, Outcome};

const OLD: &str = "Old-Harbor-2718";
const NEW: &str = "New-Lantern-3141";

#[tokio::test]
async fn a_change_fails_alike_for_a_wrong_password_an_unknown_or_a_disabled_user() {
    let f = Fakes::new().await;
    f.directory.add_user("ann", OLD);
    let bob = f.directory.add_user("bob", OLD);
    f.directory.disable(&bob);
    let change = PasswordChange::new(&f.deps);
    let client = f.client();
    for (login, current) in [
        ("ann", "Wrong-Harbor-1"),
        ("nobody-here", OLD),
        ("bob", OLD),
    ] {
        let answer = change
            .change(login, &secret(current), &secret(NEW), &client)
            .await;
        assert!(
            matches!(answer, Err(FlowError::InvalidCredentials)),
            "{login}: {answer:?}"
        );
    }
    let rows: Vec<_> = f
        .audit()
        .await
        .into_iter()
        .map(|e| (e.event, e.outcome, e.reason.unwrap_or_default()))
        .collect();
    let failed = |reason: &str| (AuditKind::PasswordChanged, Outcome::Failure, reason.into());
    assert_eq!(
        rows,
        [failed("wrong"), failed("unknown_user"), failed("disabled")]
    );
    assert!(f.directory.writes().is_empty(), "nothing was written");
    assert!(f.outbox.queued().is_empty(), "nobody was told anything");
}

#[tokio::test]
async fn a_must_change_account_changes_its_password_and_its_owner_is_told() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    f.directory.require_change(&ann);
    f.register_email(&ann, "ann.private@example.com").await;
    let change = PasswordChange::new(&f.deps);
    change
        .change("ANN@sspr.test", &secret(OLD), &secret(NEW), &f.client())
        .await
        .expect("changed");
    assert!(f.directory.has_password(&ann, NEW));
    assert!(!f.directory.user(&ann).must_change_password());
    let done = f.audit().await.pop().unwrap();
    assert_eq!(
        (done.event, done.outcome, done.object_guid),
        (AuditKind::PasswordChanged, Outcome::Success, Some(ann.guid))
    );
    let mut told: Vec<_> = f
        .outbox
        .queued()
        .into_iter()
        .map(|(q, _)| {
            assert!(matches!(q.mail.kind, MailKind::PasswordChanged));
            q.mail.to
        })
        .collect();
    told.sort();
    assert_eq!(told, ["ann.private@example.com", "ann@mail.sspr.test"]);
    // The old password no longer changes anything.
    let again = change
        .change(
            "ann",
            &secret(OLD),
            &secret("Third-Meadow-1618"),
            &f.client(),
        )
        .await;
    assert!(
        matches!(again, Err(FlowError::InvalidCredentials)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_new_password_that_breaks_a_rule_is_refused_before_ad_sees_it() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let change = PasswordChange::new(&f.deps);
    let answer = change
        .change("ann", &secret(OLD), &secret("short"), &f.client())
        .await;
    match answer {
        Err(FlowError::PasswordRejected(rules)) => {
            assert!(
                rules
                    .iter()
                    .any(|r| matches!(r, Violation::TooShort { .. })),
                "{rules:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(f.directory.writes().is_empty());
    assert!(f.directory.has_password(&ann, OLD));
    let refused = f.audit().await.pop().unwrap();
    assert_eq!(
        (refused.event, refused.outcome),
        (AuditKind::PasswordChanged, Outcome::Failure)
    );
}

#[tokio::test]
async fn what_ad_refuses_on_the_change_is_told_as_history_or_minimum_age() {
    let f = Fakes::new().await;
    f.directory.add_user("ann", OLD);
    f.directory
        .fail_next_write(DirectoryError::PolicyViolation {
            detail: "0000052D: password history".to_owned(),
        });
    let answer = PasswordChange::new(&f.deps)
        .change("ann", &secret(OLD), &secret(NEW), &f.client())
        .await;
    assert!(
        matches!(&answer, Err(FlowError::PasswordRejected(rules))
            if matches!(rules[..], [Violation::HistoryOrMinAge { .. }])),
        "{answer:?}"
    );
}

#[tokio::test]
async fn the_change_is_open_without_the_licence_but_never_to_the_service_account() {
    let mut settings = crate::domain::fakes::settings();
    settings.self_service_licensed = false;
    settings.eligibility.never_reset = vec!["CN=svc,OU=Staff,DC=sspr,DC=test".to_owned()];
    let f = Fakes::with(settings).await;
    let ann = f.directory.add_user("ann", OLD);
    let svc = f.directory.add_user("svc", OLD);
    let change = PasswordChange::new(&f.deps);
    change
        .change("ann", &secret(OLD), &secret(NEW), &f.client())
        .await
        .expect("a change needs no licence");
    assert!(f.directory.has_password(&ann, NEW));
    let refused = change
        .change("svc", &secret(OLD), &secret(NEW), &f.client())
        .await;
    assert!(
        matches!(refused, Err(FlowError::Forbidden(_))),
        "{refused:?}"
    );
    assert!(f.directory.has_password(&svc, OLD));
}

#[tokio::test]
async fn failed_changes_are_capped_like_sign_ins() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let change = PasswordChange::new(&f.deps);
    let cap = f.deps.settings.signin.max_failures;
    for _ in 0..cap {
        let answer = change
            .change("ann", &secret("Wrong-Harbor-1"), &secret(NEW), &f.client())
            .await;
        assert!(matches!(answer, Err(FlowError::InvalidCredentials)));
    }
    // Over the cap even the right password is refused, without a bind.
    f.directory.take_calls();
    let answer = change
        .change("ann", &secret(OLD), &secret(NEW), &f.client())
        .await;
    assert!(
        matches!(answer, Err(FlowError::SignInThrottled { .. })),
        "{answer:?}"
    );
    assert!(!f.directory.take_calls().contains(&"bind"));
    assert!(f.directory.has_password(&ann, OLD));
}
