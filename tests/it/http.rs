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
    let missing = send(&app, get("/api/v1/no/such/thing")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error().error, "not_found");

    let huge = "x".repeat(64 * 1024);
    let answer = send(&app, post_json("/api/v1/reset", &huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// `request` in `lang`, as a browser asks for it.
fn in_language(request: Request<Body>, lang: &str) -> Request<Body> {
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        header::ACCEPT_LANGUAGE,
        header::HeaderValue::from_str(&format!("{lang};q=0.9")).unwrap(),
    );
    Request::from_parts(parts, body)
}

fn form(path: &str, body: Body, length: Option<usize>) -> Request<Body> {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(length) = length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    request.body(body).unwrap()
}

/// A body that never ends: the request outlives `server.request_timeout`.
fn endless() -> Body {
    Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>())
}

fn assert_page(answer: &Answer, status: StatusCode, lang: &str, heading: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{status}: {:?}",
        answer.headers
    );
    assert!(
        answer.body.contains(&format!("lang=\"{lang}\"")),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains(heading),
        "{lang} {status}: {}",
        answer.body
    );
    assert!(
        answer.body.contains("/static/style.css"),
        "inside the design"
    );
    assert!(
        !answer.body.contains("\"error\""),
        "no JSON: {}",
        answer.body
    );
}

#[tokio::test]
async fn refusals_below_the_handlers_are_pages_in_the_visitors_language_and_json_for_the_api() {
    let app =
        test_app("[licence]\nazure_ad_premium = true\n[server]\nrequest_timeout = \"1s\"\n").await;
    let big = format!("login={}", "x".repeat(64 * 1024));
    for (lang, not_found, method, too_large, timeout) in [
        (
            "en",
            "Page not found",
            "This page cannot be used this way",
            "Too much text was sent",
            "The service is busy",
        ),
        (
            "nl",
            "Pagina niet gevonden",
            "Deze pagina werkt zo niet",
            "Er werd te veel tekst verstuurd",
            "De dienst is bezet",
        ),
    ] {
        let answer = send(&app, in_language(get("/no/such/page"), lang)).await;
        assert_page(&answer, StatusCode::NOT_FOUND, lang, not_found);
        let answer = send(&app, get(&format!("/no/such/page?lang={lang}"))).await;
        assert_page(&answer, StatusCode::NOT_FOUND, lang, not_found);

        let put = Request::put("/").body(Body::empty()).unwrap();
        let answer = send(&app, in_language(put, lang)).await;
        assert_page(&answer, StatusCode::METHOD_NOT_ALLOWED, lang, method);
        assert!(answer.headers.contains_key(header::ALLOW));

        // Told by its length, and found out while reading it.
        let answer = send(
            &app,
            in_language(
                form("/reset", Body::from(big.clone()), Some(big.len())),
                lang,
            ),
        )
        .await;
        assert_page(&answer, StatusCode::PAYLOAD_TOO_LARGE, lang, too_large);
        let answer = send(
            &app,
            in_language(form("/reset", Body::from(big.clone()), None), lang),
        )
        .await;
        assert_page(&answer, StatusCode::PAYLOAD_TOO_LARGE, lang, too_large);

        let answer = send(&app, in_language(form("/reset", endless(), None), lang)).await;
        assert_page(&answer, StatusCode::SERVICE_UNAVAILABLE, lang, timeout);
    }

    // The API's answers stay JSON in its one shape, whatever the browser's language.
    let answer = send(
        &app,
        in_language(get("/api/v1/no/such/thing?lang=nl"), "nl"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.error().error, "not_found");
    let put = Request::put("/api/v1/reset").body(Body::empty()).unwrap();
    let answer = send(&app, in_language(put, "nl")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.error().error, "method_not_allowed");
    let huge = "x".repeat(64 * 1024);
    let answer = send(&app, in_language(post_json("/api/v1/reset", &huge), "nl")).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.error().error, "payload_too_large");
    let slow = Request::post("/api/v1/reset")
        .header(header::CONTENT_TYPE, "application/json")
        .body(endless())
        .unwrap();
    let answer = send(&app, slow).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.error().error, "timeout");
    // Probes keep their machine answers.
    let answer = send(&app, get("/healthz")).await;
    assert_eq!(answer.json()["status"], "ok");
}

#[tokio::test]
async fn a_throttled_page_is_a_page_that_names_the_wait_in_words() {
    use crate::pages::Browser;
    let app = test_app(
        "[licence]\nazure_ad_premium = true\n[throttle]\nip_max_starts = 1\nip_window = \"10m\"\n",
    )
    .await;
    // The first start of the address spends its budget.
    let mut first = Browser::new(&app);
    let page = first.get("/reset").await;
    let started = first
        .submit(&page, "/reset", &[("username", "nobody-here-z")])
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    for (lang, text) in [
        ("en", "Try again in 10 minutes"),
        ("nl", "Probeer het over 10 minuten opnieuw"),
    ] {
        let mut browser = Browser::new(&app);
        let page = browser.get(&format!("/reset?lang={lang}")).await;
        let answer = browser
            .submit(&page, "/reset", &[("username", "nobody-here-z")])
            .await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            answer.body
        );
        assert!(answer.body.contains(&format!("lang=\"{lang}\"")));
        assert!(answer.body.contains(text), "{}", answer.body);
        assert!(answer.headers.contains_key(header::RETRY_AFTER));
    }
}
