//! The password change with the current one (`/change`, `POST /api/v1/password/change`) against
//! the real Samba DC: accounts that must change (773) or whose password expired (532) change it
//! and then bind with the new password only; the DC's own history refuses a reused one; wrong
//! current passwords never lock the account. All with the licence flag off, where a change stays
//! open.

use axum::http::StatusCode;
use serde_json::json;

use crate::client::{Answer, TestApp, test_app};
use crate::harness::{TestUser, bind, create_user, env, read_attr, set_attr};
use crate::mail::{smtp_section, wait_for_mail};
use crate::pages::{Browser, alert, assert_page};
use crate::selfservice::audit_events;

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{}\n{extra}", smtp_section())).await
}

async fn change(app: &TestApp, login: &str, current: &str, new: &str) -> Answer {
    let body = json!({"username": login, "current_password": current, "new_password": new});
    app.post("/api/v1/password/change", body, None).await
}

/// AD's data code of a refused bind (`773`, `532`, `52e`), or `None` when it binds.
async fn bind_code(user: &TestUser, password: &str) -> Option<String> {
    let (_, text) = bind(&user.dn, password).await.err()?;
    let code = text.split("data ").nth(1)?.split(',').next()?;
    Some(code.trim().to_owned())
}

/// Makes the password of `user` expired (532) on the test DC. pwdLastSet takes only 0 or -1
/// over LDAP, and Samba treats a maximum age under a day as none, so the DC's own database is
/// written directly (the tests' configuration talks to this DC only).
pub(crate) async fn expire_password(user: &TestUser) {
    const SCRIPT: &str = "import sys, ldb\n\
        db = ldb.Ldb(sys.argv[1], options=['modules:'])\n\
        m = ldb.Message(); m.dn = ldb.Dn(db, sys.argv[2])\n\
        m['pwdLastSet'] = ldb.MessageElement('130000000000000000', ldb.FLAG_MOD_REPLACE, 'pwdLastSet')\n\
        db.modify(m)\n";
    let realm = env("SSPR_TEST_BASE_DN").to_uppercase();
    let partition = format!("{}/private/sam.ldb.d/{realm}.ldb", env("SSPR_TEST_DC1_DIR"));
    let out = tokio::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT, &partition, &user.dn])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn new_password() -> String {
    format!("Changed-{}-Pw2!", rand::random::<u16>())
}

#[tokio::test]
async fn a_must_change_account_changes_its_password_and_may_register_again() {
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}",
        smtp_section()
    ))
    .await;
    let user = create_user("chg").await;
    set_attr(&user.dn, "pwdLastSet", "0").await;
    assert_eq!(
        bind_code(&user, &user.password).await.as_deref(),
        Some("773")
    );
    let signin = json!({"username": user.sam, "password": user.password});
    let refused = app.post("/api/v1/enrollment/session", signin, None).await;
    refused.expect(StatusCode::FORBIDDEN);

    let new = new_password();
    change(&app, &user.sam, &user.password, &new)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(bind_code(&user, &new).await, None, "the new password binds");
    assert_eq!(
        bind_code(&user, &user.password).await.as_deref(),
        Some("52e"),
        "the old one no longer does"
    );
    assert_ne!(
        read_attr(&user.dn, "pwdLastSet").await.as_deref(),
        Some("0")
    );
    // After the change, registration takes the new password.
    let signin = json!({"username": user.sam, "password": new});
    app.post("/api/v1/enrollment/session", signin, None)
        .await
        .expect(StatusCode::OK);
    let mail = wait_for_mail(&format!("{}@mail.test", user.sam)).await;
    assert_eq!(mail.subject, "Your password was changed");
    assert!(!mail.text.contains(&new) && !mail.text.contains(&user.password));
    let metrics = sspr_bridge::metrics::render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sspr_flows_completed_total{")
                && l.contains("kind=\"password_changed\"")),
        "{metrics}"
    );
    let events = audit_events(&app).await;
    assert!(
        events.contains(&(
            "password_changed".into(),
            "success".into(),
            Some(user.sam.clone())
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_expired_account_changes_its_password_on_the_page_without_the_licence() {
    let app = app("").await;
    let user = create_user("chx").await;
    expire_password(&user).await;
    assert_eq!(
        bind_code(&user, &user.password).await.as_deref(),
        Some("532")
    );

    let mut browser = Browser::new(&app);
    let form = browser.get("/change").await;
    assert_page(&form, StatusCode::OK, "Change your password");
    // History is listed: AD applies it to every change.
    assert!(form.body.contains("data-rule=\"history\""), "{}", form.body);
    let new = new_password();
    let done = browser
        .submit(
            &form,
            "/change",
            &[
                ("username", &user.sam),
                ("current_password", &user.password),
                ("new_password", &new),
                ("confirm_password", &new),
            ],
        )
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/change/done"));
    assert_page(&done, StatusCode::OK, "Your password has been changed");
    // Reload of the done page sends nothing again.
    let again = browser.get("/change/done").await;
    assert_page(&again, StatusCode::OK, "Your password has been changed");
    assert_eq!(bind_code(&user, &new).await, None, "the new password binds");
    assert_eq!(
        bind_code(&user, &user.password).await.as_deref(),
        Some("52e")
    );
    // The home page offers it with the licence flag off.
    let home = browser.get("/").await;
    assert!(
        home.body.contains("href=\"/change?lang=en\""),
        "{}",
        home.body
    );
}

#[tokio::test]
async fn a_wrong_current_password_shows_the_form_again_and_changes_nothing() {
    let app = app("").await;
    let user = create_user("chw").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/change").await;
    let new = new_password();
    let refused = browser
        .submit(
            &form,
            "/change",
            &[
                ("username", &user.sam),
                ("current_password", "Wrong-Password-1!"),
                ("new_password", &new),
                ("confirm_password", &new),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(alert(&refused).contains("The username or password is wrong"));
    assert!(bind(&user.dn, &user.password).await.is_ok());
}

#[tokio::test]
async fn the_dc_history_refuses_a_reused_password_on_change() {
    let app = app("").await;
    let user = create_user("chh").await;
    let first = new_password();
    change(&app, &user.sam, &user.password, &first)
        .await
        .expect(StatusCode::NO_CONTENT);
    // Back to the password it had: Samba keeps 24 in the history, and a change respects it.
    let refused = change(&app, &user.sam, &first, &user.password)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.error();
    assert_eq!(body.error, "password_policy");
    assert_eq!(
        body.rules
            .iter()
            .map(|r| r.rule.as_str())
            .collect::<Vec<_>>(),
        ["history_or_min_age"]
    );
    assert_eq!(bind_code(&user, &first).await, None, "nothing changed");
}

#[tokio::test]
async fn wrong_current_passwords_never_lock_the_account_and_answer_like_unknown_names() {
    // A throttle far above the lockout threshold: only the guard on the DC's count stands.
    let app = app("[throttle]\nsignin_max_failures = 50\n").await;
    let user = create_user("chl").await;
    let threshold: u32 = read_attr(&env("SSPR_TEST_BASE_DN"), "lockoutThreshold")
        .await
        .and_then(|v| v.parse().ok())
        .expect("the test domain has a lockout threshold");
    let new = new_password();
    let unknown = change(&app, "nobody-here-at-all", &user.password, &new)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    for _ in 0..threshold + 3 {
        let answer = change(&app, &user.sam, "Wrong-Password-1!", &new)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.body, unknown.body);
    }
    let lockout = read_attr(&user.dn, "lockoutTime").await;
    assert!(
        matches!(lockout.as_deref(), None | Some("0")),
        "{lockout:?}"
    );
    let count: u32 = read_attr(&user.dn, "badPwdCount")
        .await
        .map_or(0, |v| v.parse().unwrap());
    assert_eq!(count, threshold - 1);
    assert!(bind(&user.dn, &user.password).await.is_ok());
    assert!(bind(&user.dn, &new).await.is_err(), "nothing was changed");
}
