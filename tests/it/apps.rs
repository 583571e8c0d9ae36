//! More than one authenticator app, through the HTTP API against the real Samba DC, the SMTP
//! server and the database of SSPR_TEST_DATABASE: each app resets, each spends its own steps,
//! one can be removed, and there are at most five.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sspr_bridge::domain::totp;

use crate::client::{TestApp, request, test_app};
use crate::harness::{TestUser, bind, create_user};
use crate::mail::{smtp_section, wait_for_mail};
use crate::selfservice::{
    decode_base32, set_password, settle_totp_step, sign_in, start_flow, verify,
};

async fn app() -> TestApp {
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}",
        smtp_section()
    ))
    .await
}

/// Adds an app called `name` (no body at all for `None`), confirming it with the code of the
/// previous step so the current one stays free. Returns its secret.
async fn add_app(app: &TestApp, token: &str, name: Option<&str>) -> Vec<u8> {
    let path = "/api/v1/enrollment/totp";
    let body = name.map(|name| json!({ "name": name }));
    let answer = app
        .send(request("POST", path, body, Some(token)))
        .await
        .expect(StatusCode::OK);
    let secret = decode_base32(answer.json()["secret"].as_str().unwrap());
    let now = settle_totp_step().await;
    let code = totp::code_at(&secret, now - totp::STEP_SECS);
    app.post(
        "/api/v1/enrollment/totp/confirm",
        json!({ "code": code }),
        Some(token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    secret
}

async fn authenticators(app: &TestApp, token: &str) -> Vec<Value> {
    let status = app
        .get("/api/v1/enrollment", Some(token))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(status["totp"], json!(true), "{status}");
    status["authenticators"].as_array().unwrap().clone()
}

async fn reset_with(app: &TestApp, user: &TestUser, code: &str, new: &str) {
    let flow = start_flow(app, &user.sam).await;
    verify(app, &flow, "totp", code)
        .await
        .expect(StatusCode::OK);
    set_password(app, &flow, new)
        .await
        .expect(StatusCode::NO_CONTENT);
}

/// Waits for the start of the next 30 s step, so every app has an unspent code.
async fn next_step() -> u64 {
    let start = settle_totp_step().await / totp::STEP_SECS;
    loop {
        let now = settle_totp_step().await;
        if now / totp::STEP_SECS > start {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn two_apps_each_reset_spend_their_own_steps_and_one_can_be_removed() {
    let app = app().await;
    let mut user = create_user("apps").await;
    let token = sign_in(&app, &user).await;
    let phone = add_app(&app, &token, Some("  Work phone ")).await;
    let tablet = add_app(&app, &token, None).await;

    let listed = authenticators(&app, &token).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["name"], json!("Work phone"), "trimmed");
    assert_eq!(
        listed[1]["name"],
        json!("Authenticator app"),
        "no body: unnamed"
    );
    for app in &listed {
        assert!(app["last_used_at"].is_null(), "{app}");
        let created = app["created_at"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(created).is_ok(), "{created}");
    }
    let phone_id = listed[0]["id"].as_str().unwrap().to_owned();
    let added = wait_for_mail(&format!("{}@mail.test", user.sam)).await;
    assert!(
        added
            .text
            .contains("the authenticator app “Work phone” was added"),
        "{}",
        added.text
    );

    // The phone's code resets.
    let now = settle_totp_step().await;
    let first = "Apps-Harbor-7391";
    reset_with(&app, &user, &totp::code_at(&phone, now), first).await;
    bind(&user.dn, first).await.expect("the new password binds");
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "the old one fails"
    );

    // Replayed, the phone's code is refused; the tablet's code of the same step is not.
    let flow = start_flow(&app, &user.sam).await;
    let replay = verify(&app, &flow, "totp", &totp::code_at(&phone, now)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.error().error, "invalid_code");
    verify(&app, &flow, "totp", &totp::code_at(&tablet, now))
        .await
        .expect(StatusCode::OK);
    let second = "Apps-Meadow-4820";
    set_password(&app, &flow, second)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, second)
        .await
        .expect("the new password binds");
    assert!(bind(&user.dn, first).await.is_err(), "the one before fails");
    user.password = second.to_owned();

    // A new session steps up with the phone, then removes it.
    let token = sign_in(&app, &user).await;
    let now = next_step().await;
    app.post(
        "/api/v1/enrollment/step-up",
        json!({"method": "totp", "code": totp::code_at(&phone, now)}),
        Some(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let listed = authenticators(&app, &token).await;
    assert!(
        listed.iter().all(|a| a["last_used_at"].is_string()),
        "{listed:?}"
    );
    let path = format!("/api/v1/enrollment/totp/{phone_id}");
    app.delete(&path, Some(&token))
        .await
        .expect(StatusCode::NO_CONTENT);
    let again = app.delete(&path, Some(&token)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error().error, "not_found");
    let listed = authenticators(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], json!("Authenticator app"));
    let removed = loop {
        let mail = wait_for_mail(&format!("{}@mail.test", user.sam)).await;
        if mail.text.contains("was removed") {
            break mail;
        }
    };
    assert!(
        removed
            .text
            .contains("the authenticator app “Work phone” was removed"),
        "{}",
        removed.text
    );

    // The tablet still resets; the removed phone's next code (which it would have accepted) no
    // longer does.
    let flow = start_flow(&app, &user.sam).await;
    let gone = verify(
        &app,
        &flow,
        "totp",
        &totp::code_at(&phone, now + totp::STEP_SECS),
    )
    .await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST);
    verify(&app, &flow, "totp", &totp::code_at(&tablet, now))
        .await
        .expect(StatusCode::OK);
    let third = "Apps-Willow-5931";
    set_password(&app, &flow, third)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, third).await.expect("the new password binds");
    assert!(bind(&user.dn, second).await.is_err());
}

#[tokio::test]
async fn names_are_checked_and_a_sixth_app_is_refused() {
    let app = app().await;
    let user = create_user("apps5").await;
    let token = sign_in(&app, &user).await;
    add_app(&app, &token, Some("Phone 1")).await;
    for bad in [
        json!({"name": "   "}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "x".repeat(65)}),
    ] {
        let answer = app
            .post("/api/v1/enrollment/totp", bad.clone(), Some(&token))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.error().error, "invalid_request");
    }
    let longest = "é".repeat(64);
    add_app(&app, &token, Some(&longest)).await;
    for n in 3..=5 {
        add_app(&app, &token, Some(&format!("Phone {n}"))).await;
    }
    assert_eq!(authenticators(&app, &token).await.len(), 5);
    let sixth = app
        .post(
            "/api/v1/enrollment/totp",
            json!({"name": "Phone 6"}),
            Some(&token),
        )
        .await;
    assert_eq!(sixth.status, StatusCode::CONFLICT);
    assert_eq!(sixth.error().error, "limit_reached");
    let listed = authenticators(&app, &token).await;
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[1]["name"], json!(longest));
}
