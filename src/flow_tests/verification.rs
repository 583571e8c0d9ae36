use std::time::Duration;

use super::*;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::settings::{Settings, ThrottleSettings};
use crate::domain::store::{AuditKind, Person, RegistrationStore};

#[tokio::test]
async fn a_totp_step_is_never_accepted_twice() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    let totp = f.register_totp(&ann).await;
    let reset = Reset::new(&f.deps);
    let client = f.client();
    let code = f.totp_code(&totp);

    let first = reset.start("ann", &client).await.unwrap();
    reset
        .verify(&first.flow, MethodKind::Totp, &code, &client)
        .await
        .unwrap();
    let step = f.deps.now().as_millis() / 30_000;
    let stored = f.store.methods(&ann.guid).await.unwrap();
    assert_eq!(stored[0].last_step, Some(step));

    // The same code in another flow, at the same instant: a replay.
    let second = reset.start("ann", &client).await.unwrap();
    let replay = reset
        .verify(&second.flow, MethodKind::Totp, &code, &client)
        .await;
    assert!(
        matches!(
            replay,
            Err(FlowError::InvalidCode {
                remaining_attempts: 4
            })
        ),
        "{replay:?}"
    );
    let refused = f.audit().await.pop().unwrap();
    assert_eq!(
        (
            refused.event.as_str(),
            refused.outcome.as_str(),
            refused.reason.as_deref()
        ),
        ("verification", "failure", Some("wrong_code"))
    );

    // Racing on two flows, the next step's code is taken once.
    f.clock.advance(Duration::from_secs(30));
    let next = f.totp_code(&totp);
    let third = reset.start("ann", &client).await.unwrap();
    let (a, b) = tokio::join!(
        reset.verify(&second.flow, MethodKind::Totp, &next, &client),
        reset.verify(&third.flow, MethodKind::Totp, &next, &client),
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );

    // The previous step is still inside the accepted window, but at or below the last one.
    let earlier = crate::domain::totp::code_at(&totp, u64::try_from(step * 30).unwrap());
    let fourth = reset.start("ann", &client).await.unwrap();
    let stale = reset
        .verify(&fourth.flow, MethodKind::Totp, &earlier, &client)
        .await;
    assert!(
        matches!(stale, Err(FlowError::InvalidCode { .. })),
        "{stale:?}"
    );
    let stored = f.store.methods(&ann.guid).await.unwrap();
    assert_eq!(stored[0].last_step, Some(step + 1));
}

fn escalating() -> Settings {
    let settings = crate::domain::fakes::settings();
    Settings {
        throttle: ThrottleSettings {
            flow_max_failures: 3,
            user_max_failures: 5,
            user_window: Duration::from_secs(60 * 60),
            user_block: Duration::from_secs(60 * 60),
            ..settings.throttle
        },
        ..settings
    }
}

/// Waits for the mails queued by a background task of the flow.
async fn queued_kinds(f: &Fakes, label: &str) -> Vec<String> {
    for _ in 0..100 {
        let found: Vec<_> = f
            .outbox
            .queued()
            .into_iter()
            .filter(|(q, _)| q.mail.kind.label() == label)
            .map(|(q, _)| q.mail.to)
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn wrong_codes_end_the_flow_then_block_the_user_until_the_block_runs_out() {
    let f = Fakes::with(escalating()).await;
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    let totp = f.register_totp(&ann).await;
    f.register_email(&ann, "ann@home.test").await;
    let reset = Reset::new(&f.deps);
    let client = f.client();
    let wrong = wrong_totp(&f, &totp);

    // Three wrong codes end a flow (throttle.flow_max_failures).
    let first = reset.start("ann", &client).await.unwrap();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match reset
            .verify(&first.flow, MethodKind::Totp, &wrong, &client)
            .await
        {
            Err(FlowError::InvalidCode { remaining_attempts }) => {
                remaining.push(remaining_attempts)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    let ended = reset
        .verify(&first.flow, MethodKind::Totp, &f.totp_code(&totp), &client)
        .await;
    assert!(matches!(ended, Err(FlowError::FlowNotFound)), "{ended:?}");
    assert!(
        !f.deps
            .throttle
            .is_blocked(&Person::User(ann.guid))
            .await
            .unwrap()
    );

    // Two more in a new flow make five for the user (throttle.user_max_failures): blocked.
    let second = reset.start("ann", &client).await.unwrap();
    for _ in 0..2 {
        let answer = reset
            .verify(&second.flow, MethodKind::Totp, &wrong, &client)
            .await;
        assert!(
            matches!(answer, Err(FlowError::InvalidCode { .. })),
            "{answer:?}"
        );
    }
    let key = Person::User(ann.guid);
    assert!(f.deps.throttle.is_blocked(&key).await.unwrap());
    let throttled: Vec<_> = f
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == AuditKind::Throttled)
        .map(|e| e.reason.unwrap_or_default())
        .collect();
    assert_eq!(throttled, [format!("user_blocked {key}")]);
    assert_eq!(
        queued_kinds(&f, "self_service_blocked").await,
        ["ann@home.test", "ann@mail.sspr.test"]
    );

    // Blocked: a start answers as ever, and the right code answers like a wrong one.
    let third = reset.start("ann", &client).await.unwrap();
    let right = reset
        .verify(&third.flow, MethodKind::Totp, &f.totp_code(&totp), &client)
        .await;
    assert!(
        matches!(
            right,
            Err(FlowError::InvalidCode {
                remaining_attempts: 2
            })
        ),
        "{right:?}"
    );
    let last = f.audit().await.pop().unwrap();
    assert_eq!(last.reason.as_deref(), Some("user_blocked"));
    assert_eq!(
        f.store.methods(&ann.guid).await.unwrap()[0].last_step,
        None,
        "not spent"
    );
    // Failures during a block do not extend it or start another.
    let answer = reset
        .verify(&third.flow, MethodKind::Totp, &wrong, &client)
        .await;
    assert!(
        matches!(answer, Err(FlowError::InvalidCode { .. })),
        "{answer:?}"
    );
    let blocks = f
        .audit()
        .await
        .iter()
        .filter(|e| e.event == AuditKind::Throttled)
        .count();
    assert_eq!(blocks, 1);

    // Once the block has run out, the right code works again.
    f.clock.advance(Duration::from_secs(60 * 60 + 1));
    assert!(!f.deps.throttle.is_blocked(&key).await.unwrap());
    verified_flow(&f, "ann", &totp).await;
}

#[tokio::test]
async fn starts_and_code_mails_are_limited_per_address_and_per_user() {
    let settings = crate::domain::fakes::settings();
    let f = Fakes::with(Settings {
        throttle: ThrottleSettings {
            ip_max_starts: 3,
            email_max_sends: 2,
            ..settings.throttle
        },
        ..settings
    })
    .await;
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    f.register_email(&ann, "ann@home.test").await;
    let reset = Reset::new(&f.deps);
    let client = f.client();

    let mut flows = Vec::new();
    for _ in 0..3 {
        flows.push(reset.start("ann", &client).await.unwrap().flow);
    }
    let fourth = reset.start("ann", &client).await;
    assert!(
        matches!(fourth, Err(FlowError::Throttled { retry_after }) if retry_after == f.deps.settings.throttle.ip_window),
        "{fourth:?}"
    );
    let elsewhere = crate::domain::deps::Client {
        ip: Some("198.51.100.7".parse().unwrap()),
        ..f.client()
    };
    reset.start("ann", &elsewhere).await.unwrap();

    // Code mails count per user, across flows (throttle.email_max_sends).
    reset.send_email_code(&flows[0], &client).await.unwrap();
    reset.send_email_code(&flows[1], &client).await.unwrap();
    let third = reset.send_email_code(&flows[2], &client).await;
    assert!(
        matches!(third, Err(FlowError::Throttled { .. })),
        "{third:?}"
    );
    let codes = f
        .outbox
        .queued()
        .iter()
        .filter(|(q, _)| matches!(q.mail.kind, MailKind::ResetCode { .. }))
        .count();
    assert_eq!(codes, 2);
    let reasons: Vec<_> = f
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == AuditKind::Throttled)
        .map(|e| e.reason.unwrap_or_default())
        .collect();
    assert_eq!(reasons, ["ip_start", "email_sends"]);

    // The window passes (an event exactly one window old still counts): both limits start again.
    f.clock
        .advance(f.deps.settings.throttle.ip_window + Duration::from_millis(1));
    let flow = reset.start("ann", &client).await.unwrap().flow;
    reset.send_email_code(&flow, &client).await.unwrap();
}
