//! Drives the whole app in-process (`http::app`) over the real DC, a real SQLite file and, when
//! asked, the real SMTP server.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sspr_bridge::error::ErrorBody;
use sspr_bridge::http::app;
use tower::ServiceExt;

use crate::harness;

pub struct TestApp {
    pub router: axum::Router,
    pub data: tempfile::TempDir,
    /// The client address requests come from (throttles key on it).
    pub ip: SocketAddr,
}

/// An app over the test DC with a fresh SQLite database; `extra` TOML layers on top.
pub async fn test_app(extra: &str) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let config = harness::config_layers(&[
        &format!(
            "[database]\nurl = \"sqlite://{}/sspr.db\"\n[helpdesk]\nurl = \"mailto:helpdesk@example.test\"\n",
            data.path().display()
        ),
        extra,
    ]);
    let state = sspr_bridge::server::state(&config).await.expect("state");
    TestApp {
        router: app(state),
        data,
        ip: SocketAddr::from(([127, 0, 0, 1], 40000 + rand::random_range(0..20000u16))),
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

    /// The bytes of the SQLite database and its write-ahead log, for secret scans.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for name in ["sspr.db", "sspr.db-wal"] {
            if let Ok(bytes) = std::fs::read(self.data.path().join(name)) {
                all.extend(bytes);
            }
        }
        all
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
