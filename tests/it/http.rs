//! The HTTP skeleton, driven in-process through `app()`, with the real DC and a real SQLite file.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::client::{Answer, TestApp, test_app};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, json: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, json.len())
        .body(Body::from(json.to_owned()))
        .unwrap()
}

async fn send(app: &TestApp, request: Request<Body>) -> Answer {
    app.send(request).await
}

#[tokio::test]
async fn without_the_licence_self_service_api_answers_403_licence_required() {
    let app = test_app("").await;
    for request in [
        post_json("/api/v1/reset", r#"{"username":"someone"}"#),
        post_json(
            "/api/v1/reset/abc/verify",
            r#"{"method":"totp","code":"123456"}"#,
        ),
        post_json("/api/v1/password/check", "{}"),
    ] {
        let path = request.uri().path().to_owned();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        let error = answer.error();
        assert_eq!(error.error, "licence_required", "{path}");
        assert!(
            error.message.contains("Azure AD Premium"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("licence.azure_ad_premium"),
            "names the key that enables it"
        );
    }
    // Registration stays open for helpdesk operators: everyone else learns of the licence only
    // after proving their password (tests/it/stepup.rs).
    let answer = send(
        &app,
        post_json(
            "/api/v1/enrollment/session",
            r#"{"username":"a","password":"b"}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
}

#[tokio::test]
async fn without_the_licence_pages_explain_and_link_the_helpdesk_in_english_and_dutch() {
    let app = test_app("").await;
    let answer = send(&app, get("/reset")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.body.contains("Self-service is not available"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("mailto:helpdesk@example.test"));
    // The note for administrators goes to the log and `check`, not to employees.
    assert!(!answer.body.contains("Azure"), "{}", answer.body);
    assert!(!answer.body.contains("azure_ad_premium"), "{}", answer.body);

    let dutch = Request::get("/unlock")
        .header(header::ACCEPT_LANGUAGE, "nl-NL,nl;q=0.9,en;q=0.5")
        .body(Body::empty())
        .unwrap();
    let answer = send(&app, dutch).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.body.contains("lang=\"nl\""));
    assert!(
        answer.body.contains("Selfservice is niet beschikbaar"),
        "{}",
        answer.body
    );

    let switched = send(&app, get("/reset?lang=nl")).await;
    assert!(switched.body.contains("Selfservice is niet beschikbaar"));

    let home = send(&app, get("/")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("mailto:helpdesk@example.test"));
    assert!(
        !home.body.contains("href=\"/reset"),
        "no dead links while gated"
    );
}

#[tokio::test]
async fn with_the_licence_the_gate_is_open() {
    let app = test_app("[licence]\nazure_ad_premium = true").await;
    let answer = send(
        &app,
        post_json("/api/v1/reset", r#"{"username":"someone"}"#),
    )
    .await;
    assert_ne!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let home = send(&app, get("/")).await;
    assert!(home.body.contains("href=\"/reset"));
}

#[tokio::test]
async fn health_and_readiness_use_the_real_dependencies() {
    let app = test_app("").await;
    let live = send(&app, get("/healthz")).await;
    assert_eq!(live.status, StatusCode::OK);

    let ready = send(&app, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], true);
    assert_eq!(body["directory"][0]["ok"], true);
}

#[tokio::test]
async fn not_ready_when_no_dc_answers_but_the_service_still_serves() {
    let app = test_app("[directory]\nurls = [\"ldaps://127.0.0.1:1\"]").await;
    let ready = send(&app, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["directory"][0]["ok"], false);
    assert!(
        !ready.body.contains("refused"),
        "reasons go to the log only"
    );
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn responses_carry_security_headers_and_a_request_id() {
    let app = test_app("").await;
    let answer = send(&app, get("/")).await;
    let h = &answer.headers;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(h["cache-control"], "no-store");
    assert!(!h["x-request-id"].is_empty());

    let with_id = Request::get("/healthz")
        .header("x-request-id", "caller-chosen-id")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app, with_id).await.headers["x-request-id"],
        "caller-chosen-id"
    );
}

#[tokio::test]
async fn errors_have_one_shape_and_big_bodies_are_refused() {
    let app = test_app("[licence]\nazure_ad_premium = true").await;
    let missing = send(&app, get("/no/such/page")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error().error, "not_found");

    let huge = "x".repeat(64 * 1024);
    let answer = send(&app, post_json("/api/v1/reset", &huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}
