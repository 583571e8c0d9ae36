//! The layers every page request passes: the CSRF check of forms (see [`super::cookies`] for the
//! scheme) and the language cookie.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cookies::{CsrfToken, LANG, area_bearer, csrf_cookie, form_allowed, read, set};
use super::{Locale, Reply};
use crate::domain::secrets::new_token;
use crate::http::AppState;

/// Checks the CSRF token of every POST before its handler runs, and gives every request what
/// its forms need for a token (a new cookie if the browser had none).
pub async fn guard_forms(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let secure = state.pages.secure_cookies;
    let name = csrf_cookie(secure);
    let existing = read(request.headers(), name).map(str::to_owned);
    let area = area_bearer(request.uri().path());
    let bearer = area
        .and_then(|a| read(request.headers(), a))
        .map(str::to_owned);
    let keys = state.deps.keys.clone();
    let locale = Locale::negotiate(&request);
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let Ok(bytes) = to_bytes(body, state.body_limit).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let sent = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !form_allowed(
            &keys,
            existing.as_deref(),
            bearer.as_deref(),
            sent.as_deref(),
        ) {
            let mut refused = state
                .pages
                .show_bare(locale, Reply::forbidden_form(&parts.uri));
            if existing.is_none() {
                let fresh = new_token().0;
                append(&mut refused, set(name, Some(&fresh), "Strict", secure));
            }
            return refused;
        }
        Body::from(bytes)
    } else {
        body
    };
    let mut request = Request::from_parts(parts, body);
    let cookie = existing.clone().unwrap_or_else(|| new_token().0);
    request
        .extensions_mut()
        .insert(CsrfToken::new(cookie.clone(), area, keys));
    let mut response = next.run(request).await;
    if existing.is_none() {
        append(&mut response, set(name, Some(&cookie), "Strict", secure));
    }
    response
}

/// Keeps the language picked with `?lang=` in a cookie. `SameSite=Lax`: it is no secret, and a
/// link from a mail should open in the chosen language.
pub async fn remember_language(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let chosen = Locale::from_query(request.uri());
    let mut response = next.run(request).await;
    if let Some(locale) = chosen {
        append(
            &mut response,
            set(LANG, Some(locale.tag()), "Lax", state.pages.secure_cookies),
        );
    }
    response
}

fn append(response: &mut Response, cookie: HeaderValue) {
    response.headers_mut().append(header::SET_COOKIE, cookie);
}
