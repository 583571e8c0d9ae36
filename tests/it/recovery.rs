//! Recovery codes (issue 16) end to end through the HTTP API, against the real DC, SMTP server
//! and database: each code works once, a new set voids the old, the count shows, using one is
//! mailed to the owner, two codes are one method, and a code steps up a registration session.

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::totp;

use crate::client::{TestApp, test_app};
use crate::harness::{bind, create_user};
use crate::mail::{smtp_section, wait_for_mail};
use crate::pages::{self, Browser, assert_page};
use crate::selfservice::{
    register_email, register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{}\n{extra}", smtp_section())).await
}

/// Makes a new set with `token`; returns its codes.
async fn new_codes(app: &TestApp, token: &str) -> Vec<String> {
    let answer = app
        .post("/api/v1/enrollment/recovery-codes", json!({}), Some(token))
        .await
        .expect(StatusCode::OK);
    let body = answer.json();
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    let codes: Vec<String> = body["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    codes
}

async fn codes_left(app: &TestApp, token: &str) -> u64 {
    let answer = app
        .get("/api/v1/enrollment", Some(token))
        .await
        .expect(StatusCode::OK);
    answer.json()["recovery_codes_left"]
        .as_u64()
        .expect("recovery_codes_left")
}

#[tokio::test]
async fn a_code_resets_once_and_its_use_is_mailed() {
    let app = app("").await;
    let user = create_user("rc-once").await;
    let token = sign_in(&app, &user).await;
    register_totp(&app, &token).await;
    let address = register_email(&app, &token).await;
    assert_eq!(codes_left(&app, &token).await, 0);
    let codes = new_codes(&app, &token).await;
    let made = wait_for_mail(&address).await;
    assert!(made.text.contains("recovery codes"), "{}", made.text);
    assert!(!made.text.contains(&codes[0]), "never a code in a mail");
    assert_eq!(codes_left(&app, &token).await, 10);

    let flow = start_flow(&app, &user.sam).await;
    let started = app
        .post("/api/v1/reset", json!({"username": user.sam}), None)
        .await;
    assert!(
        started.body.contains("\"recovery_code\""),
        "{}",
        started.body
    );
    // Typed in capitals with a space instead of the dash: still the code.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let verified = verify(&app, &flow, "recovery_code", &typed)
        .await
        .expect(StatusCode::OK);
    assert_eq!(verified.json()["remaining"], 0);
    let used = wait_for_mail(&address).await;
    assert!(
        used.text.contains("Recovery codes left: 9"),
        "{}",
        used.text
    );
    assert_eq!(codes_left(&app, &token).await, 9);

    let new_password = "Rc-Harbour-4821!";
    set_password(&app, &flow, new_password)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(
        bind(&user.dn, new_password).await.is_ok(),
        "the new one binds"
    );
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "the old one fails"
    );

    let again = start_flow(&app, &user.sam).await;
    let refused = verify(&app, &again, "recovery_code", &codes[0])
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(refused.error().error, "invalid_code");
}

#[tokio::test]
async fn a_new_set_voids_the_old_and_codes_are_never_the_only_method() {
    let app = app("").await;
    let user = create_user("rc-set").await;
    let token = sign_in(&app, &user).await;
    let alone = app
        .post("/api/v1/enrollment/recovery-codes", json!({}), Some(&token))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(alone.error().error, "method_required");
    register_totp(&app, &token).await;
    let old = new_codes(&app, &token).await;
    let new = new_codes(&app, &token).await;
    assert_eq!(codes_left(&app, &token).await, 10);

    let flow = start_flow(&app, &user.sam).await;
    verify(&app, &flow, "recovery_code", &old[0])
        .await
        .expect(StatusCode::BAD_REQUEST);
    verify(&app, &flow, "recovery_code", &new[0])
        .await
        .expect(StatusCode::OK);

    app.delete("/api/v1/enrollment/recovery-codes", Some(&token))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(codes_left(&app, &token).await, 0);
    let flow = start_flow(&app, &user.sam).await;
    verify(&app, &flow, "recovery_code", &new[1])
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn two_codes_are_one_of_two_methods() {
    let app = app("[reset]\nmethods_required = 2\n").await;
    let user = create_user("rc-two").await;
    let token = sign_in(&app, &user).await;
    let secret = register_totp(&app, &token).await;
    let codes = new_codes(&app, &token).await;

    let flow = start_flow(&app, &user.sam).await;
    for code in &codes[..2] {
        let verified = verify(&app, &flow, "recovery_code", code)
            .await
            .expect(StatusCode::OK);
        assert_eq!(verified.json()["remaining"], 1, "two codes are one kind");
    }
    let new_password = "Rc-Lantern-5937!";
    let refused = set_password(&app, &flow, new_password)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.error().error, "not_verified");
    assert!(bind(&user.dn, &user.password).await.is_ok(), "unchanged");

    let now = settle_totp_step().await;
    let verified = verify(&app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    assert_eq!(verified.json()["remaining"], 0, "a code and an app are two");
    set_password(&app, &flow, new_password)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(bind(&user.dn, new_password).await.is_ok());
    assert!(bind(&user.dn, &user.password).await.is_err());
}

#[tokio::test]
async fn a_code_steps_up_a_registration_session() {
    let app = app("").await;
    let user = create_user("rc-step").await;
    let first = sign_in(&app, &user).await;
    register_totp(&app, &first).await;
    let codes = new_codes(&app, &first).await;

    // The phone is lost: a new session steps up with a code, then registers a new app.
    let token = sign_in(&app, &user).await;
    let status = app
        .get("/api/v1/enrollment", Some(&token))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(status["step_up_required"], true);
    assert!(
        status["step_up_methods"]
            .as_array()
            .unwrap()
            .contains(&json!("recovery_code")),
        "{status}"
    );
    app.post("/api/v1/enrollment/totp", json!({}), Some(&token))
        .await
        .expect(StatusCode::FORBIDDEN);
    let wrong = app
        .post(
            "/api/v1/enrollment/step-up",
            json!({"method": "recovery_code", "code": "zzzzz-zzzzz"}),
            Some(&token),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error().error, "invalid_code");
    app.post(
        "/api/v1/enrollment/step-up",
        json!({"method": "recovery_code", "code": codes[3]}),
        Some(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    register_totp(&app, &token).await;
    assert_eq!(codes_left(&app, &token).await, 9);
}

#[tokio::test]
async fn the_pages_make_codes_show_the_count_and_take_one_in_a_reset() {
    let app = pages::app("").await;
    let user = create_user("rc-page").await;
    let mut browser = Browser::new(&app);
    let overview = pages::sign_in(&mut browser, &user).await;
    assert_page(&overview, StatusCode::OK, "No recovery codes yet.");
    pages::register_totp(&mut browser, &overview).await;
    let overview = browser.get("/register").await;
    let shown = browser
        .submit(&overview, "/register/recovery-codes", &[])
        .await;
    assert_page(&shown, StatusCode::OK, "They are shown only now");
    let codes: Vec<String> = shown
        .body
        .split("<code>")
        .skip(1)
        .map(|c| c.split_once("</code>").expect("a code").0.to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let overview = browser.get("/register").await;
    assert_page(&overview, StatusCode::OK, "<strong>10 / 10</strong>");
    assert_page(
        &overview,
        StatusCode::OK,
        "Your current recovery codes will stop working.",
    );

    let mut visit = Browser::new(&app);
    let verify = pages::start(&mut visit, "/reset", &user.sam).await;
    assert_page(&verify, StatusCode::OK, "Use a recovery code");
    let password = visit
        .submit(
            &verify,
            "/reset/verify",
            &[("method", "recovery_code"), ("code", &codes[0])],
        )
        .await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    let overview = browser.get("/register").await;
    assert_page(&overview, StatusCode::OK, "<strong>9 / 10</strong>");
}

#[tokio::test]
async fn the_openapi_document_names_the_method_and_its_paths() {
    let app = app("").await;
    let doc = app
        .get("/api/v1/openapi.json", None)
        .await
        .expect(StatusCode::OK)
        .json();
    let names = &doc["components"]["schemas"]["MethodName"]["enum"];
    assert!(
        names.as_array().unwrap().contains(&json!("recovery_code")),
        "{names}"
    );
    let path = &doc["paths"]["/api/v1/enrollment/recovery-codes"];
    assert!(path["post"]["responses"]["409"].is_object(), "{path}");
    assert!(path["delete"]["responses"]["204"].is_object(), "{path}");
}
