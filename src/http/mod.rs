//! axum handlers: parse, call the domain, render. Pages and `/api/v1`.

pub mod api;
mod extract;
mod health;
pub mod metrics;
mod pages;
mod proxy;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::domain::deps::Deps;
use crate::domain::licence::LicenceGate;
use crate::error::{ApiError, ErrorCause, ForScript};
use crate::store::Store;
pub use pages::{Branding, Pages};
pub use proxy::{Cidr, TrustedProxies};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

pub struct Shared {
    pub licence: LicenceGate,
    pub deps: Deps,
    pub store: Store,
    pub pages: Pages,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// `metrics.token`: `/metrics` on this listener needs it and answers 404 without one.
    pub metrics_token: Option<secrecy::SecretString>,
    /// Where `Caller` may believe `X-Forwarded-For`.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// `server.public_url` is https: browsers are told to never use plain HTTP again.
    pub hsts: bool,
    /// Sends the outbox's mails for as long as this state lives; `None` without `[smtp]`.
    pub outbox_sender: Option<crate::mail::SenderTask>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self {
            inner: Arc::new(shared),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}

/// Paths of the self-service features, which the licence gate covers (sub-paths included).
/// Registration (`/register`, `/api/v1/enrollment`) is not listed: helpdesk operators register
/// their own authenticator there whatever the licence, and the domain answers everyone else
/// `licence_required` once their password is proven. Nor is the password change (`/change`,
/// `/api/v1/password/change`): it is not a self-service reset but what AD lets everyone do who
/// knows their password.
const SELF_SERVICE: &[&str] = &[
    "/reset",
    "/unlock",
    "/api/v1/reset",
    "/api/v1/password/check",
];

fn is_self_service(path: &str) -> bool {
    SELF_SERVICE.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A strict policy: only the pages' own stylesheet and script files, nothing inline; scripts may
/// talk to this origin only (the passkey button fetches its WebAuthn options).
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

pub fn app(state: AppState) -> Router {
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        // Answers carry account state and, later, tokens: no cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Whether TLS ends here or at a proxy: the public URL is what browsers see.
        .option_layer(state.hsts.then(|| {
            SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            )
        }));

    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("-");
        // The route's pattern (`/api/v1/reset/{flow}/verify`), as in the metrics: a flow id is a
        // bearer secret, stored only as a hash. The path itself only where no route matched, and
        // never the query string: no place for secrets, but never log one if it is.
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| request.uri().path(), MatchedPath::as_str);
        tracing::info_span!("request", id, method = %request.method(), path)
    });

    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/static/copy.js", get(pages::copy_script))
        .route("/static/password.js", get(pages::password_script))
        .route("/static/passkey.js", get(pages::passkey_script))
        .merge(pages::brand_routes(&state))
        .merge(pages::routes(state.clone()))
        .merge(api::routes())
        .merge(metrics::routes())
        // Only matched routes: a path nobody routes is not worth a series of its own.
        .route_layer(middleware::from_fn(count_request))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), licence_gate))
        .layer(middleware::from_fn(log_errors))
        .layer(RequestBodyLimitLayer::new(state.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), error_bodies))
        // Outside the limit and the timeout, so their answers carry the headers too.
        .layer(headers)
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(Extension(state.trusted_proxies.clone()))
        .with_state(state)
}

/// Closes every self-service path while the licence is not declared: the API answers 403
/// `licence_required`, pages explain it and show the helpdesk link.
async fn licence_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    match state.licence.require_self_service() {
        Err(refused) if is_self_service(path) => {
            if path.starts_with("/api/") {
                ApiError::from(refused).into_response()
            } else {
                let locale = pages::Locale::negotiate(&request);
                state.pages.licence_required(locale)
            }
        }
        _ => next.run(request).await,
    }
}

/// Counts and times each request by the pattern of its route.
async fn count_request(route: MatchedPath, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    crate::metrics::http_request(
        route.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started,
    );
    response
}

/// Logs what error responses did not tell the client.
async fn log_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(ErrorCause(cause)) = response.extensions().get::<ErrorCause>() {
        if response.status().is_server_error() {
            tracing::error!(status = response.status().as_u16(), %cause, "request failed");
        } else {
            tracing::warn!(status = response.status().as_u16(), %cause, "request refused");
        }
    }
    response
}

/// Paths machines read: their answers stay as their handlers made them (JSON under `/api/`).
fn is_machine_path(path: &str) -> bool {
    path.starts_with("/api/") || ["/healthz", "/readyz", "/metrics"].contains(&path)
}

/// Every error answer under `/api/` has an [`crate::error::ErrorBody`], and every other error
/// answer is a page in the visitor's language, also the refusals made below the handlers, which
/// come with an empty or plain-text body of their own: a body over the limit (413), a request
/// over the timeout (503), a method the route does not take (405), an unknown path (404).
async fn error_bodies(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/api/");
    let machine = is_machine_path(path);
    let locale = pages::Locale::negotiate(&request);
    let response = next.run(request).await;
    let status = response.status();
    let for_script = response.extensions().get::<ForScript>().is_some();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut rendered = if api && !content_type.starts_with(b"application/json") {
        ApiError::Http(status).into_response()
    } else if !machine
        && !content_type.starts_with(b"text/html")
        // A page's script asked (the passkey options): it shows the answer's message itself.
        && !for_script
    {
        state.pages.error_page(locale, status)
    } else {
        return response;
    };
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            rendered.headers_mut().insert(name, value.clone());
        }
    }
    rendered
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::{is_machine_path, is_self_service};

    #[test]
    fn machine_paths_keep_their_answers() {
        for path in ["/api/v1/reset", "/healthz", "/readyz", "/metrics"] {
            assert!(is_machine_path(path), "{path}");
        }
        for path in ["/", "/reset", "/nowhere", "/metrics/x", "/apis"] {
            assert!(!is_machine_path(path), "{path}");
        }
    }

    #[test]
    fn self_service_paths_include_sub_paths_only() {
        assert!(is_self_service("/reset"));
        assert!(is_self_service("/api/v1/reset/abc/verify"));
        assert!(!is_self_service("/resets"));
        assert!(!is_self_service("/healthz"));
        assert!(!is_self_service("/api/v1/helpdesk/session"));
    }

    #[test]
    fn the_password_change_stays_open_without_the_licence() {
        for path in ["/change", "/change/done", "/api/v1/password/change"] {
            assert!(!is_self_service(path), "{path}");
        }
        assert!(is_self_service("/api/v1/password/check"));
    }

    #[test]
    fn registration_is_left_to_the_domain() {
        for path in ["/register", "/register/totp", "/api/v1/enrollment/session"] {
            assert!(!is_self_service(path), "{path}");
        }
    }
}
