//! `/reset` and `/unlock`: a username, then the registered methods, then a new password (reset)
//! or an "unlock" button. The flow id lives in the `sspr_flow` cookie, never in a URL.

use std::convert::Infallible;

use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::cookies::{self, FLOW};
use super::flash::{self, Carried, PageState, kept, onwards, see_other, shown};
use super::{Reply, Visitor, back_to_start};
use crate::domain::error::FlowError;
use crate::domain::reset::Reset;
use crate::domain::store::MethodKind;
use crate::http::AppState;

/// Which of the two flows a page belongs to; both verify the same way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reset,
    Unlock,
}

impl Purpose {
    fn here(self) -> &'static str {
        match self {
            Purpose::Reset => "/reset",
            Purpose::Unlock => "/unlock",
        }
    }

    fn page(self, template: &'static str) -> Reply {
        Reply::new(template).here(self.here())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Purpose {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(if parts.uri.path().starts_with("/unlock") {
            Purpose::Unlock
        } else {
            Purpose::Reset
        })
    }
}

pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/reset/password", get(password_form).post(set_password))
        .route("/unlock/confirm", get(unlock_form).post(unlock));
    for purpose in [Purpose::Reset, Purpose::Unlock] {
        let here = purpose.here();
        router = router
            .route(here, get(start_form).post(start))
            .route(&format!("{here}/email"), post(send_code).get(back_to_start))
            .route(&format!("{here}/verify"), get(verify_form).post(verify))
            .route(
                &format!("{here}/passkey"),
                post(passkey_options).get(back_to_start),
            )
            .route(&format!("{here}/done"), get(done));
    }
    router
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Start {
    username: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Verify {
    method: String,
    code: String,
    /// A passkey's answer (`PublicKeyCredential.toJSON()` as JSON text), sent by
    /// static/passkey.js; verified where the other methods' code is.
    credential: String,
    /// The form's mark (see [`PageState::replayed`]).
    once: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewPassword {
    new_password: String,
    confirm_password: String,
}

/// The methods a page state lists, known ones only.
fn offered(state: &PageState) -> Vec<&'static str> {
    state
        .methods
        .iter()
        .filter_map(|m| MethodKind::parse(m))
        .map(MethodKind::as_str)
        .collect()
}

/// The page to verify with: the methods offered, and whether an email code was sent.
fn verify_page(purpose: Purpose, state: &PageState) -> Reply {
    purpose.page("reset_verify.html").vars(context! {
        methods => offered(state),
        email_sent => state.email_sent,
        once => state.once,
    })
}

fn flow(visitor: &Visitor) -> Result<&str, FlowError> {
    visitor.flow.as_deref().ok_or(FlowError::FlowNotFound)
}

/// The password step, listing the rules that apply before anything is typed.
async fn password_page(s: &AppState, visitor: &Visitor) -> Reply {
    let requirements = async { Reset::new(&s.deps).requirements(flow(visitor)?).await }.await;
    let rules = match requirements {
        Ok(list) => s.pages.rule_items(visitor.locale, &list).await,
        // The page then shows the general hint; the password is still checked in full.
        Err(e) => {
            tracing::debug!(error = %e, "password rules not listed");
            Vec::new()
        }
    };
    Purpose::Reset
        .page("reset_password.html")
        .vars(context! { rules })
}

/// Shows `error` on `reply`; an error that ended the flow shows "start again" instead and forgets
/// the cookie.
fn refused(
    s: &AppState,
    visitor: &Visitor,
    purpose: Purpose,
    reply: Reply,
    error: FlowError,
    detail: &'static str,
) -> Response {
    let reply = match error {
        FlowError::FlowNotFound
        | FlowError::NotVerified
        | FlowError::InvalidCode {
            remaining_attempts: 0,
        } => purpose
            .page("message.html")
            .vars(context! { heading => "flow_ended_title" })
            .bearer(FLOW, None),
        _ => reply,
    };
    s.pages.show(visitor, reply.failure(error, detail))
}

fn start_page(purpose: Purpose, username: &str) -> Reply {
    purpose
        .page("reset_start.html")
        .vars(context! { unlock => purpose == Purpose::Unlock, username })
}

async fn start_form(State(s): State<AppState>, visitor: Visitor, purpose: Purpose) -> Response {
    s.pages.show(&visitor, start_page(purpose, ""))
}

async fn start(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Form(form): Form<Start>,
) -> Response {
    match Reset::new(&s.deps)
        .start(&form.username, &visitor.client)
        .await
    {
        Ok(started) => {
            let state = PageState {
                methods: started.methods.iter().map(|m| m.as_str().into()).collect(),
                ..PageState::default()
            };
            let secure = s.pages.secure_cookies;
            let flow = Some(started.flow.as_str());
            see_other(
                &format!("{}/verify", purpose.here()),
                [
                    cookies::bearer(FLOW, flow, secure),
                    flash::cookie(&s.deps.keys, flow, Some(&state), secure),
                ],
            )
        }
        Err(e) => {
            let reply = start_page(purpose, &form.username).failure(e, "error_username");
            s.pages.show(&visitor, reply)
        }
    }
}

/// A step page needs a flow and the state its redirect left; without them, back to the start.
fn step_state(visitor: &Visitor, carried: Carried) -> Option<PageState> {
    visitor.flow.as_ref()?;
    carried.0
}

async fn verify_form(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    carried: Carried,
    uri: Uri,
) -> Response {
    match step_state(&visitor, carried) {
        Some(state) => {
            let state = state.marked();
            shown(&s, &visitor, verify_page(purpose, &state), state)
        }
        None => back_to_start(uri).await.into_response(),
    }
}

async fn send_code(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Carried(carried): Carried,
) -> Response {
    let state = carried.unwrap_or_default();
    let result = async {
        Reset::new(&s.deps)
            .send_email_code(flow(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            let sent = PageState {
                email_sent: true,
                ..state
            }
            .with_notice("notice_reset_code_sent");
            onwards(&s, &visitor, &format!("{}/verify", purpose.here()), &sent)
        }
        Err(e) => {
            let retry = verify_page(purpose, &state);
            refused(&s, &visitor, purpose, retry, e, "error_code")
        }
    }
}

async fn verify(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Carried(carried): Carried,
    Form(form): Form<Verify>,
) -> Response {
    let state = carried.unwrap_or_default();
    let here = format!("{}/verify", purpose.here());
    if state.replayed(&form.once) {
        // Answered already (its error shown once): the page as it is now, no second attempt.
        return see_other(&here, []);
    }
    let Some(method) = MethodKind::parse(&form.method) else {
        let reply = verify_page(purpose, &state).problem(StatusCode::BAD_REQUEST, "error_method");
        return s.pages.show(&visitor, reply);
    };
    let code = match method {
        MethodKind::Passkey => &form.credential,
        _ => &form.code,
    };
    let result = async {
        Reset::new(&s.deps)
            .verify(flow(&visitor)?, method, code, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(verified) if verified.remaining == 0 => {
            let next = match purpose {
                Purpose::Reset => "/reset/password",
                Purpose::Unlock => "/unlock/confirm",
            };
            let state = PageState::default().with_notice("notice_verified");
            onwards(&s, &visitor, next, &state)
        }
        Ok(_) => {
            let others = PageState {
                methods: offered(&state)
                    .into_iter()
                    .filter(|m| *m != method.as_str())
                    .map(str::to_owned)
                    .collect(),
                email_sent: false,
                ..PageState::default()
            }
            .with_notice("notice_verified_more");
            onwards(&s, &visitor, &here, &others)
        }
        Err(e) => {
            let state = state.remarked();
            let retry = verify_page(purpose, &state);
            let response = refused(&s, &visitor, purpose, retry, e, "error_code");
            kept(&s, &visitor, response, state)
        }
    }
}

/// The request options for the page's script, which runs `navigator.credentials.get` with
/// them; a refusal as `{"message"}` for it to show.
async fn passkey_options(State(s): State<AppState>, visitor: Visitor) -> Response {
    let result = async {
        Reset::new(&s.deps)
            .passkey_options(flow(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(options) => Json(options).into_response(),
        Err(e) => s.pages.refusal_json(visitor.locale, e, "error_code"),
    }
}

async fn password_form(
    State(s): State<AppState>,
    visitor: Visitor,
    carried: Carried,
    uri: Uri,
) -> Response {
    match step_state(&visitor, carried) {
        Some(state) => {
            let reply = password_page(&s, &visitor).await;
            shown(&s, &visitor, reply, state)
        }
        None => back_to_start(uri).await.into_response(),
    }
}

async fn unlock_form(
    State(s): State<AppState>,
    visitor: Visitor,
    carried: Carried,
    uri: Uri,
) -> Response {
    let reply = Purpose::Unlock.page("unlock_confirm.html");
    match step_state(&visitor, carried) {
        Some(state) => shown(&s, &visitor, reply, state),
        None => back_to_start(uri).await.into_response(),
    }
}

async fn set_password(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewPassword>,
) -> Response {
    let purpose = Purpose::Reset;
    if form.new_password != form.confirm_password {
        let reply = password_page(&s, &visitor)
            .await
            .problem(StatusCode::BAD_REQUEST, "error_passwords_differ");
        return s.pages.show(&visitor, reply);
    }
    // Broken rules (empty and overlong included) come back listed; this key is the fallback.
    let detail = "error_password_policy";
    let password = SecretString::from(form.new_password);
    let result = async {
        Reset::new(&s.deps)
            .set_password(flow(&visitor)?, &password, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => finished(&s, purpose),
        Err(e) => {
            let retry = password_page(&s, &visitor).await;
            refused(&s, &visitor, purpose, retry, e, detail)
        }
    }
}

async fn unlock(State(s): State<AppState>, visitor: Visitor) -> Response {
    let purpose = Purpose::Unlock;
    let result = async {
        Reset::new(&s.deps)
            .unlock(flow(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => finished(&s, purpose),
        Err(e) => refused(
            &s,
            &visitor,
            purpose,
            purpose.page("unlock_confirm.html"),
            e,
            "error_directory",
        ),
    }
}

/// The end: no automatic sign-in, the user signs in as usual. The flow is spent; so is its
/// cookie. The done page stays for Reload; Back leads to steps that send back to the start.
fn finished(s: &AppState, purpose: Purpose) -> Response {
    let secure = s.pages.secure_cookies;
    let state = PageState {
        done: Some(purpose.here().to_owned()),
        ..PageState::default()
    };
    see_other(
        &format!("{}/done", purpose.here()),
        [
            cookies::bearer(FLOW, None, secure),
            flash::cookie(&s.deps.keys, None, Some(&state), secure),
        ],
    )
}

async fn done(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Carried(carried): Carried,
    uri: Uri,
) -> Response {
    let finished = carried
        .and_then(|c| c.done)
        .is_some_and(|d| d == purpose.here());
    if !finished || visitor.flow.is_some() {
        return back_to_start(uri).await.into_response();
    }
    let reply = purpose
        .page("done.html")
        .vars(context! { unlock => purpose == Purpose::Unlock });
    s.pages.show(&visitor, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_methods_keep_only_known_ones() {
        let state = |methods: &[&str]| PageState {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            ..PageState::default()
        };
        assert_eq!(offered(&state(&["totp", "email"])), ["totp", "email"]);
        assert_eq!(offered(&state(&["email", "<script>", ""])), ["email"]);
    }
}
