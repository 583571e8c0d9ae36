//! `/helpdesk`: operators (members of `helpdesk.group_dn`) sign in with their own AD account, look
//! a caller up, verify them with a method the caller registered, then reset the password, unlock
//! the account or clear its registrations, each after a confirmation step. The operator's session
//! token lives in the `sspr_helpdesk` cookie. Outside the licence gate: administrators may always
//! reset passwords.
//!
//! Which method verified the caller comes from the domain's look-up (and travels through the
//! forms only to choose what the page shows); the domain decides what is allowed.
mod actions;
mod caller;
mod card;
mod lists;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use axum::{Form, Router};
use minijinja::{Value, context};
use secrecy::SecretString;
use serde::Deserialize;

use super::cookies::{self, HELPDESK};
use super::flash::{self, Carried, PageState, kept, onwards, see_other, shown};
use super::{Locale, Reply, Visitor, back_to_start};
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Helpdesk, VerifiedBy};
use crate::domain::store::MethodKind;
use crate::error::ApiError;
use crate::http::AppState;

use actions::{act, confirm, lift_block, registration_code, registration_code_form};
use caller::{manager_approval, send_code, verify};
#[cfg(test)]
pub use card::sample_card;
use card::{Card, shown_as};

const HERE: &str = super::sections::HELPDESK;

/// The caller's card, where every step on it redirects when it went through.
const CALLER: &str = "/helpdesk/user";

const CARD: &str = "helpdesk.html";
const CONFIRM: &str = "helpdesk_confirm.html";

pub fn routes(state: AppState) -> Router<AppState> {
    let step = |handler: MethodRouter<AppState>| handler.get(back_to_start);
    Router::new()
        .route(HERE, get(start).post(sign_in))
        .route("/helpdesk/sign-out", step(post(sign_out)))
        .route("/helpdesk/lists", get(lists::lists))
        .route(CALLER, get(caller_form).post(look_up))
        .route("/helpdesk/user/email-code", step(post(send_code)))
        .route("/helpdesk/user/verify", step(post(verify)))
        .route("/helpdesk/user/lift-block", step(post(lift_block)))
        .route(
            "/helpdesk/user/manager-approval",
            step(post(manager_approval)),
        )
        .route(
            actions::REGISTRATION_CODE,
            get(registration_code_form).post(registration_code),
        )
        .route("/helpdesk/user/{action}", step(post(confirm)))
        .route("/helpdesk/user/{action}/confirm", step(post(act)))
        .route_layer(middleware::from_fn_with_state(state, when_configured))
}

/// While `helpdesk.group_dn` is empty every helpdesk page says so, and no session from an earlier
/// configuration works.
async fn when_configured(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if s.deps.settings.helpdesk.group_dn.is_some() {
        return next.run(request).await;
    }
    let locale = Locale::negotiate(&request);
    let reply = page("helpdesk_off.html").status(StatusCode::NOT_FOUND);
    s.pages.show_bare(locale, reply)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignIn {
    username: String,
    password: String,
    /// From the operator's own authenticator app.
    code: String,
}

/// What the helpdesk forms carry about the caller and the operator's choices.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CallerForm {
    /// sAMAccountName, UPN or mail.
    id: String,
    /// The method that verified the caller, as the previous page showed it.
    verified: String,
    method: String,
    code: String,
    /// `operator` or `email`: who gets the temporary password.
    deliver: String,
    /// The confirmation form's mark (see [`PageState::replayed`]).
    once: String,
    /// `registered` or `ad_mail`: where a verification code goes.
    to: String,
    reason: String,
}

/// A verification as [`shown_as`] names it.
fn verified_from(text: &str) -> Option<VerifiedBy> {
    [
        VerifiedBy::Registered(MethodKind::Totp),
        VerifiedBy::Registered(MethodKind::Email),
        VerifiedBy::AdMail,
        VerifiedBy::Manager,
    ]
    .into_iter()
    .find(|v| shown_as(*v) == text)
}

impl CallerForm {
    fn verified(&self) -> Option<VerifiedBy> {
        verified_from(&self.verified)
    }

    /// What the page shows besides the card, as the previous page left it.
    fn shown(&self) -> Shown {
        Shown {
            verified: self.verified(),
            email_sent: false,
        }
    }
}

fn page(template: &'static str) -> Reply {
    Reply::new(template).here(HERE)
}

fn sign_in_form(username: &str) -> Reply {
    page("helpdesk_signin.html").vars(context! { username })
}

fn search_page(id: &str) -> Reply {
    page(CARD).vars(context! { id })
}

/// `call` on the domain as the signed-in operator, with their session token; without a
/// session the operator is unauthorized before the domain is asked.
async fn as_operator<T>(
    s: &AppState,
    visitor: &Visitor,
    call: impl AsyncFnOnce(&Helpdesk<'_>, &str) -> Result<T, FlowError>,
) -> Result<T, FlowError> {
    let helpdesk = Helpdesk::new(&s.deps);
    let session = visitor.helpdesk.as_deref().ok_or(FlowError::Unauthorized)?;
    call(&helpdesk, session).await
}

/// A step whose answer is the caller's card: `notice` when `call` went through, else its
/// refusal with `detail` (see [`told`]) on the card as `carried` marked it. After a code was
/// mailed, the card shows its field.
#[allow(clippy::too_many_arguments)]
async fn card_step(
    s: &AppState,
    visitor: &Visitor,
    carried: Option<PageState>,
    form: &CallerForm,
    call: impl AsyncFnOnce(&Helpdesk<'_>, &str) -> Result<(), FlowError>,
    mails_a_code: bool,
    notice: &'static str,
    detail: &'static str,
) -> Response {
    let done = as_operator(s, visitor, call).await;
    let shown = Shown {
        email_sent: mails_a_code && done.is_ok(),
        ..form.shown()
    };
    match done {
        Ok(()) => to_card(s, visitor, &form.id, &shown, Some(notice)),
        Err(e) => {
            let vars = context! { once => carried.and_then(|c| c.once) };
            let outcome = Outcome::Failed(e, detail);
            caller_page(s, visitor, &form.id, CARD, shown, vars, outcome).await
        }
    }
}

/// A step on the card went through: `303` to the card, which a GET looks up afresh.
fn to_card(
    s: &AppState,
    visitor: &Visitor,
    id: &str,
    shown: &Shown,
    notice: Option<&'static str>,
) -> Response {
    let state = PageState {
        caller: Some(id.to_owned()),
        verified: shown.verified.map(|v| shown_as(v).to_owned()),
        email_sent: shown.email_sent,
        ..PageState::default()
    };
    let state = match notice {
        Some(key) => state.with_notice(key),
        None => state,
    };
    onwards(s, visitor, CALLER, &state)
}

/// The card a step redirected to; without a session or a caller, the helpdesk's start.
async fn caller_form(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    let state = carried.filter(|_| visitor.helpdesk.is_some());
    let Some((state, id)) = state.and_then(|c| c.caller.clone().map(|id| (c, id))) else {
        return see_other(HERE, []);
    };
    let shown = Shown {
        verified: state.verified.as_deref().and_then(verified_from),
        email_sent: state.email_sent,
    };
    let outcome = state.notice_key().map_or(Outcome::Quiet, Outcome::Notice);
    // The verification forms carry a mark, so a reload of a wrong code costs no attempt.
    let state = state.marked();
    let vars = context! { once => &state.once };
    let response = caller_page(&s, &visitor, &id, CARD, shown, vars, outcome).await;
    kept(&s, &visitor, response, state)
}

/// `reply` with `error`, in the operator's words where they differ from a self-service user's.
/// `detail` is the text for what only the handler can phrase: a refusal and invalid input.
fn told(reply: Reply, error: FlowError, detail: &'static str) -> Reply {
    let key = match &error {
        FlowError::NotVerified => "error_caller_not_verified",
        FlowError::NotFound => "error_caller_not_found",
        FlowError::InvalidCode {
            remaining_attempts: 0,
        } => "error_caller_no_attempts",
        FlowError::Forbidden(_) | FlowError::InvalidInput(_) => detail,
        FlowError::SecondFactorRequired => "error_operator_second_factor",
        _ => return reply.failure(error, detail),
    };
    reply.problem(ApiError::from(error).status(), key)
}

/// Shows `error` on the search page (`id` in the box); an ended session sends the operator back
/// to sign in instead, forgetting the cookie.
fn refused(s: &AppState, visitor: &Visitor, error: FlowError, id: &str) -> Response {
    let reply = match error {
        FlowError::Unauthorized => sign_in_form("").bearer(HELPDESK, None),
        _ => search_page(id),
    };
    s.pages.show(visitor, told(reply, error, "error_directory"))
}

/// What the caller's page shows besides the card.
struct Shown {
    verified: Option<VerifiedBy>,
    /// A code was mailed: show the field for it.
    email_sent: bool,
}

/// What the page says about the step just taken.
enum Outcome {
    Quiet,
    Notice(&'static str),
    Problem(StatusCode, &'static str),
    Failed(FlowError, &'static str),
}

/// The caller's card, looked up afresh, on `template` (the card or a confirmation) with `vars`
/// and `outcome`.
async fn caller_page(
    s: &AppState,
    visitor: &Visitor,
    id: &str,
    template: &'static str,
    shown: Shown,
    vars: Value,
    outcome: Outcome,
) -> Response {
    let looked_up = as_operator(s, visitor, async |helpdesk, session| {
        helpdesk.lookup(session, id, &visitor.client).await
    })
    .await;
    let card = match looked_up {
        Ok(card) => card,
        Err(e) => return refused(s, visitor, e, id),
    };
    // The domain knows whether this operator verified the caller; the form only fills the gap
    // until the next look-up.
    let verified = card.verified_by.or(shown.verified);
    let card = Card::new(card, visitor.locale, s.pages.zone());
    let reply = page(template).vars(context! {
        id => "",
        card,
        verified => verified.map(shown_as),
        checks => s
            .deps
            .settings
            .helpdesk
            .verification_methods
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        email_sent => shown.email_sent,
        require_verification => s.deps.settings.helpdesk.require_verification,
        ..vars
    });
    let reply = match outcome {
        Outcome::Quiet => reply,
        Outcome::Notice(key) => reply.notice(key),
        Outcome::Problem(status, key) => reply.problem(status, key),
        Outcome::Failed(error, detail) => told(reply, error, detail),
    };
    s.pages.show(visitor, reply)
}

async fn start(State(s): State<AppState>, visitor: Visitor, Carried(carried): Carried) -> Response {
    let state = carried.unwrap_or_default();
    let Some(token) = &visitor.helpdesk else {
        return shown(&s, &visitor, sign_in_form(""), state);
    };
    match Helpdesk::new(&s.deps).operator(token).await {
        Ok(_) => shown(&s, &visitor, search_page(""), state),
        Err(e) => {
            let mut response = refused(&s, &visitor, e, "");
            // Coming back after the session ended is no error of the request.
            if response.status() == StatusCode::UNAUTHORIZED {
                *response.status_mut() = StatusCode::OK;
            }
            response
        }
    }
}

async fn sign_in(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<SignIn>,
) -> Response {
    let password = SecretString::from(form.password);
    let signed_in = Helpdesk::new(&s.deps)
        .sign_in(&form.username, &password, Some(&form.code), &visitor.client)
        .await;
    let reply = match signed_in {
        Ok(token) => {
            let cookie = cookies::bearer(HELPDESK, Some(&token), s.pages.secure_cookies);
            return see_other(HERE, [cookie]);
        }
        // Only an operator who proved the password and the group is told to register.
        Err(FlowError::SecondFactorRequired) => told(
            page("helpdesk_signin.html").vars(context! {
                username => &form.username,
                register_authenticator => true,
            }),
            FlowError::SecondFactorRequired,
            "error_helpdesk_refused",
        ),
        // Every other refusal reads the same, whatever the reason.
        Err(e) => told(sign_in_form(&form.username), e, "error_helpdesk_refused"),
    };
    s.pages.show(&visitor, reply)
}

async fn sign_out(State(s): State<AppState>, visitor: Visitor) -> Response {
    if let Some(token) = &visitor.helpdesk {
        // The session ends on the server too, so a copied cookie is worth nothing.
        if let Err(e) = Helpdesk::new(&s.deps).sign_out(token).await {
            tracing::warn!(error = %e, "helpdesk session not deleted at sign-out");
        }
    }
    let secure = s.pages.secure_cookies;
    let state = PageState::default().with_notice("notice_signed_out");
    see_other(
        HERE,
        [
            cookies::bearer(HELPDESK, None, secure),
            flash::cookie(&s.deps.keys, None, Some(&state), secure),
        ],
    )
}

async fn look_up(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    to_card(&s, &visitor, &form.id, &form.shown(), None)
}
