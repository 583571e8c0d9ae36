//! Who may use self-service, against the real Samba DC: `policy.scope` (all, a group with nested
//! membership, none) and protected accounts, refused unless `policy.allow_protected` lists them,
//! whose resets are then mailed to `notify.admins`.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sspr_bridge::domain::totp;

use crate::client::{Answer, TestApp, test_app};
use crate::harness::{
    TestUser, add_member, bind, create_group, create_user, env, remove_member, unique_name,
};
use crate::mail::{smtp_section, unique_address, wait_for_mail};
use crate::pages::{Browser, alert, assert_page};
use crate::selfservice::{
    audit_events, register_totp, set_password, settle_totp_step, sign_in, start_flow,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{}\n{extra}", smtp_section())).await
}

fn scope_group(group_dn: &str) -> String {
    format!("[policy]\nscope = \"group\"\ngroup_dn = {group_dn:?}\n")
}

/// A `[database]` layer for the database of `app`, so two configurations share registrations.
fn same_database(app: &TestApp) -> String {
    app.database.section()
}

async fn try_sign_in(app: &TestApp, user: &TestUser, password: &str) -> Answer {
    app.post(
        "/api/v1/enrollment/session",
        json!({"username": user.sam, "password": password}),
        None,
    )
    .await
}

/// A start's answer with the flow id taken out (it differs every time), and the flow id.
async fn start(app: &TestApp, login: &str) -> (Value, String) {
    let answer = app
        .post("/api/v1/reset", json!({"username": login}), None)
        .await
        .expect(StatusCode::CREATED);
    let mut body = answer.json();
    let flow = body["flow"].take().as_str().unwrap().to_owned();
    assert_eq!(flow.len(), 43);
    (body, flow)
}

async fn verify(app: &TestApp, flow: &str, code: &str) -> Answer {
    app.post(
        &format!("/api/v1/reset/{flow}/verify"),
        json!({"method": "totp", "code": code}),
        None,
    )
    .await
}

/// A start for `login` verified with the current code of `secret`: must be a decoy, answering
/// exactly as a start for a username nobody has does to a wrong code.
async fn assert_decoy(app: &TestApp, login: &str, secret: &[u8]) {
    let (body, flow) = start(app, login).await;
    let (unknown_body, unknown_flow) = start(app, &unique_name("nobody")).await;
    assert_eq!(body, unknown_body);
    let now = settle_totp_step().await;
    let refused = verify(app, &flow, &totp::code_at(secret, now))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let unknown = verify(app, &unknown_flow, "000000")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(refused.error().error, "invalid_code");
    assert_eq!(refused.body, unknown.body);
    set_password(app, &flow, "Never-Written-7!")
        .await
        .expect(StatusCode::FORBIDDEN);
}

/// A reset of `user` end to end with the authenticator `secret`.
async fn reset(app: &TestApp, user: &TestUser, secret: &[u8], new_password: &str) {
    let flow = start_flow(app, &user.sam).await;
    let now = settle_totp_step().await;
    verify(app, &flow, &totp::code_at(secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(app, &flow, new_password)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, new_password)
        .await
        .expect("new password binds");
}

#[tokio::test]
async fn a_group_scope_admits_nested_members_only() {
    let outer = create_group(&unique_name("scope")).await;
    let inner = create_group(&unique_name("scopein")).await;
    add_member(&outer, &inner).await;
    let member = create_user("scm").await;
    add_member(&inner, &member.dn).await;
    let leaver = create_user("scl").await;
    add_member(&inner, &leaver.dn).await;
    let outsider = create_user("sco").await;
    let app = app(&scope_group(&outer)).await;

    // In scope through the nested group: registration and reset work.
    let token = sign_in(&app, &member).await;
    let secret = register_totp(&app, &token).await;
    reset(&app, &member, &secret, "Scoped-Reset-Pass-1").await;

    // Out of scope: told so once the password is right; a wrong one is just wrong.
    let refused = try_sign_in(&app, &outsider, &outsider.password)
        .await
        .expect(StatusCode::FORBIDDEN)
        .error();
    assert_eq!(refused.error, "not_in_scope");
    assert!(
        refused.message.contains("not enabled for your account"),
        "{}",
        refused.message
    );
    let wrong = try_sign_in(&app, &outsider, "Wrong-Password-1")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error().error, "invalid_credentials");

    // Registered while in scope, then taken out: a reset is a decoy, whatever code it gets.
    let token = sign_in(&app, &leaver).await;
    let secret = register_totp(&app, &token).await;
    remove_member(&inner, &leaver.dn).await;
    assert_decoy(&app, &leaver.sam, &secret).await;
    bind(&leaver.dn, &leaver.password).await.expect("untouched");

    let events = audit_events(&app).await;
    for (sam, event, outcome) in [
        (&outsider.sam, "sign_in", "denied"),
        (&outsider.sam, "sign_in", "failure"),
        (&leaver.sam, "flow_started", "decoy"),
        (&member.sam, "password_reset", "success"),
    ] {
        assert!(
            events
                .iter()
                .any(|(e, o, s)| e == event && o == outcome && s.as_ref() == Some(sam)),
            "{event}/{outcome} for {sam} in {events:?}"
        );
    }

    // The same accounts with scope = "all": everyone may sign in.
    let everyone = self::app("[policy]\nscope = \"all\"").await;
    sign_in(&everyone, &outsider).await;
}

#[tokio::test]
async fn scope_none_lets_nobody_in() {
    let user = create_user("scn").await;
    let open = app("").await;
    let token = sign_in(&open, &user).await;
    let secret = register_totp(&open, &token).await;

    // The same database, so the user is registered there too: only the scope refuses.
    let closed = app(&format!(
        "[policy]\nscope = \"none\"\n{}",
        same_database(&open)
    ))
    .await;
    let refused = try_sign_in(&closed, &user, &user.password)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "not_in_scope");
    assert_decoy(&closed, &user.sam, &secret).await;
    bind(&user.dn, &user.password).await.expect("untouched");
}

#[tokio::test]
async fn the_registration_page_says_why_and_links_the_helpdesk() {
    let user = create_user("scp").await;
    let app = app("[policy]\nscope = \"none\"").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/register").await;
    let refused = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(
        &refused,
        StatusCode::FORBIDDEN,
        "mailto:helpdesk@example.test",
    );
    assert!(
        alert(&refused).contains("Self-service is not enabled for your account."),
        "{}",
        refused.body
    );
    assert!(!browser.jar.contains_key("sspr_session"));
}

/// A user in Domain Admins, taken out again when dropped (also when the test fails).
struct DomainAdmin {
    user: TestUser,
    group: String,
}

impl DomainAdmin {
    async fn new() -> Self {
        let group = format!("CN=Domain Admins,CN=Users,{}", env("SSPR_TEST_BASE_DN"));
        let user = create_user("scadm").await;
        add_member(&group, &user.dn).await;
        Self { user, group }
    }
}

impl Drop for DomainAdmin {
    fn drop(&mut self) {
        let (group, dn) = (self.group.clone(), self.user.dn.clone());
        // Drop cannot await; a thread with its own runtime can.
        let removed = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(remove_member(&group, &dn));
        })
        .join();
        if removed.is_err() {
            eprintln!("could not take {} out of Domain Admins", self.user.dn);
        }
    }
}

#[tokio::test]
async fn protected_accounts_are_refused_unless_allow_listed_and_admins_hear_of_resets() {
    let admin = DomainAdmin::new().await;
    let user = &admin.user;

    // Allow-listed by DN. AdminSDHolder takes delegated rights away from protected accounts, so
    // a real deployment must grant its service account the reset right on AdminSDHolder; this
    // app binds as Administrator, which has it, whatever account the other tests use.
    let admins = unique_address();
    let allowed = app(&format!(
        "[policy]\nallow_protected = [{dn:?}]\n[notify]\nadmins = [{admins:?}]\n\
         [directory]\nbind_dn = {bind_dn:?}\nbind_password = {bind_pw:?}\n",
        dn = user.dn,
        bind_dn = env("SSPR_TEST_ADMIN_DN"),
        bind_pw = env("SSPR_TEST_ADMIN_PASSWORD"),
    ))
    .await;
    let token = sign_in(&allowed, user).await;
    let secret = register_totp(&allowed, &token).await;

    // Not allow-listed (the same registrations): refused at registration, a decoy at a reset.
    let app = app(&same_database(&allowed)).await;
    let refused = try_sign_in(&app, user, &user.password)
        .await
        .expect(StatusCode::FORBIDDEN)
        .error();
    assert_eq!(refused.error, "not_in_scope");
    assert!(
        refused
            .message
            .contains("not available for administrator accounts"),
        "{}",
        refused.message
    );
    assert_decoy(&app, &user.sam, &secret).await;
    bind(&user.dn, &user.password).await.expect("untouched");

    reset(&allowed, user, &secret, "Protected-Reset-Pass-2").await;
    let mail = wait_for_mail(&admins).await;
    assert_eq!(
        mail.subject,
        "The password of a protected account was reset through self-service"
    );
    assert!(mail.text.contains(&user.sam), "{}", mail.text);
    assert!(mail.html.contains(&user.sam), "{}", mail.html);
    assert!(mail.code_in().is_none());
    for part in [&mail.text, &mail.html] {
        assert!(!part.contains("Protected-Reset-Pass-2"), "{part}");
    }
}

#[tokio::test]
async fn never_reset_accounts_and_the_service_account_get_a_decoy() {
    let user = create_user("nvr").await;
    let open = app("").await;
    let token = sign_in(&open, &user).await;
    let secret = register_totp(&open, &token).await;

    // The same registrations, now with the account listed (in another case), and allow-listed
    // as protected too: the exclusion wins.
    let listed = app(&format!(
        "{}\n[policy]\nallow_protected = [{dn:?}]\n[directory]\nnever_reset = [{lower:?}]\n",
        same_database(&open),
        dn = user.dn,
        lower = user.dn.to_uppercase(),
    ))
    .await;
    for login in [
        user.sam.clone(),
        user.upn.to_uppercase(),
        format!("SSPR\\{}", user.sam),
    ] {
        let refused = listed
            .post(
                "/api/v1/enrollment/session",
                json!({"username": login, "password": user.password}),
                None,
            )
            .await
            .expect(StatusCode::FORBIDDEN)
            .error();
        assert_eq!(refused.error, "not_in_scope", "{login}");
        assert!(
            refused.message.contains("not enabled for your account"),
            "{}",
            refused.message
        );
    }
    assert_decoy(&listed, &user.sam, &secret).await;
    assert_decoy(&listed, &user.upn.to_uppercase(), &secret).await;
    bind(&user.dn, &user.password).await.expect("untouched");

    // The service account itself, with its own right password: refused like an out-of-scope
    // account, and a reset start answers as for a name nobody has.
    let service_dn = env("SSPR_TEST_SERVICE_DN");
    let service_password = env("SSPR_TEST_SERVICE_PASSWORD");
    let service_sam = crate::harness::read_attr(&service_dn, "sAMAccountName")
        .await
        .unwrap();
    let refused = listed
        .post(
            "/api/v1/enrollment/session",
            json!({"username": service_sam, "password": service_password}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN)
        .error();
    assert_eq!(refused.error, "not_in_scope");
    let (body, _) = start(&listed, &service_sam.to_uppercase()).await;
    let (unknown, _) = start(&listed, &unique_name("nobody")).await;
    assert_eq!(body, unknown);
    bind(&service_dn, &service_password)
        .await
        .expect("the service account's password is unchanged");

    // `listed` writes to the database of `open`.
    let events = audit_events(&open).await;
    assert!(
        events
            .iter()
            .any(|(e, o, s)| e == "flow_started" && o == "decoy" && s.as_ref() == Some(&user.sam)),
        "{events:?}"
    );
}
