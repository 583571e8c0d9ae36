//! The local password history, against the test DC (Samba 4.17: no policy hints, so AD applies
//! no history to a reset and the service keeps its own) and both databases; and audit retention.

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::store::{AuditEvent, AuditKind, AuditLog, Outcome};
use sspr_bridge::domain::totp;

use crate::client::{Answer, TestApp, contains, test_app};
use crate::harness::{
    TestDatabase, TestUser, add_member, bind, create_group, create_user, unique_name,
};
use crate::mail::{smtp_section, wait_for_mail};
use crate::policy::Pso;
use crate::selfservice::{
    register_email, set_password, settle_totp_step, sign_in, start_flow, verify,
};

async fn app() -> TestApp {
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}",
        smtp_section()
    ))
    .await
}

/// A user with a confirmed email address, and that address.
async fn registered_user(app: &TestApp, prefix: &str) -> (TestUser, String) {
    let user = create_user(prefix).await;
    let token = sign_in(app, &user).await;
    let address = register_email(app, &token).await;
    (user, address)
}

/// A reset flow for `user`, verified with a code mailed to `address`.
async fn verified_by_mail(app: &TestApp, user: &TestUser, address: &str) -> String {
    let flow = start_flow(app, &user.sam).await;
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    // Notices of earlier resets may come first.
    let code = loop {
        if let Some(code) = wait_for_mail(address).await.code_in() {
            break code;
        }
    };
    verify(app, &flow, "email", &code)
        .await
        .expect(StatusCode::OK);
    flow
}

/// The refused rules' ids and the message of a 422 `password_policy` answer.
fn refusal(answer: Answer) -> (Vec<String>, String) {
    let error = answer.expect(StatusCode::UNPROCESSABLE_ENTITY).error();
    assert_eq!(error.error, "password_policy");
    (
        error.rules.into_iter().map(|r| r.rule).collect(),
        error.message,
    )
}

const FIRST: &str = "Velvet-Harbour-Tram-82";
const SECOND: &str = "Copper-Quay-Lantern-47";
const THIRD: &str = "Meadow-Ferry-Signal-63";

#[tokio::test]
async fn a_reset_to_a_password_the_service_set_is_refused_by_name() {
    let app = app().await;
    let (user, address) = registered_user(&app, "lhst").await;
    for password in [FIRST, SECOND] {
        let flow = verified_by_mail(&app, &user, &address).await;
        set_password(&app, &flow, password)
            .await
            .expect(StatusCode::NO_CONTENT);
    }

    let flow = verified_by_mail(&app, &user, &address).await;
    // A check in advance says so too, without writing anything.
    let checked = app
        .post(
            "/api/v1/password/check",
            json!({"flow": flow, "password": FIRST}),
            None,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(checked["ok"], false, "{checked}");
    assert_eq!(checked["broken"][0]["rule"], "history", "{checked}");
    // The current password and an older one (the domain keeps 24).
    for password in [SECOND, FIRST] {
        let (rules, message) = refusal(set_password(&app, &flow, password).await);
        assert_eq!(rules, ["history"], "{password}");
        assert!(message.contains("one of your last 24"), "{message}");
        bind(&user.dn, SECOND)
            .await
            .expect("the DC still holds the current password");
    }
    set_password(&app, &flow, THIRD)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, THIRD).await.expect("a new one is written");

    let db = app.database.contents().await;
    for password in [FIRST, SECOND, THIRD] {
        assert!(!contains(&db, password.as_bytes()), "kept only as hashes");
    }
}

/// N is the history length of the user's own policy: a PSO of 1 remembers only the current
/// password, so the one before it may come back.
#[tokio::test]
async fn the_history_length_follows_the_users_policy() {
    let app = app().await;
    let (user, address) = registered_user(&app, "lhpso").await;
    let group = create_group(&unique_name("lhpsog")).await;
    add_member(&group, &user.dn).await;
    let pso = Pso::for_group(&group, &["--min-pwd-length=7", "--history-length=1"]).await;

    for password in [FIRST, SECOND] {
        let flow = verified_by_mail(&app, &user, &address).await;
        set_password(&app, &flow, password)
            .await
            .expect(StatusCode::NO_CONTENT);
    }
    let flow = verified_by_mail(&app, &user, &address).await;
    let (rules, message) = refusal(set_password(&app, &flow, SECOND).await);
    assert_eq!(rules, ["history"]);
    assert!(message.contains("your previous password"), "{message}");
    set_password(&app, &flow, FIRST)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, FIRST).await.expect("the older one is back");
    drop(pso);
}

fn event(at_ms: i64, sam: &str) -> AuditEvent {
    AuditEvent {
        at: Timestamp::from_millis(at_ms),
        event: AuditKind::PasswordReset,
        outcome: Outcome::Success,
        object_guid: None,
        sam_account_name: Some(sam.to_owned()),
        actor: None,
        client_ip: None,
        method: None,
        reason: None,
        login_hash: None,
    }
}

/// Old audit rows go, in batches smaller than their number; newer ones stay.
#[tokio::test]
async fn audit_retention_deletes_old_rows_and_keeps_new_ones() {
    let database = TestDatabase::from_env().await;
    let store = database.store().await;
    store.migrate().await.unwrap();
    let cutoff = Timestamp::from_millis(1_700_000_000_000);
    for i in 0..7 {
        store
            .record(&event(1_600_000_000_000 + i, &format!("old{i}")))
            .await
            .unwrap();
    }
    store
        .record(&event(cutoff.as_millis(), "at-cutoff"))
        .await
        .unwrap();
    store
        .record(&event(1_800_000_000_000, "new"))
        .await
        .unwrap();

    assert_eq!(store.prune_audit(cutoff, 3).await.unwrap(), 7);
    let left: Vec<_> = store
        .since(Timestamp::from_millis(0), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.sam_account_name.unwrap())
        .collect();
    assert_eq!(left, ["at-cutoff", "new"]);
    assert_eq!(store.prune_audit(cutoff, 3).await.unwrap(), 0);
    store.close().await;
}

/// The helpdesk's temporary password is remembered too: the user cannot reset back to a password
/// an operator saw.
#[tokio::test]
async fn a_reset_back_to_the_helpdesks_temporary_password_is_refused() {
    let desk = crate::helpdesk::desk("").await;
    let (caller, secret) = crate::helpdesk::caller_with_totp(&desk).await;
    let token = desk.operator_token().await;
    let users = "/api/v1/helpdesk/users";
    let step = settle_totp_step().await;
    desk.app
        .post(
            &format!("{users}/{}/verify", caller.sam),
            json!({"method": "totp", "code": totp::code_at(&secret, step)}),
            Some(&token),
        )
        .await
        .expect(StatusCode::OK);
    let temporary = desk
        .app
        .post(
            &format!("{users}/{}/reset", caller.sam),
            json!({"deliver": "operator"}),
            Some(&token),
        )
        .await
        .expect(StatusCode::OK)
        .json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();

    // The authenticator's next code: the operator's verification spent this step's.
    let flow = start_flow(&desk.app, &caller.sam).await;
    let next = loop {
        let now = settle_totp_step().await;
        if now / totp::STEP_SECS > step / totp::STEP_SECS {
            break now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    verify(&desk.app, &flow, "totp", &totp::code_at(&secret, next))
        .await
        .expect(StatusCode::OK);
    let (rules, _) = refusal(set_password(&desk.app, &flow, &temporary).await);
    assert_eq!(rules, ["history"]);
    set_password(&desk.app, &flow, THIRD)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&caller.dn, THIRD).await.expect("a new one is written");
}
