//! Post/Redirect/Get: a form that went through answers `303 See Other` to a page that a GET
//! renders, so Back and Reload repeat a harmless GET and never the POST (no second mail, no
//! second attempt, no "Confirm Form Resubmission").
//!
//! What such a page shows beyond what the domain keeps (which methods are still to verify,
//! whether a code was mailed, a one-shot "we sent a code") rides in the `sspr_page` cookie:
//! sealed with the server's key and bound to the area's bearer cookie (the flow or session), so
//! the browser can neither read nor change it, nor carry it to another flow. It holds no secret,
//! and it only decides what a page displays: every POST is still judged by the domain.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::cookies::{self, area_bearer};
use super::{Reply, Visitor};
use crate::domain::secrets::{Keys, new_token};
use crate::http::AppState;
use crate::http::extract::cookie_value;

pub const PAGE: &str = "sspr_page";

/// The state is display only, but a flow lives minutes: half an hour is plenty.
const MAX_AGE_SECS: u32 = 30 * 60;

/// The outcome messages a redirected page may show once. A cookie names one of these, never a
/// text of its own.
const NOTICES: &[&str] = &[
    "notice_reset_code_sent",
    "notice_verified",
    "notice_verified_more",
    "notice_totp_added",
    "notice_reconfirmed",
    "notice_stepped_up",
    "notice_stepup_code_sent",
    "notice_code_sent",
    "notice_email_added",
    "notice_removed",
    "notice_signed_out",
    "notice_helpdesk_manager_asked",
    "notice_helpdesk_code_sent",
    "notice_block_lifted",
    "notice_caller_verified",
    "notice_password_mailed",
    "notice_caller_unlocked",
    "notice_registrations_cleared",
    "approve_code_sent",
    "notice_registration_code",
    "notice_passkey_added",
    "notice_passkey_removed",
];

/// What a page reached by a redirect shows, besides what the domain keeps.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct PageState {
    /// The verification methods the page offers.
    pub methods: Vec<String>,
    /// An email code was sent: show its field and the resend button.
    pub email_sent: bool,
    /// The flow this browser finished (`/reset` or `/unlock`).
    pub done: Option<String>,
    /// An outcome to confirm once, one of [`NOTICES`].
    pub notice: Option<String>,
    /// The address a code was mailed to, shown above its field.
    pub address: Option<String>,
    /// The helpdesk's caller (as the operator typed the account) and how the page last showed
    /// them verified; the card itself is looked up afresh.
    pub caller: Option<String>,
    pub verified: Option<String>,
    /// The mark of the forms the page shows last. A form that comes back with an older mark
    /// was answered already: the browser sends it again (Reload of an error page), and it is
    /// not given to the domain a second time.
    pub once: Option<String>,
}

impl PageState {
    /// The one-shot notice, as the text key it names.
    pub fn notice_key(&self) -> Option<&'static str> {
        let wanted = self.notice.as_deref()?;
        NOTICES.iter().copied().find(|n| *n == wanted)
    }

    /// The state with a mark for its forms; a new one only if it has none.
    pub fn marked(self) -> Self {
        match self.once {
            Some(_) => self,
            None => self.remarked(),
        }
    }

    /// The state with a new mark: the forms shown before are answered.
    pub fn remarked(self) -> Self {
        Self {
            once: Some(new_token().0),
            ..self
        }
    }

    /// Whether a form marked `sent` was already answered. A form without a mark (not from
    /// these pages) is not judged.
    pub fn replayed(&self, sent: &str) -> bool {
        !sent.is_empty() && self.once.as_deref() != Some(sent)
    }

    pub fn with_notice(mut self, key: &'static str) -> Self {
        debug_assert!(NOTICES.contains(&key), "{key} is not in NOTICES");
        self.notice = Some(key.to_owned());
        self
    }
}

fn context(bearer: &str) -> Vec<u8> {
    [b"sspr-page-state\0".as_slice(), bearer.as_bytes()].concat()
}

fn seal(keys: &Keys, bearer: Option<&str>, state: &PageState) -> String {
    let plain = serde_json::to_vec(state).expect("page state serializes");
    URL_SAFE_NO_PAD.encode(keys.seal(&plain, &context(bearer.unwrap_or(""))))
}

fn open(keys: &Keys, bearer: Option<&str>, sealed: &str) -> Option<PageState> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let plain = keys.open(&bytes, &context(bearer.unwrap_or("")))?;
    serde_json::from_slice(&plain).ok()
}

/// The `Set-Cookie` for `state` (`None`: forget it), bound to `bearer`, the value the area's
/// bearer cookie has once the browser took this answer.
pub fn cookie(
    keys: &Keys,
    bearer: Option<&str>,
    state: Option<&PageState>,
    secure: bool,
) -> HeaderValue {
    let value = match state {
        Some(state) => format!(
            "{PAGE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}",
            seal(keys, bearer, state)
        ),
        None => format!("{PAGE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    let value = if secure {
        format!("{value}; Secure")
    } else {
        value
    };
    HeaderValue::from_str(&value).expect("base64url is a cookie value")
}

/// The sealed state is longer than the tokens [`cookies::read`] takes, so it is read here, with
/// its own bound.
fn read(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, PAGE).filter(|value| value.len() <= 1024)
}

/// The page state that came with the request, if it opens for the area's bearer cookie.
pub struct Carried(pub Option<PageState>);

impl FromRequestParts<AppState> for Carried {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Infallible> {
        let bearer = area_bearer(parts.uri.path()).and_then(|a| cookies::read(&parts.headers, a));
        let state = read(&parts.headers).and_then(|v| open(&s.deps.keys, bearer, v));
        Ok(Carried(state))
    }
}

/// `303 See Other` to `path`, with `state` for the page there, bound to the bearer cookie
/// `visitor` holds for the area.
pub fn onwards(s: &AppState, visitor: &Visitor, path: &str, state: &PageState) -> Response {
    let cookie = cookie(
        &s.deps.keys,
        bearer_of(visitor),
        Some(state),
        s.pages.secure_cookies,
    );
    see_other(path, [cookie])
}

/// Shows a page reached by a redirect, with its one-shot notice; the notice is then dropped
/// from the state, so a reload shows the page without it.
pub fn shown(s: &AppState, visitor: &Visitor, reply: Reply, state: PageState) -> Response {
    let reply = match state.notice_key() {
        Some(notice) => reply.notice(notice),
        None => reply,
    };
    let response = s.pages.show(visitor, reply);
    kept(s, visitor, response, state)
}

/// `response` sets `state`, without its notice, for the next page.
pub fn kept(s: &AppState, visitor: &Visitor, mut response: Response, state: PageState) -> Response {
    let rest = PageState {
        notice: None,
        ..state
    };
    let cookie = cookie(
        &s.deps.keys,
        bearer_of(visitor),
        Some(&rest),
        s.pages.secure_cookies,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn bearer_of(visitor: &Visitor) -> Option<&str> {
    visitor.csrf.area.and_then(|area| visitor.bearer(area))
}

/// `303 See Other` to `location`, setting `cookies`.
pub fn see_other(location: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7u8; 32])
    }

    fn value(cookie: &HeaderValue) -> String {
        let text = cookie.to_str().unwrap();
        text[PAGE.len() + 1..text.find(';').unwrap()].to_owned()
    }

    #[test]
    fn the_state_opens_only_for_its_own_flow_and_key() {
        let state = PageState {
            methods: vec!["totp".into(), "email".into()],
            email_sent: true,
            ..Default::default()
        }
        .with_notice("notice_reset_code_sent");
        let sealed = value(&cookie(&keys(), Some("flow-a"), Some(&state), false));
        assert_eq!(open(&keys(), Some("flow-a"), &sealed), Some(state.clone()));
        assert_eq!(open(&keys(), Some("flow-b"), &sealed), None);
        assert_eq!(open(&keys(), None, &sealed), None);
        assert_eq!(open(&Keys::new(&[8u8; 32]), Some("flow-a"), &sealed), None);
        assert!(!sealed.contains("totp"), "the browser cannot read it");
        assert_eq!(state.notice_key(), Some("notice_reset_code_sent"));
    }

    #[test]
    fn a_form_with_an_older_mark_is_a_replay() {
        let state = PageState::default().marked();
        let mark = state.once.clone().unwrap();
        assert_eq!(state.clone().marked().once, Some(mark.clone()));
        assert!(!state.replayed(&mark));
        assert!(!state.replayed(""), "a form without a mark is not judged");
        let next = state.remarked();
        assert!(next.replayed(&mark));
        assert!(PageState::default().replayed(&mark));
    }

    #[test]
    fn only_known_notices_are_shown() {
        let state = PageState {
            notice: Some("anything else".into()),
            ..Default::default()
        };
        assert_eq!(state.notice_key(), None);
    }

    #[test]
    fn the_cookie_is_strict_http_only_and_short_lived() {
        let set = cookie(&keys(), None, Some(&PageState::default()), true);
        let text = set.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=1800",
            "Secure",
            "Path=/",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let gone = cookie(&keys(), None, None, false);
        assert_eq!(
            gone,
            "sspr_page=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
