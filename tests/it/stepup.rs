//! Registration you can trust (issue 11): a must-change password cannot register, a new session
//! steps up before it changes methods, registration codes stand in for a step-up, every change
//! is announced to the owner, and a reset ends the sessions opened before it. Against the real
//! DC, SMTP server and database.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::store::{AuditLog, RegistrationStore};
use sspr_bridge::domain::totp;

use crate::client::{TestApp, test_app};
use crate::harness::{self, TestUser, bind, create_user};
use crate::mail::{assert_no_mail, smtp_section, unique_address, wait_for_mail};
use crate::pages::{Browser, assert_page};
use crate::selfservice::{
    register_email, register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{}\n{extra}", smtp_section())).await
}

/// The AD `mail` create_user gave the user.
fn ad_mail(user: &TestUser) -> String {
    format!("{}@mail.test", user.sam)
}

async fn open_session(app: &TestApp, user: &TestUser) -> (String, bool) {
    let answer = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": user.password}),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let body = answer.json();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["step_up_required"]
            .as_bool()
            .expect("step_up_required"),
    )
}

async fn step_up(app: &TestApp, token: &str, method: &str, code: &str) -> crate::client::Answer {
    app.post(
        "/api/v1/enrollment/step-up",
        json!({"method": method, "code": code}),
        Some(token),
    )
    .await
}

/// Every changing call answers 403 `step_up_required` with `token`, and changes nothing.
async fn assert_changes_refused(app: &TestApp, token: &str) {
    let address = unique_address();
    let calls = [
        ("POST", "/api/v1/enrollment/totp", Some(json!({}))),
        (
            "POST",
            "/api/v1/enrollment/totp/confirm",
            Some(json!({"code": "123456"})),
        ),
        (
            "POST",
            "/api/v1/enrollment/email",
            Some(json!({"address": address})),
        ),
        (
            "POST",
            "/api/v1/enrollment/email/confirm",
            Some(json!({"code": "12345678"})),
        ),
        ("DELETE", "/api/v1/enrollment/totp", None),
        ("DELETE", "/api/v1/enrollment/email", None),
    ];
    for (method, path, body) in calls {
        let answer = app
            .send(crate::client::request(method, path, body, Some(token)))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(answer.error().error, "step_up_required", "{method} {path}");
    }
    assert_no_mail(&address, Duration::from_millis(200)).await;
}

async fn methods(app: &TestApp, user: &TestUser) -> Vec<String> {
    use sspr_bridge::domain::directory::Directory;
    let directory = sspr_bridge::directory::LdapDirectory::new(&harness::config("").directory)
        .expect("directory");
    let guid = directory.find_user(&user.sam).await.unwrap().unwrap().guid;
    let store = app.database.store().await;
    let methods = store.methods(&guid).await.unwrap();
    store.close().await;
    methods
        .into_iter()
        .map(|m| m.kind.as_str().to_owned())
        .collect()
}

/// (event, outcome, actor, reason) of the user's audit rows, oldest first.
async fn audit_of(app: &TestApp, user: &TestUser) -> Vec<(String, String, Option<String>)> {
    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    rows.into_iter()
        .filter(|r| r.event.sam_account_name.as_deref() == Some(&user.sam))
        .map(|r| {
            let e = r.event;
            (e.event.as_str().into(), e.outcome.as_str().into(), e.reason)
        })
        .collect()
}

/// The temporary-password attack: whoever read a password the user must change cannot use it to
/// register a method (and from there choose the next password).
#[tokio::test]
async fn a_must_change_password_cannot_register() {
    let app = app("").await;
    let user = create_user("mcp").await;
    harness::set_attr(&user.dn, "pwdLastSet", "0").await;
    let refused = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": user.password}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "password_change_required");
    assert!(refused.body.contains("Windows"), "{}", refused.body);
    assert!(methods(&app, &user).await.is_empty(), "nothing registered");
    let audit = audit_of(&app, &user).await;
    assert!(
        audit
            .iter()
            .any(|(e, o, r)| e == "sign_in" && o == "denied" && r.as_deref() == Some("mustchange")),
        "{audit:?}"
    );

    // The page says what to do.
    let mut browser = Browser::new(&app);
    let form = browser.get("/register").await;
    let page = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(&page, StatusCode::FORBIDDEN, "Windows");
    assert!(methods(&app, &user).await.is_empty(), "nothing registered");
}

#[tokio::test]
async fn a_second_session_steps_up_with_totp_before_changing_methods() {
    let app = app("").await;
    let user = create_user("stp").await;
    let (first, required) = open_session(&app, &user).await;
    assert!(!required, "the first method needs only the password");
    let secret = register_totp(&app, &first).await;
    // The session that confirmed a method has proven it: it goes on without a step-up.
    let address = register_email(&app, &first).await;

    let (second, required) = open_session(&app, &user).await;
    assert!(required);
    let overview = app
        .get("/api/v1/enrollment", Some(&second))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(overview["step_up_required"], true);
    assert_eq!(overview["totp"], true, "the overview stays readable");
    assert_eq!(
        overview["step_up_methods"],
        json!(["totp", "email", "registration_code"])
    );
    assert_changes_refused(&app, &second).await;
    assert_eq!(methods(&app, &user).await.len(), 2, "nothing changed");

    let wrong = step_up(&app, &second, "totp", "000000")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error().error, "invalid_code");
    let malformed = step_up(&app, &second, "totp", "12")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error().error, "invalid_code");
    let never_sent = step_up(&app, &second, "email", "12345678")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(never_sent.error().error, "invalid_code");

    let now = settle_totp_step().await;
    let code = totp::code_at(&secret, now);
    step_up(&app, &second, "totp", &code)
        .await
        .expect(StatusCode::NO_CONTENT);
    let overview = app
        .get("/api/v1/enrollment", Some(&second))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(overview["step_up_required"], false);

    // Spent: the same code does not step up a third session.
    let (third, _) = open_session(&app, &user).await;
    step_up(&app, &third, "totp", &code)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_changes_refused(&app, &third).await;

    // The second session may now remove, and the removed address and AD mail are told.
    app.delete("/api/v1/enrollment/email", Some(&second))
        .await
        .expect(StatusCode::NO_CONTENT);
    for to in [address.as_str(), &ad_mail(&user)] {
        let notice = wait_for_latest(to, "removed").await;
        assert!(notice.code_in().is_none());
    }
    assert_eq!(methods(&app, &user).await, ["totp"]);
    let audit = audit_of(&app, &user).await;
    assert!(
        audit
            .iter()
            .any(|(e, o, _)| e == "step_up" && o == "success"),
        "{audit:?}"
    );
}

/// Takes the mails to `to` until one whose subject contains `subject` (earlier notices of the
/// same test are skipped).
async fn wait_for_latest(to: &str, subject: &str) -> crate::mail::Received {
    for _ in 0..6 {
        let mail = wait_for_mail(to).await;
        if mail.subject.contains(subject) {
            return mail;
        }
    }
    panic!("no mail to {to} about {subject:?}");
}

#[tokio::test]
async fn a_step_up_by_emailed_code_is_single_use() {
    let app = app("").await;
    let user = create_user("ste").await;
    let (first, _) = open_session(&app, &user).await;
    let address = register_email(&app, &first).await;

    let (second, required) = open_session(&app, &user).await;
    assert!(required);
    app.post("/api/v1/enrollment/step-up/email", json!({}), Some(&second))
        .await
        .expect(StatusCode::ACCEPTED);
    let mail = wait_for_mail(&address).await;
    let code = mail.code_in().expect("a step-up code");
    step_up(&app, &second, "email", &code)
        .await
        .expect(StatusCode::NO_CONTENT);
    // Spent, in this session and in any other.
    step_up(&app, &second, "email", &code)
        .await
        .expect(StatusCode::BAD_REQUEST);
    let (third, _) = open_session(&app, &user).await;
    let reused = step_up(&app, &third, "email", &code)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(reused.error().error, "invalid_code");

    // The stepped-up session adds an authenticator app.
    register_totp(&app, &second).await;
    assert_eq!(methods(&app, &user).await.len(), 2);
}

/// `sspr-bridge registration-code USER`, in process: the code it printed.
async fn issue_code(app: &TestApp, user: &TestUser) -> String {
    let config = harness::config_layers(&[&app.database.section(), &smtp_section()]);
    let mut out = Vec::new();
    sspr_bridge::cli::registration_codes::run(&config, &user.sam, &mut out)
        .await
        .expect("registration code issued");
    let out = String::from_utf8(out).unwrap();
    let code = out
        .split_whitespace()
        .find(|w| w.len() == 19 && w.matches('-').count() == 3)
        .unwrap_or_else(|| panic!("no code in {out:?}"))
        .to_owned();
    // Not digits, so searched for as text (as shown, and as stored once normalised).
    harness::remember_secret("registration-code", &code);
    harness::remember_secret("registration-code", &code.replace('-', ""));
    code
}

#[tokio::test]
async fn a_registration_code_stands_in_for_a_step_up_once() {
    let app = app("").await;
    let user = create_user("rgc").await;
    let (first, _) = open_session(&app, &user).await;
    register_totp(&app, &first).await;

    let code = issue_code(&app, &user).await;
    let (second, _) = open_session(&app, &user).await;
    let wrong = step_up(&app, &second, "registration_code", "ABCD-EFGH-JKMN-PQRS")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error().error, "invalid_code");
    step_up(
        &app,
        &second,
        "registration_code",
        &code.to_lowercase().replace('-', " "),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.delete("/api/v1/enrollment/totp", Some(&second))
        .await
        .expect(StatusCode::NO_CONTENT);

    let (third, _) = open_session(&app, &user).await;
    step_up(&app, &third, "registration_code", &code)
        .await
        .expect(StatusCode::BAD_REQUEST);

    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    assert!(
        rows.iter()
            .any(|r| r.event.event.as_str() == "registration_code_issued"
                && r.event.actor.as_deref() == Some("command-line")
                && r.event.sam_account_name.as_deref() == Some(&user.sam)),
        "the command line's code is audited"
    );
    let db = app.database.contents().await;
    assert!(
        !crate::client::contains(&db, code.replace('-', "").as_bytes()),
        "stored hashed"
    );
}

#[tokio::test]
async fn wrong_step_up_codes_end_the_session_and_count_against_the_user() {
    let app = app("").await;
    let user = create_user("stw").await;
    let (first, _) = open_session(&app, &user).await;
    register_totp(&app, &first).await;
    let (second, _) = open_session(&app, &user).await;
    let mut last = None;
    for _ in 0..5 {
        let answer = step_up(&app, &second, "registration_code", "nonsense").await;
        if answer.status != StatusCode::BAD_REQUEST {
            last = Some(answer);
            break;
        }
        assert_eq!(answer.error().error, "invalid_code");
    }
    let ended = match last {
        Some(answer) => answer,
        None => app.get("/api/v1/enrollment", Some(&second)).await,
    };
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED, "{}", ended.body);
    let failures = audit_of(&app, &user)
        .await
        .into_iter()
        .filter(|(e, o, _)| e == "verification" && o == "failure")
        .count();
    assert!(failures >= 3, "{failures}");
}

#[tokio::test]
async fn a_replaced_address_and_ad_mail_hear_of_the_change() {
    let app = app("").await;
    let user = create_user("rpl").await;
    let (token, _) = open_session(&app, &user).await;
    let old = register_email(&app, &token).await;
    wait_for_latest(&ad_mail(&user), "added").await;

    let new = unique_address();
    app.post(
        "/api/v1/enrollment/email",
        json!({"address": new}),
        Some(&token),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let code = wait_for_mail(&new).await.code_in().expect("code");
    app.post(
        "/api/v1/enrollment/email/confirm",
        json!({"code": code}),
        Some(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    for to in [old.as_str(), new.as_str(), &ad_mail(&user)] {
        let notice = wait_for_latest(to, "added").await;
        assert!(notice.code_in().is_none(), "{to}");
    }

    // A TOTP-only change reaches AD mail too.
    register_totp(&app, &token).await;
    wait_for_latest(&ad_mail(&user), "added").await;
}

#[tokio::test]
async fn a_totp_only_user_hears_of_a_reset_at_ad_mail() {
    let app = app("").await;
    let user = create_user("tor").await;
    let token = sign_in(&app, &user).await;
    let secret = register_totp(&app, &token).await;
    wait_for_latest(&ad_mail(&user), "added").await;

    let flow = start_flow(&app, &user.sam).await;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Told-At-Ad-Mail-4")
        .await
        .expect(StatusCode::NO_CONTENT);
    let notice = wait_for_latest(&ad_mail(&user), "reset").await;
    assert!(!notice.text.contains("Told-At-Ad-Mail-4"));
}

#[tokio::test]
async fn registration_sessions_end_with_a_reset() {
    let app = app("").await;
    let user = create_user("sre").await;
    let (first, _) = open_session(&app, &user).await;
    let secret = register_totp(&app, &first).await;
    let (second, _) = open_session(&app, &user).await;

    let flow = start_flow(&app, &user.sam).await;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Ends-Sessions-Pass-5")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Ends-Sessions-Pass-5")
        .await
        .expect("new password binds");
    for token in [&first, &second] {
        app.get("/api/v1/enrollment", Some(token))
            .await
            .expect(StatusCode::UNAUTHORIZED);
        app.delete("/api/v1/enrollment/totp", Some(token))
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(methods(&app, &user).await, ["totp"]);
}

#[tokio::test]
async fn outside_the_allowed_networks_the_first_method_takes_a_registration_code() {
    // The test client comes from 127.0.0.1.
    let outside =
        app("[registration]\nallowed_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]").await;
    let user = create_user("anw").await;
    let (token, required) = open_session(&outside, &user).await;
    assert!(required, "no method yet, but from outside");
    let overview = outside
        .get("/api/v1/enrollment", Some(&token))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(overview["step_up_methods"], json!(["registration_code"]));
    assert_changes_refused(&outside, &token).await;
    step_up(&outside, &token, "totp", "123456")
        .await
        .expect(StatusCode::BAD_REQUEST);
    let code = issue_code(&outside, &user).await;
    step_up(&outside, &token, "registration_code", &code)
        .await
        .expect(StatusCode::NO_CONTENT);
    register_totp(&outside, &token).await;
    assert_eq!(methods(&outside, &user).await, ["totp"]);

    let inside = app("[registration]\nallowed_networks = [\"127.0.0.0/8\"]").await;
    let fresh = create_user("anx").await;
    let (token, required) = open_session(&inside, &fresh).await;
    assert!(
        !required,
        "from inside, the password is enough for the first method"
    );
    register_totp(&inside, &token).await;
}

#[tokio::test]
async fn with_the_licence_off_only_operators_register_and_only_an_authenticator() {
    let group = harness::create_group(&harness::unique_name("Helpdesk ")).await;
    let operator = create_user("opr").await;
    harness::add_member(&group, &operator.dn).await;
    // No [licence]: self-service is off.
    let app = test_app(&format!(
        "{}\n[helpdesk]\ngroup_dn = {group:?}\n",
        smtp_section()
    ))
    .await;

    let user = create_user("nlc").await;
    let refused = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": user.password}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "licence_required");
    let wrong = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": "wrong-password"}),
            None,
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.error().error,
        "invalid_credentials",
        "the password first"
    );
    app.post("/api/v1/reset", json!({"username": user.sam}), None)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(methods(&app, &user).await.is_empty());

    let (token, required) = open_session(&app, &operator).await;
    assert!(!required);
    let email = app
        .post(
            "/api/v1/enrollment/email",
            json!({"address": unique_address()}),
            Some(&token),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(email.error().error, "forbidden");
    register_totp(&app, &token).await;
    assert_eq!(methods(&app, &operator).await, ["totp"]);
    // Announced to the operator's AD mail.
    wait_for_latest(&ad_mail(&operator), "added").await;
}

/// The attack of issue 11, finding 1, through the helpdesk: the operator resets the caller to a
/// temporary password (must change). The caller's registration session ends with it, and whoever
/// reads the temporary password cannot register with it.
#[tokio::test]
async fn a_helpdesk_temporary_password_registers_nothing_and_ends_sessions() {
    let desk = crate::helpdesk::desk("").await;
    let (caller, secret) = crate::helpdesk::caller_with_totp(&desk).await;
    let (open, _) = open_session(&desk.app, &caller).await;

    let operator = desk.operator_token().await;
    let now = settle_totp_step().await;
    desk.app
        .post(
            &format!("/api/v1/helpdesk/users/{}/verify", caller.sam),
            json!({"method": "totp", "code": totp::code_at(&secret, now)}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK);
    let temporary = desk
        .app
        .post(
            &format!("/api/v1/helpdesk/users/{}/reset", caller.sam),
            json!({"deliver": "operator"}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK)
        .json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();

    desk.app
        .get("/api/v1/enrollment", Some(&open))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let refused = desk
        .app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": caller.sam, "password": temporary}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "password_change_required");
    assert_eq!(methods(&desk.app, &caller).await, ["totp"], "nothing added");
}

/// The command itself: prints a code once for a real account, and fails for anything else.
#[tokio::test]
async fn the_registration_code_command_prints_a_code_and_audits_it() {
    use sspr_bridge::domain::store::AuditLog;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::cli::write_config(dir.path(), "");
    let key = crate::cli::gen_key();
    let user = create_user("rcc").await;
    let run = |login: &str| {
        let output = harness::service_command()
            .args(["--config", config.to_str().unwrap(), "migrate"])
            .env("SSPR__SECURITY__SECRET_KEY", &key)
            .output()
            .expect("migrate");
        assert!(output.status.success());
        let output = harness::service_command()
            .args([
                "--config",
                config.to_str().unwrap(),
                "registration-code",
                login,
            ])
            .env("SSPR__SECURITY__SECRET_KEY", &key)
            .output()
            .expect("run sspr-bridge");
        harness::keep_service_log("registration-code", &output.stderr);
        output
    };

    let issued = run(&user.sam);
    let out = String::from_utf8_lossy(&issued.stdout).into_owned();
    assert!(issued.status.success(), "{out}");
    let code = out
        .split_whitespace()
        .find(|w| w.len() == 19 && w.matches('-').count() == 3)
        .unwrap_or_else(|| panic!("no code in {out:?}"))
        .to_owned();
    // Not digits, so searched for as text (as shown, and as stored once normalised).
    harness::remember_secret("registration-code", &code);
    harness::remember_secret("registration-code", &code.replace('-', ""));
    assert!(
        !String::from_utf8_lossy(&issued.stderr).contains(&code),
        "printed once, never logged"
    );

    let unknown = run("nobody-of-that-name");
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no enabled account"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    let store = sspr_bridge::store::Store::connect(
        &format!("sqlite://{}/sspr.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let rows = store.since(Timestamp::from_millis(0), 100).await.unwrap();
    store.close().await;
    assert!(
        rows.iter()
            .any(|r| r.event.event.as_str() == "registration_code_issued"
                && r.event.actor.as_deref() == Some("command-line")
                && r.event.sam_account_name.as_deref() == Some(&user.sam)),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_method_due_for_reconfirmation_steps_up_and_counts_again() {
    let app = app("[registration]\nreconfirm_days = 1\n").await;
    let user = create_user("srd").await;
    let (first, _) = open_session(&app, &user).await;
    let secret = register_totp(&app, &first).await;
    crate::notices::age_registration(&app, &user, 2).await;

    let (second, required) = open_session(&app, &user).await;
    assert!(required);
    let overview = app
        .get("/api/v1/enrollment", Some(&second))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(overview["reconfirm_due"], true);
    assert_eq!(
        overview["step_up_methods"],
        json!(["totp", "registration_code"])
    );
    let now = settle_totp_step().await;
    step_up(&app, &second, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::NO_CONTENT);
    let overview = app
        .get("/api/v1/enrollment", Some(&second))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(overview["reconfirm_due"], false, "{overview}");
    assert_eq!(overview["step_up_required"], false);
}
