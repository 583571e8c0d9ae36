use std::time::Duration;

use super::*;
use crate::domain::clock::{Clock, Timestamp};
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{CallerCheck, Helpdesk};
use crate::domain::report::{Action, Per, Reports};
use crate::domain::scope::{Eligibility, Scope};
use crate::domain::settings::{AdminSettings, HelpdeskSettings, Settings};
use crate::domain::store::{AuditEvent, AuditKind, AuditLog, Outcome, ThrottleStore};

const STAFF: &str = "CN=Staff,OU=Groups,DC=sspr,DC=test";
const HELPDESK: &str = "CN=Helpdesk,OU=Groups,DC=sspr,DC=test";
const ADMINS: &str = "CN=Admins,OU=Groups,DC=sspr,DC=test";
const PASSWORD: &str = "Old-Harbor-2718";
const DAY: Duration = Duration::from_secs(86_400);

fn settings() -> Settings {
    let mut settings = crate::domain::fakes::settings();
    settings.eligibility = Eligibility {
        scope: Scope::Group(STAFF.to_owned()),
        allow_protected: Vec::new(),
        never_reset: vec!["CN=svc,OU=Staff,DC=sspr,DC=test".to_owned()],
    };
    settings.registration.reconfirm_days = 30;
    settings.helpdesk = HelpdeskSettings {
        group_dn: Some(HELPDESK.to_owned()),
        session_idle: Duration::from_secs(15 * 60),
        session_lifetime: Duration::from_secs(8 * 60 * 60),
        operator_max_sign_ins: 20,
        operator_max_actions: 1_000,
        operator_window: Duration::from_secs(60 * 60),
        verification_methods: vec![CallerCheck::Registered],
        membership_recheck: Duration::from_secs(60),
        ..HelpdeskSettings::default()
    };
    settings.admin = AdminSettings {
        group_dn: Some(ADMINS.to_owned()),
    };
    settings
}

#[tokio::test]
async fn the_report_counts_the_scope_its_registrations_and_its_blocks() {
    let f = Fakes::with(settings()).await;
    let d = &f.directory;
    let [ann, bob, cat, svc, off] = ["ann", "bob", "cat", "svc", "off"].map(|sam| {
        let user = d.add_user(sam, PASSWORD);
        d.add_to_group(&user, STAFF);
        user
    });
    d.disable(&off);
    let outsider = d.add_user("out", PASSWORD);
    f.register_totp(&ann).await;
    f.register_email(&bob, "bob@mail.test").await;
    f.register_totp(&svc).await;
    f.register_totp(&outsider).await;
    let start = f.clock.now();
    // Forty days on, beyond registration.reconfirm_days: ann's and bob's methods went stale.
    f.clock.advance(40 * DAY);
    f.register_email(&cat, "cat@mail.test").await;
    let later = f.clock.now();
    for user in [&bob, &outsider] {
        f.store
            .block(&format!("user:{}", user.guid), later + DAY)
            .await
            .unwrap();
    }
    for (kind, outcome, reason) in [
        (AuditKind::PasswordReset, Outcome::Success, None),
        (
            AuditKind::PasswordReset,
            Outcome::Failure,
            Some("wrong_code"),
        ),
        (AuditKind::Unlock, Outcome::Success, None),
        (AuditKind::SignIn, Outcome::Denied, Some("out_of_scope")),
    ] {
        let event = AuditEvent {
            at: later,
            event: kind,
            outcome,
            object_guid: Some(ann.guid),
            sam_account_name: None,
            actor: None,
            client_ip: None,
            method: Some("totp".to_owned()),
            reason: reason.map(str::to_owned),
            login_hash: None,
        };
        f.store.record(&event).await.unwrap();
    }

    let report = Reports::new(&f.deps, f.store.as_ref())
        .report(start, Per::Day)
        .await
        .unwrap();
    // In scope: ann, bob, cat (svc is the service account, off is disabled, out is not staff).
    assert_eq!(report.users_in_scope, 3);
    assert_eq!(report.registered, 3);
    assert_eq!(
        report.registered_by_method,
        [
            (MethodKind::Totp, 1),
            (MethodKind::Email, 2),
            (MethodKind::Passkey, 0)
        ]
    );
    // ann and bob confirmed 40 days ago, cat today.
    assert_eq!(report.stale, 2);
    assert_eq!(report.never_registered, 0);
    assert_eq!(report.blocked_now, 1, "bob; the outsider is not in scope");
    let counted: Vec<(Action, Outcome, u64)> = report
        .activity
        .iter()
        .map(|a| (a.action, a.outcome, a.count))
        .collect();
    assert_eq!(
        counted,
        [
            (Action::Reset, Outcome::Failure, 1),
            (Action::Reset, Outcome::Success, 1),
            (Action::Unlock, Outcome::Success, 1),
        ]
    );
    assert_eq!(
        report.refusals,
        [("out_of_scope".to_owned(), 1), ("wrong_code".to_owned(), 1)]
    );
}

#[tokio::test]
async fn only_operators_in_the_admin_group_get_the_report() {
    let f = Fakes::with(settings()).await;
    let op = f.directory.add_user("op", PASSWORD);
    f.directory.add_to_group(&op, HELPDESK);
    f.register_totp(&op).await;
    let reports = Reports::new(&f.deps, f.store.as_ref());
    let since = Timestamp::from_millis(0);

    let none = reports.for_admin("no-such-session", since, Per::Day).await;
    assert!(matches!(none, Err(FlowError::Unauthorized)), "{none:?}");

    let mut settings = settings();
    settings.helpdesk.operator_second_factor = false;
    let f = Fakes::with(settings).await;
    let op = f.directory.add_user("op", PASSWORD);
    f.directory.add_to_group(&op, HELPDESK);
    let token = Helpdesk::new(&f.deps)
        .sign_in("op", &secret(PASSWORD), None, &f.client())
        .await
        .unwrap();
    let reports = Reports::new(&f.deps, f.store.as_ref());
    let refused = reports.for_admin(&token, since, Per::Day).await;
    assert!(
        matches!(refused, Err(FlowError::Forbidden(_))),
        "{refused:?}"
    );
    f.directory.add_to_group(&op, ADMINS);
    let report = reports.for_admin(&token, since, Per::Day).await.unwrap();
    assert_eq!(report.users_in_scope, 0);
}

/// FILETIME (100 ns since 1601) of a Unix time in ms.
fn filetime(unix_ms: i64) -> i64 {
    (unix_ms + 11_644_473_600_000) * 10_000
}

#[tokio::test]
async fn the_helpdesk_lists_hold_locked_expiring_and_must_change_accounts_of_the_scope() {
    let mut settings = settings();
    settings.helpdesk.operator_second_factor = false;
    settings.helpdesk.expiring_within = 14 * DAY;
    let f = Fakes::with(settings).await;
    let d = &f.directory;
    d.set_max_password_age(42 * DAY);
    let op = d.add_user("op", PASSWORD);
    d.add_to_group(&op, HELPDESK);
    let now = f.clock.now().as_millis();
    let day_ms = 86_400_000;
    let [locked, soon, later, expired, must, guarded] =
        ["locked", "soon", "later", "expired", "must", "guarded"].map(|sam| {
            let user = d.add_user(sam, PASSWORD);
            d.add_to_group(&user, STAFF);
            d.set_password_last_set(&user, filetime(now - 20 * day_ms));
            user
        });
    d.lock_out(&locked);
    // Expires in 12 days (inside 14), in 30 days, and 3 days ago.
    d.set_password_last_set(&soon, filetime(now - 30 * day_ms));
    d.set_password_last_set(&later, filetime(now - 12 * day_ms));
    d.set_password_last_set(&expired, filetime(now - 45 * day_ms));
    d.set_password_last_set(&must, 0);
    // A helpdesk member is no account for operators to act on.
    d.add_to_group(&guarded, HELPDESK);
    d.lock_out(&guarded);
    // Outside the scope group.
    let outsider = d.add_user("outsider", PASSWORD);
    d.lock_out(&outsider);

    let helpdesk = Helpdesk::new(&f.deps);
    let none = helpdesk.account_lists("no-such-session").await;
    assert!(matches!(none, Err(FlowError::Unauthorized)), "{none:?}");
    let token = helpdesk
        .sign_in("op", &secret(PASSWORD), None, &f.client())
        .await
        .unwrap();
    let lists = helpdesk.account_lists(&token).await.unwrap();
    let names = |list: &[crate::domain::helpdesk::Listed]| {
        list.iter()
            .map(|l| l.sam_account_name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&lists.locked), ["locked"]);
    assert_eq!(names(&lists.expiring), ["soon"]);
    assert_eq!(names(&lists.must_change), ["must"]);
    let expires = lists.expiring[0].at.unwrap().as_millis();
    assert_eq!(expires, now + 12 * day_ms);
    assert!(!lists.truncated);
}
