//! Drives the whole app in-process (`http::app`) over the real DC, a real database (a SQLite file
//! or a PostgreSQL schema, see [`test_app`]) and, when asked, the real SMTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use sspr_bridge::error::ErrorBody;
use sspr_bridge::http::app;
use tower::ServiceExt;

use crate::harness::{self, TestDatabase};

pub struct TestApp {
    pub router: axum::Router,
    /// The client address requests come from (throttles key on it).
    pub ip: SocketAddr,
    /// Shared by every instance built over it; declared last, so it is dropped after the router.
    pub database: Arc<TestDatabase>,
}

/// An app over the test DC with a fresh database on the backend `SSPR_TEST_DATABASE` names
/// (SQLite unless it says `postgres`); `extra` TOML layers on top.
pub async fn test_app(extra: &str) -> TestApp {
    test_app_on(Arc::new(TestDatabase::from_env().await), extra).await
}

/// Another instance of the service over `database`, which may be shared with other instances.
pub async fn test_app_on(database: Arc<TestDatabase>, extra: &str) -> TestApp {
    let config = harness::config_layers(&[
        &database.section(),
        "[helpdesk]\nurl = \"mailto:helpdesk@example.test\"\n",
        extra,
    ]);
    let state = sspr_bridge::wiring::state(&config).await.expect("state");
    let mut router = app(state);
    if harness::secrets_listed() {
        router = router.layer(middleware::from_fn(list_secrets));
    }
    TestApp {
        router,
        ip: SocketAddr::from(([127, 0, 0, 1], 40000 + rand::random_range(0..20000u16))),
        database,
    }
}

/// Lists every secret that crosses the app's edge (see [`harness::remember_secret`]): the
/// passwords and codes sent to it, in JSON or forms, and the session tokens, flow ids, TOTP
/// secrets and temporary passwords it hands out, in JSON, pages and cookies. So every test,
/// whether it calls the API, submits pages or drives a browser, lists what it used.
async fn list_secrets(request: Request<Body>, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // A manager approval link's token travels in the path.
    if let Some(token) = parts.uri.path().strip_prefix("/approve/") {
        harness::remember_secret("approval-token", token);
    }
    let (sent, body) = peek(body).await;
    if let Some(bytes) = sent {
        for (name, value) in fields(&parts.headers, &bytes) {
            match name.as_str() {
                "password" | "new_password" | "confirm_password" | "current_password" => {
                    harness::remember_secret("password", &value);
                }
                // A registration code (letters and digits) is searched for as text, not as a
                // number.
                "code" if value.bytes().any(|b| b.is_ascii_alphabetic()) => {
                    harness::remember_secret("registration-code", &value);
                }
                "code" => harness::remember_secret("code", &value),
                _ => {}
            }
        }
    }
    let response = next.run(Request::from_parts(parts, body)).await;

    let (parts, body) = response.into_parts();
    for cookie in parts.headers.get_all(header::SET_COOKIE) {
        let pair = cookie
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("");
        match pair.split_once('=') {
            Some(("sspr_session" | "sspr_helpdesk", token)) => {
                harness::remember_secret("session-token", token);
            }
            Some(("sspr_flow", flow)) => harness::remember_secret("flow-id", flow),
            _ => {}
        }
    }
    let (answered, body) = peek(body).await;
    if let Some(bytes) = answered {
        for (name, value) in fields(&parts.headers, &bytes) {
            match name.as_str() {
                "token" => harness::remember_secret("session-token", &value),
                "flow" => harness::remember_secret("flow-id", &value),
                "secret" => harness::remember_secret("totp-secret", &value),
                "temporary_password" => harness::remember_secret("password", &value),
                // The helpdesk's one-time registration code.
                "code" => harness::remember_secret("code", &value),
                _ => {}
            }
        }
        // A new set of recovery codes, as shown and as stored before hashing (no dash).
        if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes)
            && let Some(Value::Array(codes)) = object.get("codes")
        {
            for code in codes.iter().filter_map(Value::as_str) {
                harness::remember_secret("recovery-code", code);
                harness::remember_secret("recovery-code", &code.replace('-', ""));
            }
        }
        // The manual key of the authenticator set-up page (grouped by fours) and the
        // helpdesk's temporary password.
        let page = String::from_utf8_lossy(&bytes);
        if page.contains("id=\"totp-secret\"") {
            let grouped = crate::pages::text_of(&page, "totp-secret");
            harness::remember_secret("totp-secret", &grouped.replace(char::is_whitespace, ""));
        }
        if page.contains("id=\"recovery-codes\"") {
            for code in page
                .split("<code>")
                .skip(1)
                .filter_map(|c| c.split_once("</code>"))
            {
                harness::remember_secret("recovery-code", code.0);
                harness::remember_secret("recovery-code", &code.0.replace('-', ""));
            }
        }
        let temporary = "id=\"temporary-password\"";
        if page.contains(temporary) {
            let password = crate::pages::attr_of_tag(&page, temporary, "value");
            harness::remember_secret("password", &password);
        }
        let registration_code = "id=\"registration-code\"";
        if page.contains(registration_code) {
            let code = crate::pages::attr_of_tag(&page, registration_code, "value");
            harness::remember_secret("code", &code);
        }
    }
    Response::from_parts(parts, body)
}

/// The bytes of a body of known size (up to 1 MiB), and the body again, unchanged. Others, like a
/// test's streaming or endless body, are passed on untouched and unread.
async fn peek(body: Body) -> (Option<Bytes>, Body) {
    let size = axum::body::HttpBody::size_hint(&body).exact();
    if size.is_none_or(|n| n > 1 << 20) {
        return (None, body);
    }
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            (Some(bytes.clone()), Body::from(bytes))
        }
        Err(e) => {
            let failing = futures::stream::once(async move { Err::<Bytes, _>(e) });
            (None, Body::from_stream(failing))
        }
    }
}

/// The string fields of a JSON object or an urlencoded form.
fn fields(headers: &HeaderMap, bytes: &[u8]) -> Vec<(String, String)> {
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(bytes) {
        return object
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect();
    }
    let form = headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    if !form {
        return Vec::new();
    }
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn error(&self) -> ErrorBody {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not an error body ({e}): {} {}", self.status, self.body))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }
}

impl TestApp {
    pub async fn send(&self, mut request: Request<Body>) -> Answer {
        request.extensions_mut().insert(ConnectInfo(self.ip));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(request("GET", path, None, bearer)).await
    }

    pub async fn post(&self, path: &str, json: Value, bearer: Option<&str>) -> Answer {
        self.send(request("POST", path, Some(json), bearer)).await
    }

    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(request("DELETE", path, None, bearer)).await
    }
}

pub fn request(
    method: &str,
    path: &str,
    json: Option<Value>,
    bearer: Option<&str>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match json {
        Some(json) => {
            let body = json.to_string();
            builder
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from(body))
                .unwrap()
        }
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
