//! Drives the whole app in-process (`http::app`) over the real DC, a real database (a SQLite file
//! or a PostgreSQL schema, see [`test_app`]) and, when asked, the real SMTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
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
    let state = sspr_bridge::server::state(&config).await.expect("state");
    TestApp {
        router: app(state),
        ip: SocketAddr::from(([127, 0, 0, 1], 40000 + rand::random_range(0..20000u16))),
        database,
    }
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
