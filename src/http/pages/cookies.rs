//! The pages' browser state, all in cookies:
//!
//! - `sspr_session`: the registration session token; `sspr_flow`: the reset/unlock flow id;
//!   `sspr_helpdesk`: a helpdesk operator's session token. All are bearer secrets, so they are
//!   `HttpOnly; SameSite=Strict` and never appear in a URL (URLs end up in logs, history and
//!   Referer headers).
//! - `sspr_csrf` (`__Host-sspr_csrf` behind https): a random per-browser value. Every page form
//!   carries a hidden `csrf` field holding base64url(HMAC-SHA256(K, "csrf" ‖ that cookie ‖ the
//!   bearer cookie of the form's area)), K derived from `security.secret_key`. The area's bearer
//!   is `sspr_session` for `/register`, `sspr_flow` for `/reset` and `/unlock`, `sspr_helpdesk`
//!   for `/helpdesk`, and nothing elsewhere. [`guard_forms`](super::layers::guard_forms) recomputes the token and refuses any
//!   POST whose field differs, before a handler runs.
//! - `lang`: the language chosen with the `?lang=` switch, so it sticks across POSTs.
//!
//! SameSite=Strict already keeps the bearer cookies off cross-site POSTs; the token covers older
//! browsers and same-site attackers on a sibling host. A sibling host can plant cookies for the
//! parent domain, so a token equal to the cookie (plain double-submit) would let it forge any
//! form. Bound with the server's key to the session or flow, a token is worth nothing without
//! the victim's own bearer secret, which the attacker cannot read. Behind https the `__Host-`
//! prefix also stops a sibling from planting the CSRF cookie at all (browsers accept it only
//! from this very host, Secure, Path=/ and without Domain).
//!
//! What binding does not stop: forms shown before a session or flow exists (the sign-in and
//! start pages) can only be bound to the CSRF cookie. A sibling host that plants a pair from its
//! own visit (its CSRF cookie and the token the service gave it, and possibly its own bearer
//! cookie) can make the victim's browser post as the attacker: sign in to, or go on with, the
//! attacker's own session or flow (login CSRF). It cannot act on the victim's session, flow or
//! account: once the victim holds a bearer cookie, a token minted for any other is refused. A
//! `__Host-` prefix on the bearer cookies would stop the planting of those too, but renames
//! cookies that tests and deployments name, so it is not done here.

use std::sync::Arc;

use axum::http::HeaderValue;

use super::sections;
use crate::domain::secrets::Keys;
// Every reader of the language needs these, the API too.
pub use crate::http::extract::{LANG_COOKIE as LANG, read_cookie as read};

pub const SESSION: &str = "sspr_session";
pub const FLOW: &str = "sspr_flow";
pub const HELPDESK: &str = "sspr_helpdesk";
pub const CSRF: &str = "sspr_csrf";
/// The CSRF cookie's name behind https, where browsers take it only from this host.
pub const CSRF_HOST: &str = "__Host-sspr_csrf";

/// The name of the CSRF cookie: `__Host-` needs `Secure`, so only behind https.
pub fn csrf_cookie(secure: bool) -> &'static str {
    if secure { CSRF_HOST } else { CSRF }
}

/// The bearer cookie that forms under `path` are bound to, if its area has one.
pub fn area_bearer(path: &str) -> Option<&'static str> {
    match sections::section(path) {
        "/register" => Some(SESSION),
        "/reset" | "/unlock" => Some(FLOW),
        sections::HELPDESK => Some(HELPDESK),
        _ => None,
    }
}

/// What the forms of this request need to mint their `csrf` field: the browser's CSRF cookie,
/// the bearer cookie of the request's area and the key.
#[derive(Clone)]
pub struct CsrfToken {
    cookie: String,
    pub area: Option<&'static str>,
    keys: Arc<Keys>,
}

impl CsrfToken {
    pub fn new(cookie: String, area: Option<&'static str>, keys: Arc<Keys>) -> Self {
        Self { cookie, area, keys }
    }

    /// The token for forms posted with `bearer` as the area's bearer cookie (`None`: none).
    pub fn mint(&self, bearer: Option<&str>) -> String {
        self.keys.csrf_token(&self.cookie, bearer.unwrap_or(""))
    }
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

/// Whether a POST's `csrf` field is the token for its CSRF cookie and its area's bearer cookie.
pub fn form_allowed(
    keys: &Keys,
    cookie: Option<&str>,
    bearer: Option<&str>,
    sent: Option<&str>,
) -> bool {
    match (cookie, sent) {
        (Some(cookie), Some(field)) => keys.csrf_matches(cookie, bearer.unwrap_or(""), field),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, header};

    use super::*;
    use crate::http::extract::is_token;

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

    fn keys() -> Keys {
        Keys::new(&[5u8; 32])
    }

    #[test]
    fn tokens_differ_by_bearer_by_cookie_and_by_key() {
        let keys = keys();
        let token = keys.csrf_token("cookie-a", "session-a");
        assert_eq!(token.len(), 43, "base64url of 32 bytes");
        assert!(is_token(&token));
        assert_eq!(token, keys.csrf_token("cookie-a", "session-a"));
        assert_ne!(token, keys.csrf_token("cookie-a", "session-b"));
        assert_ne!(token, keys.csrf_token("cookie-b", "session-a"));
        assert_ne!(token, keys.csrf_token("cookie-a", ""));
        assert_ne!(
            token,
            Keys::new(&[6u8; 32]).csrf_token("cookie-a", "session-a")
        );
        // Length-prefixed: moving characters between the parts gives another token.
        assert_ne!(keys.csrf_token("ab", "c"), keys.csrf_token("a", "bc"),);
    }

    #[test]
    fn a_planted_cookie_with_a_field_equal_to_it_is_refused() {
        let keys = keys();
        let planted = "Planted-by-a-sibling-host";
        for bearer in [Some("victims-session"), None] {
            assert!(!form_allowed(&keys, Some(planted), bearer, Some(planted)));
        }
        let minted = keys.csrf_token(planted, "victims-session");
        assert!(form_allowed(
            &keys,
            Some(planted),
            Some("victims-session"),
            Some(&minted)
        ));
        assert!(!form_allowed(
            &keys,
            None,
            Some("victims-session"),
            Some(&minted)
        ));
        assert!(!form_allowed(
            &keys,
            Some(planted),
            Some("victims-session"),
            None
        ));
        assert!(!form_allowed(
            &keys,
            Some(planted),
            Some("victims-session"),
            Some("")
        ));
    }

    #[test]
    fn a_token_minted_for_another_session_is_refused() {
        let keys = keys();
        let cookie = "Same-browser-cookie";
        let for_a = keys.csrf_token(cookie, "session-of-a");
        assert!(form_allowed(
            &keys,
            Some(cookie),
            Some("session-of-a"),
            Some(&for_a)
        ));
        assert!(!form_allowed(
            &keys,
            Some(cookie),
            Some("session-of-b"),
            Some(&for_a)
        ));
        assert!(!form_allowed(&keys, Some(cookie), None, Some(&for_a)));
        // A token from a pre-session form does not carry over once a session exists.
        let before = keys.csrf_token(cookie, "");
        assert!(!form_allowed(
            &keys,
            Some(cookie),
            Some("session-of-a"),
            Some(&before)
        ));
    }

    #[test]
    fn forms_are_bound_to_the_bearer_of_their_area() {
        assert_eq!(area_bearer("/register/totp/confirm"), Some(SESSION));
        assert_eq!(area_bearer("/reset/password"), Some(FLOW));
        assert_eq!(area_bearer("/unlock/confirm"), Some(FLOW));
        assert_eq!(area_bearer("/helpdesk/user/reset"), Some(HELPDESK));
        assert_eq!(area_bearer("/approve/some-token"), None);
        assert_eq!(area_bearer("/"), None);
        assert_eq!(csrf_cookie(true), "__Host-sspr_csrf");
        assert_eq!(csrf_cookie(false), "sspr_csrf");
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
