//! `GET /metrics` for Prometheus: on the main listener behind a bearer token (404 without one
//! configured), and optionally on an address of its own (`metrics.listen`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::config::MetricsConfig;
use crate::error::ApiError;
use crate::metrics;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(on_main_listener))
}

async fn on_main_listener(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.metrics_token {
        Some(token) => scrape(Some(token), &headers),
        // Without a token the service's public port does not reveal that it has metrics.
        None => ApiError::NotFound.into_response(),
    }
}

/// The answer to a scrape: 401 unless the request bears `token` (when there is one).
fn scrape(token: Option<&SecretString>, headers: &HeaderMap) -> Response {
    if let Some(token) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        metrics::render(),
    )
        .into_response()
}

/// Serves only `/metrics` on `metrics.listen`, if set, until the process ends.
pub async fn spawn_listener(config: &MetricsConfig) -> std::io::Result<()> {
    let Some(addr) = config.listen else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let token = config.token.clone();
    let router = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move { scrape(token.as_ref(), &headers) }),
    );
    tracing::info!(%addr, "metrics listening");
    // The same defences as the service's own port, sized for a few scrapers.
    let limits = crate::connections::Limits {
        header_timeout: std::time::Duration::from_secs(10),
        max_connections: 64,
        max_connections_per_client: 16,
        trusted_proxies: Vec::new(),
    };
    tokio::spawn(crate::connections::serve(
        listener,
        None,
        router,
        limits,
        std::future::pending(),
    ));
    Ok(())
}
