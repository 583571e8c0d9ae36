//! `/reset` and `/unlock`: a username, then the registered methods, then a new password (reset)
//! or an "unlock" button. The flow id lives in the `sspr_flow` cookie, never in a URL.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::cookies::FLOW;
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
    let step = |handler: MethodRouter<AppState>| handler.get(back_to_start);
    let mut router = Router::new()
        .route("/reset/password", step(post(set_password)))
        .route("/unlock/confirm", step(post(unlock)));
    for purpose in [Purpose::Reset, Purpose::Unlock] {
        let here = purpose.here();
        router = router
            .route(here, get(start_form).post(start))
            .route(&format!("{here}/email"), step(post(send_code)))
            .route(&format!("{here}/verify"), step(post(verify)));
    }
    router
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Start {
    username: String,
}

/// The methods offered at the start, carried through the verification forms (display only: the
/// domain decides what is accepted).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Offered {
    offered: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Verify {
    method: String,
    code: String,
    offered: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewPassword {
    new_password: String,
    confirm_password: String,
}

fn offered(list: &str) -> Vec<&'static str> {
    list.split(',')
        .filter_map(MethodKind::parse)
        .map(MethodKind::as_str)
        .collect()
}

/// The page to verify with: the methods offered, and whether an email code was just sent.
fn verify_page(purpose: Purpose, methods: &[&str], email_sent: bool) -> Reply {
    purpose.page("reset_verify.html").vars(context! {
        methods,
        offered => methods.join(","),
        email_sent,
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
            let methods: Vec<&str> = started.methods.iter().map(|m| m.as_str()).collect();
            s.pages.show(
                &visitor,
                verify_page(purpose, &methods, false).bearer(FLOW, Some(&started.flow)),
            )
        }
        Err(e) => {
            let reply = start_page(purpose, &form.username).failure(e, "error_username");
            s.pages.show(&visitor, reply)
        }
    }
}

async fn send_code(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Form(form): Form<Offered>,
) -> Response {
    let methods = offered(&form.offered);
    let result = async {
        Reset::new(&s.deps)
            .send_email_code(flow(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            let reply = verify_page(purpose, &methods, true).notice("notice_reset_code_sent");
            s.pages.show(&visitor, reply)
        }
        Err(e) => refused(
            &s,
            &visitor,
            purpose,
            verify_page(purpose, &methods, false),
            e,
            "error_code",
        ),
    }
}

async fn verify(
    State(s): State<AppState>,
    visitor: Visitor,
    purpose: Purpose,
    Form(form): Form<Verify>,
) -> Response {
    let methods = offered(&form.offered);
    let Some(method) = MethodKind::parse(&form.method) else {
        let reply =
            verify_page(purpose, &methods, false).problem(StatusCode::BAD_REQUEST, "error_method");
        return s.pages.show(&visitor, reply);
    };
    let result = async {
        Reset::new(&s.deps)
            .verify(flow(&visitor)?, method, &form.code, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(verified) if verified.remaining == 0 => {
            let next = match purpose {
                Purpose::Reset => password_page(&s, &visitor).await,
                Purpose::Unlock => purpose.page("unlock_confirm.html"),
            };
            s.pages.show(&visitor, next.notice("notice_verified"))
        }
        Ok(_) => {
            let others: Vec<&str> = methods
                .iter()
                .copied()
                .filter(|m| *m != method.as_str())
                .collect();
            let reply = verify_page(purpose, &others, false).notice("notice_verified_more");
            s.pages.show(&visitor, reply)
        }
        Err(e) => {
            let retry = verify_page(purpose, &methods, method == MethodKind::Email);
            refused(&s, &visitor, purpose, retry, e, "error_code")
        }
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
        Ok(()) => finished(&s, &visitor, purpose),
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
        Ok(()) => finished(&s, &visitor, purpose),
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

/// The end: no automatic sign-in, the user signs in as usual. The flow is spent; so is its cookie.
fn finished(s: &AppState, visitor: &Visitor, purpose: Purpose) -> Response {
    let reply = purpose
        .page("done.html")
        .vars(context! { unlock => purpose == Purpose::Unlock })
        .bearer(FLOW, None);
    s.pages.show(visitor, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_methods_keep_only_known_ones() {
        assert_eq!(offered("totp,email"), ["totp", "email"]);
        assert_eq!(offered("email,<script>,"), ["email"]);
    }
}
