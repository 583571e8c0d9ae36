//! The helpdesk API against the real Samba DC and SMTP server: operators in a nested AD group
//! verify a caller, then reset, unlock or clear registrations.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::totp;

use crate::client::{Answer, TestApp, contains, test_app};
use crate::harness::{
    TestDatabase, TestUser, add_member, bind, create_group, create_user, env, read_attr,
    read_binary_attr, remove_member, unique_name,
};
use crate::mail::{assert_no_mail, smtp_section, wait_for_mail};
use crate::selfservice::{register_email, register_totp, settle_totp_step, sign_in};

/// A helpdesk group with a nested tier group holding one operator, who registered an
/// authenticator app.
pub struct Desk {
    pub app: TestApp,
    pub group: String,
    /// The nested group the operator is a member of.
    pub tier: String,
    pub operator: TestUser,
    pub authenticator: Authenticator,
}

pub async fn desk(extra: &str) -> Desk {
    let group = create_group(&unique_name("Helpdesk ")).await;
    let tier1 = create_group(&unique_name("Tier1 ")).await;
    add_member(&group, &tier1).await;
    let operator = create_user("op").await;
    add_member(&tier1, &operator.dn).await;
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}\n[helpdesk]\ngroup_dn = {group:?}\n{extra}",
        smtp_section()
    ))
    .await;
    let authenticator = Authenticator::new(&operator).await;
    authenticator.register_in(&app.database).await;
    Desk {
        app,
        group,
        tier: tier1,
        operator,
        authenticator,
    }
}

/// An operator's own authenticator app, confirmed in the registrations store as `/register`
/// leaves it (the registration itself is proven by the enrollment tests). Hands out each time
/// step's code once, as a person reading the app would after the service spent the step.
pub struct Authenticator {
    secret: Vec<u8>,
    user: sspr_bridge::domain::ObjectGuid,
    sam: String,
    last_step: Mutex<u64>,
}

impl Authenticator {
    pub async fn new(user: &TestUser) -> Self {
        let raw = read_binary_attr(&user.dn, "objectGUID").await.unwrap();
        let secret = totp::new_secret().to_vec();
        // Never crosses the app's edge, so listed here for the secret scan of logs and databases.
        let base32 = totp::provisioning(&secret, "x", "x").secret;
        crate::harness::remember_secret("totp-secret", &base32);
        Self {
            secret,
            user: sspr_bridge::domain::ObjectGuid::from_ad_bytes(&raw).unwrap(),
            sam: user.sam.clone(),
            last_step: Mutex::new(0),
        }
    }

    /// Stores the app as a confirmed method of the operator in `database`.
    pub async fn register_in(&self, database: &TestDatabase) {
        use sspr_bridge::domain::store::{
            EnrolledMethod, MethodKind, RegistrationStore, new_method_id,
        };
        let config = crate::harness::config("");
        let keys = sspr_bridge::domain::secrets::Keys::new(config.security.secret_key.bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let method = EnrolledMethod {
            id: new_method_id(),
            kind: MethodKind::Totp,
            name: None,
            address: None,
            secret_sealed: Some(keys.seal(&self.secret, self.user.0.as_bytes())),
            last_step: None,
            confirmed_at: Some(Timestamp::from_millis(now)),
            created_at: Timestamp::from_millis(now),
            last_used_at: None,
        };
        let store = database.store().await;
        store
            .put_method(&self.user, &self.sam, &method)
            .await
            .unwrap();
        store.close().await;
    }

    /// A code of a step the service accepts now (one step of drift either way) and that this
    /// app has not handed out before; waits for the next step once all three are spent.
    pub async fn code(&self) -> String {
        loop {
            let now = settle_totp_step().await;
            let current = now / totp::STEP_SECS;
            let next = {
                let mut last = self.last_step.lock().unwrap();
                let step = (*last + 1).max(current - 1);
                (step <= current + 1).then(|| {
                    *last = step;
                    step
                })
            };
            if let Some(step) = next {
                return totp::code_at(&self.secret, step * totp::STEP_SECS);
            }
            tokio::time::sleep(Duration::from_secs(totp::STEP_SECS - now % totp::STEP_SECS)).await;
        }
    }
}

impl Desk {
    async fn sign_in_as(&self, user: &TestUser, password: &str) -> Answer {
        let code = self.authenticator.code().await;
        self.app
            .post(
                "/api/v1/helpdesk/session",
                json!({"username": user.sam, "password": password, "code": code}),
                None,
            )
            .await
    }

    pub async fn operator_token(&self) -> String {
        let answer = self
            .sign_in_as(&self.operator, &self.operator.password)
            .await
            .expect(StatusCode::OK);
        answer.json()["token"].as_str().unwrap().to_owned()
    }

    async fn post(&self, token: &str, path: &str, body: serde_json::Value) -> Answer {
        self.app
            .post(&format!("/api/v1/helpdesk/users/{path}"), body, Some(token))
            .await
    }
}

/// A caller who registered an authenticator app through self-service.
pub async fn caller_with_totp(desk: &Desk) -> (TestUser, Vec<u8>) {
    let user = create_user("call").await;
    let token = sign_in(&desk.app, &user).await;
    let secret = register_totp(&desk.app, &token).await;
    (user, secret)
}

async fn verify_totp(desk: &Desk, token: &str, user: &TestUser, secret: &[u8]) {
    let now = settle_totp_step().await;
    let answer = desk
        .post(
            token,
            &format!("{}/verify", user.sam),
            json!({"method": "totp", "code": totp::code_at(secret, now)}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.json(), json!({"verified": true}));
}

#[tokio::test]
async fn a_nested_group_member_signs_in_and_others_get_the_same_403() {
    let desk = desk("").await;
    desk.operator_token().await;

    let outsider = create_user("out").await;
    let mut bodies = Vec::new();
    for (user, password) in [
        (&outsider, outsider.password.as_str()),
        (&desk.operator, "wrong-password"),
        (&outsider, ""),
    ] {
        let answer = desk
            .sign_in_as(user, password)
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(answer.error().error, "forbidden");
        bodies.push(answer.body);
    }
    let unknown = desk
        .app
        .post(
            "/api/v1/helpdesk/session",
            json!({"username": "nobody-here", "password": "x"}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    bodies.push(unknown.body);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");

    // Without a group configured, the helpdesk is off for everyone.
    let off = test_app("").await;
    off.post(
        "/api/v1/helpdesk/session",
        json!({"username": desk.operator.sam, "password": desk.operator.password}),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let _ = desk.group;
}

#[tokio::test]
async fn operators_sign_in_with_their_own_authenticator_once_per_code() {
    let desk = desk("").await;
    let sign_in = |user: &TestUser, code: Option<String>| {
        let mut body = json!({"username": user.sam, "password": user.password});
        if let Some(code) = code {
            body["code"] = json!(code);
        }
        desk.app.post("/api/v1/helpdesk/session", body, None)
    };

    // A member with the right password but no authenticator of their own: told to register one.
    let newcomer = create_user("op2").await;
    add_member(&desk.group, &newcomer.dn).await;
    let refused = sign_in(&newcomer, Some("123456".to_owned()))
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "second_factor_required");
    assert!(refused.error().message.contains("/register"));

    // With one: the current code signs in, once.
    let code = desk.authenticator.code().await;
    let token = sign_in(&desk.operator, Some(code.clone()))
        .await
        .expect(StatusCode::OK)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.app
        .get("/api/v1/helpdesk/users/Administrator", Some(&token))
        .await
        .expect(StatusCode::OK);
    let wrong_password = desk
        .sign_in_as(&desk.operator, "wrong-password")
        .await
        .expect(StatusCode::FORBIDDEN);
    // A replayed, a wrong and a missing code read exactly like a wrong password.
    for code in [Some(code), Some("000000".to_owned()), None] {
        let answer = sign_in(&desk.operator, code.clone())
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(answer.body, wrong_password.body, "{code:?}");
    }
    let rows = audit_rows(&desk.app).await;
    let sign_ins = |reason: &str| {
        rows.iter()
            .filter(|r| {
                r.event.as_str() == "helpdesk_sign_in" && r.reason.as_deref() == Some(reason)
            })
            .count()
    };
    assert_eq!(sign_ins("no_second_factor"), 1);
    assert_eq!(sign_ins("wrong_second_factor"), 3);

    // Turned off, the password alone is enough.
    let relaxed = crate::client::test_app(&format!(
        "[helpdesk]\ngroup_dn = {:?}\noperator_second_factor = false",
        desk.group
    ))
    .await;
    relaxed
        .post(
            "/api/v1/helpdesk/session",
            json!({"username": newcomer.sam, "password": newcomer.password}),
            None,
        )
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn verified_by_totp_the_operator_resets_to_a_temporary_password_that_must_change() {
    let desk = desk("").await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let token = desk.operator_token().await;

    let card = desk
        .app
        .get(
            &format!("/api/v1/helpdesk/users/{}", caller.upn),
            Some(&token),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(card["sam_account_name"], caller.sam.as_str());
    assert_eq!(card["totp"], true);
    assert_eq!(card["enabled"], true);
    assert_eq!(card["locked"], false);
    assert_eq!(card["actionable"], true);
    assert!(card["registered_at_ms"].is_i64());
    assert!(
        card["recent_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "enrollment_added")
    );

    // Not yet verified: refused, AD untouched.
    let refused = desk
        .post(
            &token,
            &format!("{}/reset", caller.sam),
            json!({"deliver": "operator"}),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "not_verified");
    bind(&caller.dn, &caller.password).await.expect("untouched");

    verify_totp(&desk, &token, &caller, &secret).await;
    let card = desk
        .app
        .get(
            &format!("/api/v1/helpdesk/users/{}", caller.sam),
            Some(&token),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(card["verified_by"], "registered");
    assert!(
        card["recent_events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"] != "helpdesk_lookup"),
        "operators' look-ups do not crowd the caller's events"
    );
    let answer = desk
        .post(
            &token,
            &format!("{}/reset", caller.sam),
            json!({"deliver": "operator"}),
        )
        .await
        .expect(StatusCode::OK);
    let temporary = answer.json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reads_aloud(&temporary), "{temporary}");

    let (rc, text) = bind(&caller.dn, &temporary)
        .await
        .expect_err("must change first");
    assert!(
        rc == 49 && text.contains("773"),
        "the temporary password is right but must change: {text}"
    );
    assert_eq!(
        read_attr(&caller.dn, "pwdLastSet").await.as_deref(),
        Some("0")
    );
    assert!(
        bind(&caller.dn, &caller.password).await.is_err(),
        "old password fails"
    );

    let events = crate::selfservice::audit_events(&desk.app).await;
    assert!(
        events.iter().any(|(e, o, sam)| e == "helpdesk_reset"
            && o == "success"
            && sam.as_deref() == Some(&*caller.sam)),
        "{events:?}"
    );
    let db = desk.app.database.contents().await;
    assert!(
        !contains(&db, temporary.as_bytes()),
        "the temporary password is stored nowhere"
    );
    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter().any(|r| r.event.as_str() == "helpdesk_reset"
            && r.actor.as_deref() == Some(&*desk.operator.sam)
            && r.reason
                .as_deref()
                .is_some_and(|reason| reason.contains("verified_by=registered"))),
        "operator identity recorded"
    );
}

async fn audit_rows(app: &TestApp) -> Vec<sspr_bridge::domain::store::AuditEvent> {
    use sspr_bridge::domain::store::AuditLog;
    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    rows.into_iter().map(|r| r.event).collect()
}

#[tokio::test]
async fn verified_by_an_emailed_code_the_operator_unlocks_a_real_lockout() {
    let desk = desk("").await;
    let caller = create_user("eml").await;
    let token = sign_in(&desk.app, &caller).await;
    let address = register_email(&desk.app, &token).await;
    for _ in 0..6 {
        let _ = bind(&caller.dn, "wrong-password").await;
    }
    assert!(bind(&caller.dn, &caller.password).await.is_err(), "locked");

    let operator = desk.operator_token().await;
    let card = desk
        .app
        .get(
            &format!("/api/v1/helpdesk/users/{}", caller.sam),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(card["locked"], true);
    assert!(card["locked_since_ms"].is_i64());
    assert!(card["email"].as_str().unwrap().contains("***@mail.test"));

    desk.post(&operator, &format!("{}/email-code", caller.sam), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    let mail = wait_for_mail(&address).await;
    let code = mail.code_in().expect("helpdesk code mailed");
    desk.post(
        &operator,
        &format!("{}/verify", caller.sam),
        json!({"method": "email", "code": code}),
    )
    .await
    .expect(StatusCode::OK);
    desk.post(&operator, &format!("{}/unlock", caller.sam), json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&caller.dn, &caller.password)
        .await
        .expect("unlocked, password unchanged");
    let notice = wait_for_mail(&address).await;
    assert!(notice.code_in().is_none());
}

#[tokio::test]
async fn clearing_registrations_removes_the_methods() {
    let desk = desk("").await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let operator = desk.operator_token().await;
    verify_totp(&desk, &operator, &caller, &secret).await;
    let answer = desk
        .app
        .delete(
            &format!("/api/v1/helpdesk/users/{}/enrollment", caller.sam),
            Some(&operator),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    let card = desk
        .app
        .get(
            &format!("/api/v1/helpdesk/users/{}", caller.sam),
            Some(&operator),
        )
        .await
        .json();
    assert_eq!(card["totp"], false);
    assert_eq!(card["email"], serde_json::Value::Null);
}

#[tokio::test]
async fn protected_accounts_and_helpdesk_members_are_refused_unless_allow_listed() {
    let domain_admins = format!("CN=Domain Admins,CN=Users,{}", env("SSPR_TEST_BASE_DN"));
    let admin = create_user("adm").await;
    add_member(&domain_admins, &admin.dn).await;

    let desk = desk("require_verification = false").await;
    let operator = desk.operator_token().await;
    let card = desk
        .app
        .get(
            &format!("/api/v1/helpdesk/users/{}", admin.sam),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(card["actionable"], false);
    let refused = desk
        .post(
            &operator,
            &format!("{}/reset", admin.sam),
            json!({"reason": "caller insists", "deliver": "operator"}),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "forbidden");
    bind(&admin.dn, &admin.password).await.expect("untouched");

    // A fellow helpdesk member is refused too.
    let colleague = create_user("col").await;
    add_member(&desk.group, &colleague.dn).await;
    desk.post(
        &operator,
        &format!("{}/unlock", colleague.sam),
        json!({"reason": "asked"}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    // Allow-listed by DN: accepted.
    let allowed = crate::client::test_app(&format!(
        "{}\n[helpdesk]\ngroup_dn = {:?}\nrequire_verification = false\nallow_protected = [{:?}]",
        smtp_section(),
        desk.group,
        admin.dn
    ))
    .await;
    desk.authenticator.register_in(&allowed.database).await;
    let token = allowed
        .post(
            "/api/v1/helpdesk/session",
            json!({
                "username": desk.operator.sam,
                "password": desk.operator.password,
                "code": desk.authenticator.code().await,
            }),
            None,
        )
        .await
        .expect(StatusCode::OK)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = allowed
        .post(
            &format!("/api/v1/helpdesk/users/{}/reset", admin.sam),
            json!({"reason": "approved change 42", "deliver": "operator"}),
            Some(&token),
        )
        .await
        .expect(StatusCode::OK);
    let temporary = answer.json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rc, text) = bind(&admin.dn, &temporary).await.expect_err("must change");
    assert!(rc == 49 && text.contains("773"), "{text}");
    remove_member(&domain_admins, &admin.dn).await;
}

#[tokio::test]
async fn acting_unverified_needs_a_reason_and_can_be_forbidden() {
    let strict = desk("").await;
    let (caller, _) = caller_with_totp(&strict).await;
    let operator = strict.operator_token().await;
    let answer = strict
        .post(
            &operator,
            &format!("{}/unlock", caller.sam),
            json!({"reason": "no phone"}),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(answer.error().error, "not_verified");

    let lenient = desk("require_verification = false").await;
    let operator = lenient.operator_token().await;
    let answer = lenient
        .post(&operator, &format!("{}/unlock", caller.sam), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(answer.error().message.contains("reason"));
    lenient
        .post(
            &operator,
            &format!("{}/unlock", caller.sam),
            json!({"reason": "caller lost phone, ID checked in person"}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let rows = audit_rows(&lenient.app).await;
    assert!(
        rows.iter().any(|r| r.event.as_str() == "helpdesk_unlock"
            && r.reason
                .as_deref()
                .is_some_and(|x| x.contains("verified_by=unverified")
                    && x.contains("unverified: caller lost phone"))),
        "marked unverified in the audit"
    );
}

#[tokio::test]
async fn a_temporary_password_can_be_mailed_instead_of_shown() {
    let desk = desk("").await;
    let caller = create_user("mtp").await;
    let token = sign_in(&desk.app, &caller).await;
    let address = register_email(&desk.app, &token).await;
    let operator = desk.operator_token().await;
    desk.post(&operator, &format!("{}/email-code", caller.sam), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    let code = wait_for_mail(&address).await.code_in().unwrap();
    desk.post(
        &operator,
        &format!("{}/verify", caller.sam),
        json!({"method": "email", "code": code}),
    )
    .await
    .expect(StatusCode::OK);
    let answer = desk
        .post(
            &operator,
            &format!("{}/reset", caller.sam),
            json!({"deliver": "email"}),
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        answer.json().get("temporary_password").is_none(),
        "not shown to the operator"
    );
    let mail = wait_for_mail(&address).await;
    let temporary = mail
        .text
        .lines()
        .map(str::trim)
        .find(|l| reads_aloud(l))
        .expect("the temporary password, alone on its line")
        .to_owned();
    let (rc, text) = bind(&caller.dn, &temporary).await.expect_err("must change");
    assert!(rc == 49 && text.contains("773"), "{text}");
}

#[tokio::test]
async fn idle_operator_sessions_expire_and_sign_out_works() {
    let desk = desk("session_idle = \"1s\"").await;
    let token = desk.operator_token().await;
    desk.app
        .get("/api/v1/helpdesk/users/Administrator", Some(&token))
        .await
        .expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    desk.app
        .get("/api/v1/helpdesk/users/Administrator", Some(&token))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    let token = desk.operator_token().await;
    desk.app
        .send(crate::client::request(
            "DELETE",
            "/api/v1/helpdesk/session",
            None,
            Some(&token),
        ))
        .await
        .expect(StatusCode::NO_CONTENT);
    desk.app
        .get("/api/v1/helpdesk/users/Administrator", Some(&token))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // Signing out takes a live operator session, like every other operator call.
    let again = desk
        .app
        .send(crate::client::request(
            "DELETE",
            "/api/v1/helpdesk/session",
            None,
            Some(&token),
        ))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(again.error().error, "unauthorized");
    desk.app
        .get(
            "/api/v1/helpdesk/users/no-such-user-x",
            Some(&desk.operator_token().await),
        )
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_removed_operator_loses_the_session_at_the_next_check() {
    let desk = desk("membership_recheck = \"0s\"").await;
    let token = desk.operator_token().await;
    let card = |token: String| {
        let app = &desk.app;
        async move {
            app.get("/api/v1/helpdesk/users/Administrator", Some(&token))
                .await
        }
    };
    card(token.clone()).await.expect(StatusCode::OK);
    remove_member(&desk.tier, &desk.operator.dn).await;
    let ended = card(token.clone()).await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(ended.error().error, "unauthorized");
    // Ended for good, even once back in the group.
    add_member(&desk.tier, &desk.operator.dn).await;
    card(token).await.expect(StatusCode::UNAUTHORIZED);
    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter()
            .any(|r| r.event.as_str() == "helpdesk_session_ended"
                && r.actor.as_deref() == Some(&*desk.operator.sam)
                && r.reason.as_deref() == Some("not_in_helpdesk_group")),
        "{rows:?}"
    );
    // Back in the group, a new sign-in works.
    card(desk.operator_token().await)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn operators_have_their_own_limits_not_the_users_per_address_ones() {
    // One sign-in start per address for users; operators at the same address are not held by it.
    let desk = desk(
        "operator_max_sign_ins = 3\noperator_max_actions = 4\n[throttle]\nip_max_starts = 1\n\
         ip_max_verifications = 1",
    )
    .await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(desk.operator_token().await);
    }
    let over = desk
        .app
        .post(
            "/api/v1/helpdesk/session",
            json!({"username": desk.operator.sam, "password": desk.operator.password, "code": "000000"}),
            None,
        )
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.error().error, "throttled");
    // Counted per typed login: another name is not held by this one's count.
    desk.app
        .post(
            "/api/v1/helpdesk/session",
            json!({"username": "nobody-here", "password": "x"}),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN);

    // Requests count per operator account, whichever session makes them; a verification of a
    // caller is one of them and is not held by the users' per-address limit.
    verify_totp(&desk, &tokens[0], &caller, &secret).await;
    for token in &tokens[1..] {
        desk.app
            .get(
                &format!("/api/v1/helpdesk/users/{}", caller.sam),
                Some(token),
            )
            .await
            .expect(StatusCode::OK);
    }
    let lookup = format!("/api/v1/helpdesk/users/{}", caller.sam);
    desk.app
        .get(&lookup, Some(&tokens[0]))
        .await
        .expect(StatusCode::OK);
    let over = desk
        .app
        .get(&lookup, Some(&tokens[0]))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.error().error, "throttled");
    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter()
            .any(|r| r.event.as_str() == "throttled"
                && r.reason.as_deref() == Some("operator_actions")),
        "{rows:?}"
    );
}

/// The next mail to `to` whose subject contains `subject`, skipping others (notices the test
/// does not look at).
pub async fn mail_titled(to: &str, subject: &str) -> crate::mail::Received {
    for _ in 0..10 {
        let mail = wait_for_mail(to).await;
        if mail.subject.contains(subject) {
            return mail;
        }
    }
    panic!("no mail to {to} about {subject:?}");
}

#[tokio::test]
async fn a_blocked_user_is_shown_on_the_card_and_the_block_lifted_with_a_reason() {
    let desk = desk("[throttle]\nflow_max_failures = 3\nuser_max_failures = 3").await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let ad_mail = format!("{}@mail.test", caller.sam);
    let flow = crate::selfservice::start_flow(&desk.app, &caller.sam).await;
    for _ in 0..3 {
        crate::selfservice::verify(&desk.app, &flow, "totp", "000000")
            .await
            .expect(StatusCode::BAD_REQUEST);
    }

    let operator = desk.operator_token().await;
    let card_path = format!("/api/v1/helpdesk/users/{}", caller.sam);
    let card = desk
        .app
        .get(&card_path, Some(&operator))
        .await
        .expect(StatusCode::OK)
        .json();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let until = card["blocked_until"].as_i64().expect("blocked");
    assert!(until > now_ms + 23 * 3_600_000, "{card}");

    let lift = |body: serde_json::Value| {
        desk.app.send(crate::client::request(
            "DELETE",
            &format!("{card_path}/block"),
            Some(body),
            Some(&operator),
        ))
    };
    let refused = lift(json!({"reason": "  "}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(refused.error().message.contains("reason"));
    let card = desk.app.get(&card_path, Some(&operator)).await.json();
    assert!(card["blocked_until"].is_i64(), "still blocked");

    // No verification of the caller needed: a reason is enough.
    lift(json!({"reason": "caller typed old codes, ticket 4711"}))
        .await
        .expect(StatusCode::NO_CONTENT);
    let card = desk.app.get(&card_path, Some(&operator)).await.json();
    assert_eq!(card["blocked_until"], serde_json::Value::Null);
    let notice = mail_titled(&ad_mail, "self-service block").await;
    assert!(notice.text.contains("helpdesk lifted"), "{}", notice.text);
    assert!(notice.code_in().is_none());

    // The failure count went with it: the user resets by themselves again, and two wrong codes
    // (under the old count a new block) do not stop them.
    let flow = crate::selfservice::start_flow(&desk.app, &caller.sam).await;
    for _ in 0..2 {
        crate::selfservice::verify(&desk.app, &flow, "totp", "000000")
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    let now = settle_totp_step().await;
    crate::selfservice::verify(&desk.app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    crate::selfservice::set_password(&desk.app, &flow, "Lifted-Block-Pass-7")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&caller.dn, "Lifted-Block-Pass-7")
        .await
        .expect("the new password binds");
    assert!(bind(&caller.dn, &caller.password).await.is_err());

    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter()
            .any(|r| r.event.as_str() == "helpdesk_lift_block"
                && r.outcome.as_str() == "success"
                && r.actor.as_deref() == Some(&*desk.operator.sam)
                && r.reason.as_deref() == Some("caller typed old codes, ticket 4711")),
        "{rows:?}"
    );
}

/// An operator's app over the desk's group and SMTP server, with or without the licence flag,
/// on a database of its own where the operator's authenticator is registered too.
async fn desk_app(desk: &Desk, licence: bool, extra: &str) -> TestApp {
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = {licence}\n{}\n[helpdesk]\ngroup_dn = {:?}\n{extra}",
        smtp_section(),
        desk.group
    ))
    .await;
    desk.authenticator.register_in(&app.database).await;
    app
}

async fn operator_on(app: &TestApp, desk: &Desk) -> String {
    app.post(
        "/api/v1/helpdesk/session",
        json!({
            "username": desk.operator.sam,
            "password": desk.operator.password,
            "code": desk.authenticator.code().await,
        }),
        None,
    )
    .await
    .expect(StatusCode::OK)
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A caller who registered nothing is verified by a code mailed to their AD `mail` and reset to
/// a temporary password, without a written reason; with the licence flag off as well.
async fn unregistered_caller_verified_by_ad_mail(licence: bool) {
    let desk = desk("").await;
    let app = desk_app(&desk, licence, "").await;
    let operator = operator_on(&app, &desk).await;
    let caller = create_user("adm").await;
    let ad_mail = format!("{}@mail.test", caller.sam);
    let card_path = format!("/api/v1/helpdesk/users/{}", caller.sam);
    let post = |path: &str, body: serde_json::Value| {
        let url = format!("{card_path}/{path}");
        let (app, operator) = (&app, &operator);
        async move { app.post(&url, body, Some(operator)).await }
    };

    let card = app
        .get(&card_path, Some(&operator))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(card["totp"], false);
    assert_eq!(card["email"], serde_json::Value::Null);
    assert_eq!(
        card["ad_mail"],
        format!("{}***@mail.test", &caller.sam[..1])
    );
    assert_eq!(card["verified_by"], serde_json::Value::Null);

    // Nothing registered to mail, and no such channel.
    post("email-code", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    post("email-code", json!({"to": "pager"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    post("reset", json!({"deliver": "operator"}))
        .await
        .expect(StatusCode::FORBIDDEN);

    post("email-code", json!({"to": "ad_mail"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let mail = wait_for_mail(&ad_mail).await;
    let code = mail.code_in().expect("a code mailed to AD mail");
    post("verify", json!({"method": "email", "code": code}))
        .await
        .expect(StatusCode::OK);
    let card = app.get(&card_path, Some(&operator)).await.json();
    assert_eq!(card["verified_by"], "ad_mail");

    let temporary = post("reset", json!({"deliver": "operator"}))
        .await
        .expect(StatusCode::OK)
        .json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rc, text) = bind(&caller.dn, &temporary).await.expect_err("must change");
    assert!(rc == 49 && text.contains("773"), "{text}");
    assert!(bind(&caller.dn, &caller.password).await.is_err());
    let rows = audit_rows(&app).await;
    assert!(
        rows.iter().any(|r| r.event.as_str() == "helpdesk_reset"
            && r.outcome.as_str() == "success"
            && r.reason
                .as_deref()
                .is_some_and(|x| x.starts_with("verified_by=ad_mail"))),
        "{rows:?}"
    );
}

#[tokio::test]
async fn an_unregistered_caller_is_verified_by_a_code_to_ad_mail_and_reset() {
    unregistered_caller_verified_by_ad_mail(true).await;
}

#[tokio::test]
async fn without_the_licence_the_helpdesk_still_verifies_by_ad_mail_and_resets() {
    unregistered_caller_verified_by_ad_mail(false).await;
}

#[tokio::test]
async fn verification_methods_left_out_are_refused() {
    let desk = desk("").await;
    let app = desk_app(&desk, true, "verification_methods = [\"registered\"]").await;
    let operator = operator_on(&app, &desk).await;
    let caller = create_user("nom").await;
    let refused = app
        .post(
            &format!("/api/v1/helpdesk/users/{}/email-code", caller.sam),
            json!({"to": "ad_mail"}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(refused.error().message.contains("verification_methods"));
    assert_no_mail(
        &format!("{}@mail.test", caller.sam),
        Duration::from_millis(300),
    )
    .await;

    let wrong = crate::harness::try_config(
        "[helpdesk]\nverification_methods = [\"registered\", \"carrier_pigeon\"]",
    )
    .unwrap_err()
    .to_string();
    assert!(wrong.contains("helpdesk.verification_methods"), "{wrong}");
}

#[tokio::test]
async fn a_verified_caller_gets_a_one_time_registration_code() {
    let desk = desk("").await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let operator = desk.operator_token().await;
    let path = format!("{}/registration-code", caller.sam);

    let refused = desk
        .post(&operator, &path, json!({}))
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "not_verified");

    verify_totp(&desk, &operator, &caller, &secret).await;
    let code = desk
        .post(&operator, &path, json!({}))
        .await
        .expect(StatusCode::OK)
        .json()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 4, "{code}");
    assert!(groups.iter().all(|g| g.len() == 4), "{code}");
    let rows = audit_rows(&desk.app).await;
    assert!(
        rows.iter()
            .any(|r| r.event.as_str() == "registration_code_issued"
                && r.actor.as_deref() == Some(&*desk.operator.sam)
                && r.sam_account_name.as_deref() == Some(&*caller.sam)),
        "{rows:?}"
    );
    let db = desk.app.database.contents().await;
    assert!(!contains(&db, code.as_bytes()), "stored only as a hash");
    assert!(!contains(&db, code.replace('-', "").as_bytes()));

    // A protected account (here a fellow operator) gets none.
    let colleague = create_user("col").await;
    add_member(&desk.group, &colleague.dn).await;
    let refused = desk
        .post(
            &operator,
            &format!("{}/registration-code", colleague.sam),
            json!({}),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "forbidden");
}

#[tokio::test]
async fn the_service_account_and_never_reset_accounts_are_refused_under_every_spelling() {
    let service_dn = env("SSPR_TEST_SERVICE_DN");
    let service_sam = read_attr(&service_dn, "sAMAccountName").await.unwrap();
    let listed = create_user("nvr").await;
    // Allow-listed as well: the exclusion wins over any allow-list.
    let desk = desk(&format!(
        "require_verification = false\nallow_protected = [{service_dn:?}, {dn:?}]\n\
         [directory]\nnever_reset = [{lower:?}]",
        dn = listed.dn,
        lower = listed.dn.to_lowercase(),
    ))
    .await;
    let operator = desk.operator_token().await;
    let set_before = read_attr(&listed.dn, "pwdLastSet").await;
    for login in [
        service_sam.clone(),
        service_sam.to_uppercase(),
        listed.sam.clone(),
        listed.upn.to_uppercase(),
    ] {
        let card = desk
            .app
            .get(&format!("/api/v1/helpdesk/users/{login}"), Some(&operator))
            .await
            .expect(StatusCode::OK)
            .json();
        assert_eq!(card["actionable"], false, "{login}");
        for (action, body) in [
            (
                "reset",
                json!({"reason": "caller insists", "deliver": "operator"}),
            ),
            ("unlock", json!({"reason": "asked"})),
        ] {
            let refused = desk
                .post(&operator, &format!("{login}/{action}"), body)
                .await
                .expect(StatusCode::FORBIDDEN);
            assert_eq!(refused.error().error, "forbidden", "{login} {action}");
        }
    }
    bind(&service_dn, &env("SSPR_TEST_SERVICE_PASSWORD"))
        .await
        .expect("the service account's password is unchanged");
    bind(&listed.dn, &listed.password)
        .await
        .expect("the listed account's password is unchanged");
    assert_eq!(read_attr(&listed.dn, "pwdLastSet").await, set_before);
}

/// Whether `line` is a temporary password as the service makes them: five dash-joined groups
/// (four words and two digits).
pub fn reads_aloud(line: &str) -> bool {
    let groups: Vec<&str> = line.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_alphanumeric()))
}
