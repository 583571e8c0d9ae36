//! Manager approval of a helpdesk caller, against the real Samba DC, SMTP server and database:
//! the operator asks, the caller's AD manager gets a link, and the page behind it (which asks
//! for no password) takes the manager's own authenticator code, or a decline.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::{AnyConnection, Connection};

use crate::client::{TestApp, contains};
use crate::harness::{TestUser, bind, create_user, set_attr};
use crate::helpdesk::{Authenticator, Desk, desk, mail_titled};
use crate::mail::{assert_no_mail, wait_for_mail};
use crate::pages::{Browser, alert, assert_page};

/// Helpdesk settings that let a manager set a moment ago approve.
pub(crate) const ANY_AGE: &str = "manager_min_age = \"0s\"";

/// A caller whose AD `manager` is a user with an authenticator app registered.
pub(crate) struct Pair {
    pub(crate) caller: TestUser,
    pub(crate) manager: TestUser,
    pub(crate) authenticator: Authenticator,
}

pub(crate) async fn pair(desk: &Desk) -> Pair {
    let caller = create_user("mcl").await;
    let manager = create_user("mgr").await;
    set_attr(&caller.dn, "manager", &manager.dn).await;
    let authenticator = Authenticator::new(&manager).await;
    authenticator.register_in(&desk.app.database).await;
    Pair {
        caller,
        manager,
        authenticator,
    }
}

fn ad_mail(user: &TestUser) -> String {
    format!("{}@mail.test", user.sam)
}

pub(crate) async fn ask(desk: &Desk, operator: &str, caller: &TestUser) -> crate::client::Answer {
    desk.app
        .post(
            &format!("/api/v1/helpdesk/users/{}/manager-approval", caller.sam),
            json!({}),
            Some(operator),
        )
        .await
}

/// The path of the approval link in the mail to the manager.
pub(crate) async fn approval_link(manager: &TestUser) -> String {
    let mail = mail_titled(&ad_mail(manager), "confirm who is calling").await;
    let at = mail.text.find("/approve/").expect("a link in the mail");
    let path: String = mail.text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    crate::harness::remember_secret("approval-token", &path["/approve/".len()..]);
    path
}

async fn card(desk: &Desk, operator: &str, caller: &TestUser) -> serde_json::Value {
    desk.app
        .get(
            &format!("/api/v1/helpdesk/users/{}", caller.sam),
            Some(operator),
        )
        .await
        .expect(StatusCode::OK)
        .json()
}

async fn audit_rows(app: &TestApp) -> Vec<sspr_bridge::domain::store::AuditEvent> {
    use sspr_bridge::domain::clock::Timestamp;
    use sspr_bridge::domain::store::AuditLog;
    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    rows.into_iter().map(|r| r.event).collect()
}

/// Runs `sql` (binding `ms`) on the app's database, as time passing would.
async fn age(app: &TestApp, sql: &str, ms: i64) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&app.database.url).await.unwrap();
    let done = sqlx::query(sql).bind(ms).execute(&mut conn).await.unwrap();
    assert!(done.rows_affected() > 0, "{sql}");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_manager_approves_with_their_authenticator_and_the_operator_resets() {
    const METRICS: &str = "approval-metrics-5e1d";
    crate::harness::remember_secret("metrics-token", METRICS);
    let desk = desk(&format!("{ANY_AGE}\n[metrics]\ntoken = \"{METRICS}\"")).await;
    let approved = || async {
        let text = desk.app.get("/metrics", Some(METRICS)).await.body;
        text.lines()
            .find(|l| l.starts_with("sspr_manager_approvals_total{outcome=\"approved\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let approved_before = approved().await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    let before = card(&desk, &operator, &p.caller).await;
    assert_eq!(before["verified_by"], serde_json::Value::Null);

    ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::ACCEPTED);
    let link = approval_link(&p.manager).await;

    let mut browser = Browser::new(&desk.app);
    let page = browser.get(&link).await;
    assert_page(&page, StatusCode::OK, &desk.operator.sam);
    assert_page(&page, StatusCode::OK, &p.caller.sam);
    assert!(!page.body.contains("type=\"password\""), "{}", page.body);
    assert!(!page.body.to_lowercase().contains("current-password"));
    assert_eq!(
        page.headers["referrer-policy"], "no-referrer",
        "the token is in the address"
    );

    let code = p.authenticator.code().await;
    let done = browser
        .submit(
            &page,
            &link,
            &[("action", "approve"), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert_page(&done, StatusCode::OK, "you confirmed the caller");

    let after = card(&desk, &operator, &p.caller).await;
    assert_eq!(after["verified_by"], "manager");
    // The counter is the process's: other tests may add to it meanwhile, never take away.
    assert!(approved().await >= approved_before + 1.0);

    // Verified: no written reason needed.
    let temporary = desk
        .app
        .post(
            &format!("/api/v1/helpdesk/users/{}/reset", p.caller.sam),
            json!({"deliver": "operator"}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK)
        .json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rc, text) = bind(&p.caller.dn, &temporary)
        .await
        .expect_err("must change");
    assert!(rc == 49 && text.contains("773"), "{text}");

    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter().any(|r| r.event.as_str() == "manager_approval"
            && r.outcome.as_str() == "approved"
            && r.actor.as_deref() == Some(&*p.manager.sam)
            && r.sam_account_name.as_deref() == Some(&*p.caller.sam)),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.event.as_str() == "helpdesk_reset"
            && r.reason
                .as_deref()
                .is_some_and(|x| x.starts_with("verified_by=manager"))),
        "{rows:?}"
    );

    // Used: the link works once.
    let again = browser.get(&link).await;
    assert_page(&again, StatusCode::NOT_FOUND, "already used");
    let token = &link["/approve/".len()..];
    let db = desk.app.database.contents().await;
    assert!(!contains(&db, token.as_bytes()), "stored only as a hash");
}

#[tokio::test]
async fn a_decline_is_audited_and_told_to_the_caller_and_verifies_nothing() {
    let desk = desk(ANY_AGE).await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::ACCEPTED);
    let link = approval_link(&p.manager).await;

    let mut browser = Browser::new(&desk.app);
    let page = browser.get(&link).await;
    let declined = browser.submit(&page, &link, &[("action", "decline")]).await;
    assert_page(&declined, StatusCode::OK, "You declined");

    let notice = mail_titled(&ad_mail(&p.caller), "declined").await;
    assert!(notice.text.contains(&p.manager.sam), "{}", notice.text);
    assert_eq!(
        card(&desk, &operator, &p.caller).await["verified_by"],
        serde_json::Value::Null
    );
    desk.app
        .post(
            &format!("/api/v1/helpdesk/users/{}/reset", p.caller.sam),
            json!({"deliver": "operator"}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter().any(|r| r.event.as_str() == "manager_approval"
            && r.outcome.as_str() == "declined"
            && r.actor.as_deref() == Some(&*p.manager.sam)),
        "{rows:?}"
    );
    // Declined is final: the link approves nothing afterwards, even from the page still open.
    let code = p.authenticator.code().await;
    let late = browser
        .submit(
            &page,
            &link,
            &[("action", "approve"), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert_page(&late, StatusCode::NOT_FOUND, "already used");
    assert_eq!(
        card(&desk, &operator, &p.caller).await["verified_by"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn wrong_codes_count_and_end_the_approval() {
    let desk = desk(&format!("{ANY_AGE}\n[throttle]\nflow_max_failures = 2")).await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::ACCEPTED);
    let link = approval_link(&p.manager).await;
    let mut browser = Browser::new(&desk.app);
    let page = browser.get(&link).await;

    let wrong = browser
        .submit(
            &page,
            &link,
            &[
                ("action", "approve"),
                ("method", "totp"),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert!(
        alert(&wrong).contains("1 attempt left"),
        "{}",
        alert(&wrong)
    );
    // Reload of the wrong code's answer: the page again, the code not judged a second time
    // (which would have ended the approval here).
    let again = browser.post_again().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.headers[axum::http::header::LOCATION], link.as_str());
    let reloaded = browser.get(&link).await;
    assert_page(&reloaded, StatusCode::OK, "name=\"once\"");
    let ended = browser
        .submit(
            &wrong,
            &link,
            &[
                ("action", "approve"),
                ("method", "totp"),
                ("code", "000001"),
            ],
        )
        .await;
    assert_page(&ended, StatusCode::NOT_FOUND, "ended after wrong codes");

    // Even the right code is too late now.
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        card(&desk, &operator, &p.caller).await["verified_by"],
        serde_json::Value::Null
    );
    let rows = audit_rows(&desk.app).await;
    let failures = rows
        .iter()
        .filter(|r| {
            r.event.as_str() == "verification"
                && r.outcome.as_str() == "failure"
                && r.sam_account_name.as_deref() == Some(&*p.manager.sam)
        })
        .count();
    assert_eq!(failures, 2, "{rows:?}");
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let desk = desk(ANY_AGE).await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::ACCEPTED);
    let link = approval_link(&p.manager).await;
    let mut browser = Browser::new(&desk.app);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);

    // Sixteen minutes later.
    let sixteen = 16 * 60 * 1000;
    age(
        &desk.app,
        "UPDATE manager_approvals SET expires_at_ms = expires_at_ms - $1",
        sixteen,
    )
    .await;
    let code = p.authenticator.code().await;
    let late = browser
        .submit(
            &page,
            &link,
            &[("action", "approve"), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert_page(&late, StatusCode::NOT_FOUND, "has expired");
    assert_eq!(
        card(&desk, &operator, &p.caller).await["verified_by"],
        serde_json::Value::Null
    );
    let unknown = browser.get("/approve/not-a-token-anyone-was-given").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_manager_seen_too_recently_and_other_unfit_managers_are_refused() {
    // The default helpdesk.manager_min_age (7 days).
    let desk = desk("").await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    let refused = ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "manager_too_recent");
    assert_no_mail(&ad_mail(&p.manager), Duration::from_millis(300)).await;

    // Samba keeps no change time for `manager`: once the service has seen the value for longer
    // than the minimum age, it counts.
    age(
        &desk.app,
        "UPDATE manager_seen SET first_seen_at_ms = first_seen_at_ms - $1",
        8 * 86_400_000,
    )
    .await;
    ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::ACCEPTED);
    wait_for_mail(&ad_mail(&p.manager)).await;

    // A new manager starts the clock again.
    let other = create_user("mgr").await;
    Authenticator::new(&other)
        .await
        .register_in(&desk.app.database)
        .await;
    set_attr(&p.caller.dn, "manager", &other.dn).await;
    let refused = ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "manager_too_recent");

    // No manager; a manager who registered nothing.
    let alone = create_user("mcl").await;
    let refused = ask(&desk, &operator, &alone)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "no_manager");
    let unregistered = create_user("mgr").await;
    set_attr(&alone.dn, "manager", &unregistered.dn).await;
    let refused = ask(&desk, &operator, &alone)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "manager_not_registered");

    // Nobody vouches for themselves, and an operator is no second person for their own reports.
    set_attr(&alone.dn, "manager", &alone.dn).await;
    let refused = ask(&desk, &operator, &alone)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "no_manager");
    set_attr(&alone.dn, "manager", &desk.operator.dn).await;
    let refused = ask(&desk, &operator, &alone)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.error().error, "manager_is_operator");

    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter()
            .any(|r| r.event.as_str() == "manager_approval_requested"
                && r.outcome.as_str() == "denied"
                && r.reason.as_deref() == Some("manager_too_recent")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn the_manager_may_confirm_with_a_code_mailed_to_their_registered_address() {
    let desk = desk(ANY_AGE).await;
    let caller = create_user("mcl").await;
    let manager = create_user("mgr").await;
    set_attr(&caller.dn, "manager", &manager.dn).await;
    let session = crate::selfservice::sign_in(&desk.app, &manager).await;
    let address = crate::selfservice::register_email(&desk.app, &session).await;
    let operator = desk.operator_token().await;
    ask(&desk, &operator, &caller)
        .await
        .expect(StatusCode::ACCEPTED);
    let link = approval_link(&manager).await;

    // In Dutch, as the manager's browser asks.
    let mut browser = Browser::new(&desk.app);
    browser.accept_language = Some("nl");
    let page = browser.get(&link).await;
    assert_page(&page, StatusCode::OK, "Bevestig een beller van de helpdesk");
    assert!(!page.body.contains("type=\"password\""));
    assert!(
        !page.body.contains("id=\"approve-totp\""),
        "no authenticator registered"
    );
    let sent = browser
        .submit(&page, &link, &[("action", "send_code")])
        .await;
    assert_page(
        &sent,
        StatusCode::OK,
        "Er is een code naar uw geregistreerde adres gemaild",
    );
    assert_eq!(browser.redirected.as_deref(), Some(link.as_str()));
    let code = mail_titled(&address, "beller van de helpdesk")
        .await
        .code_in()
        .expect("a code");
    // Reload: the code field again, and no second code.
    let reloaded = browser.get(&link).await;
    assert_page(&reloaded, StatusCode::OK, "id=\"approve-email-code\"");
    crate::mail::assert_no_mail(&address, std::time::Duration::from_secs(2)).await;
    let done = browser
        .submit(
            &sent,
            &link,
            &[("action", "approve"), ("method", "email"), ("code", &code)],
        )
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/approve"));
    assert_page(&done, StatusCode::OK, "u hebt de beller bevestigd");
    let reloaded = browser.get("/approve").await;
    assert_page(&reloaded, StatusCode::OK, "u hebt de beller bevestigd");
    assert_eq!(
        card(&desk, &operator, &caller).await["verified_by"],
        "manager"
    );
}

#[tokio::test]
async fn the_card_page_asks_the_manager() {
    let desk = desk(ANY_AGE).await;
    let p = pair(&desk).await;
    let mut browser = Browser::new(&desk.app);
    let form = browser.get("/helpdesk").await;
    let code = desk.authenticator.code().await;
    let search = browser
        .submit(
            &form,
            "/helpdesk",
            &[
                ("username", &desk.operator.sam),
                ("password", &desk.operator.password),
                ("code", &code),
            ],
        )
        .await;
    let card = browser
        .submit(&search, "/helpdesk/user", &[("id", &p.caller.sam)])
        .await;
    assert_page(&card, StatusCode::OK, "Ask the manager");
    let asked = browser
        .submit(&card, "/helpdesk/user/manager-approval", &[])
        .await;
    assert_page(&asked, StatusCode::OK, "manager was emailed a link");
    approval_link(&p.manager).await;

    // A caller without a manager: the card says why not.
    let alone = create_user("mcl").await;
    let card = browser
        .submit(&asked, "/helpdesk/user", &[("id", &alone.sam)])
        .await;
    let refused = browser
        .submit(&card, "/helpdesk/user/manager-approval", &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        alert(&refused).contains("has no manager in AD"),
        "{}",
        alert(&refused)
    );
}

#[tokio::test]
async fn a_managers_mailbox_gets_no_more_links_than_the_mail_limit() {
    let desk = desk(&format!("{ANY_AGE}\n[throttle]\nemail_max_sends = 2")).await;
    let p = pair(&desk).await;
    let operator = desk.operator_token().await;
    for _ in 0..2 {
        ask(&desk, &operator, &p.caller)
            .await
            .expect(StatusCode::ACCEPTED);
    }
    let over = ask(&desk, &operator, &p.caller)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.error().error, "throttled");
    for _ in 0..2 {
        approval_link(&p.manager).await;
    }
    assert_no_mail(&ad_mail(&p.manager), Duration::from_millis(300)).await;
}
