//! The pages' browser state, all in cookies:
//!
//! - `sspr_session`: the registration session token; `sspr_flow`: the reset/unlock flow id;
//!   `sspr_helpdesk`: a helpdesk operator's session token. All are bearer secrets, so they are
//!   `HttpOnly; SameSite=Strict` and never appear in a URL (URLs end up in logs, history and
//!   Referer headers).
//! - `sspr_csrf`: a random double-submit token. Every page form carries it in a hidden `csrf`
//!   field; [`guard_forms`] refuses any POST whose field does not equal the cookie, before a
//!   handler runs. SameSite=Strict already keeps the bearer cookies off cross-site POSTs; the
//!   token also covers older browsers and same-site attackers on a sibling host.
//! - `lang`: the language chosen with the `?lang=` switch, so it sticks across POSTs.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{Locale, Reply};
use crate::http::AppState;

pub const SESSION: &str = "sspr_session";
pub const FLOW: &str = "sspr_flow";
pub const HELPDESK: &str = "sspr_helpdesk";
pub const CSRF: &str = "sspr_csrf";
pub const LANG: &str = "lang";

/// The CSRF token of this request, for the hidden `csrf` field of its forms.
#[derive(Clone)]
pub struct CsrfToken(pub String);

/// The value of cookie `name`, if the request carries one with a well-formed value.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| is_token(v))
}

/// Our values are base64url tokens or language tags: anything else is not ours.
fn is_token(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `Set-Cookie` value: Path=/ and HttpOnly always (no script needs them), `Secure` behind
/// https. `None` as value deletes the cookie.
pub fn set(name: &str, value: Option<&str>, same_site: &str, secure: bool) -> HeaderValue {
    let mut cookie = format!(
        "{name}={}; Path=/; HttpOnly; SameSite={same_site}",
        value.unwrap_or("")
    );
    if value.is_none() {
        cookie.push_str("; Max-Age=0");
    } else if name == LANG {
        cookie.push_str("; Max-Age=31536000");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("cookie values are tokens")
}

/// A bearer cookie (session or flow): `SameSite=Strict`, ends with the browser session.
pub fn bearer(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    set(name, value, "Strict", secure)
}

/// Checks the CSRF token of every POST before its handler runs, and gives every request a token
/// for the forms it renders (a new cookie if the browser had none).
pub async fn guard_forms(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let existing = read(request.headers(), CSRF).map(str::to_owned);
    let locale = Locale::negotiate(&request);
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let Ok(bytes) = to_bytes(body, state.body_limit).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let sent = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        let valid = match (&existing, &sent) {
            (Some(cookie), Some(field)) => bool::from(cookie.as_bytes().ct_eq(field.as_bytes())),
            _ => false,
        };
        if !valid {
            let mut refused = state
                .pages
                .show_bare(locale, Reply::forbidden_form(&parts.uri));
            if existing.is_none() {
                let fresh = crate::domain::secrets::new_token().0;
                append(
                    &mut refused,
                    set(CSRF, Some(&fresh), "Strict", state.pages.secure_cookies),
                );
            }
            return refused;
        }
        Body::from(bytes)
    } else {
        body
    };
    let mut request = Request::from_parts(parts, body);
    let token = existing
        .clone()
        .unwrap_or_else(|| crate::domain::secrets::new_token().0);
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none() {
        append(
            &mut response,
            set(CSRF, Some(&token), "Strict", state.pages.secure_cookies),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name_and_only_when_well_formed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("xsspr_flow=a; sspr_flow=abc-DEF_1; lang=nl"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("sspr_csrf=bad value"),
        );
        assert_eq!(read(&headers, FLOW), Some("abc-DEF_1"));
        assert_eq!(read(&headers, LANG), Some("nl"));
        assert_eq!(read(&headers, CSRF), None);
        assert_eq!(read(&headers, SESSION), None);
    }

    #[test]
    fn bearer_cookies_are_strict_http_only_and_secure_behind_https() {
        assert_eq!(
            bearer(SESSION, Some("t0k"), true),
            "sspr_session=t0k; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            bearer(FLOW, None, false),
            "sspr_flow=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
