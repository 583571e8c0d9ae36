//! `/helpdesk`: operators (members of `helpdesk.group_dn`) sign in with their own AD account, look
//! a caller up, verify them with a method the caller registered, then reset the password, unlock
//! the account or clear its registrations, each after a confirmation step. The operator's session
//! token lives in the `sspr_helpdesk` cookie. Outside the licence gate: administrators may always
//! reset passwords.
//!
//! Which method verified the caller comes from the domain's look-up (and travels through the
//! forms only to choose what the page shows); the domain decides what is allowed.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Form, Router};
use minijinja::{Value, context};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::cookies::HELPDESK;
use super::{Locale, Reply, Visitor, back_to_start};
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Action, CallerCheck, Helpdesk, UserCard, VerifiedBy};
use crate::domain::store::MethodKind;
use crate::error::ApiError;
use crate::http::AppState;

const HERE: &str = super::sections::HELPDESK;

const CARD: &str = "helpdesk.html";
const CONFIRM: &str = "helpdesk_confirm.html";

pub fn routes(state: AppState) -> Router<AppState> {
    let step = |handler: MethodRouter<AppState>| handler.get(back_to_start);
    Router::new()
        .route(HERE, get(start).post(sign_in))
        .route("/helpdesk/sign-out", step(post(sign_out)))
        .route("/helpdesk/user", step(post(look_up)))
        .route("/helpdesk/user/email-code", step(post(send_code)))
        .route("/helpdesk/user/verify", step(post(verify)))
        .route("/helpdesk/user/lift-block", step(post(lift_block)))
        .route(
            "/helpdesk/user/manager-approval",
            step(post(manager_approval)),
        )
        .route(
            "/helpdesk/user/registration-code",
            step(post(registration_code)),
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
    /// `registered` or `ad_mail`: where a verification code goes.
    to: String,
    reason: String,
}

impl CallerForm {
    fn verified(&self) -> Option<VerifiedBy> {
        [
            VerifiedBy::Registered(MethodKind::Totp),
            VerifiedBy::Registered(MethodKind::Email),
            VerifiedBy::AdMail,
            VerifiedBy::Manager,
        ]
        .into_iter()
        .find(|v| shown_as(*v) == self.verified)
    }
}

/// How the page names a verification: by the registered method, when it was one.
fn shown_as(v: VerifiedBy) -> &'static str {
    match v {
        VerifiedBy::Registered(method) => method.as_str(),
        other => other.as_str(),
    }
}

/// The actions by the path segment of their forms.
fn action(segment: &str, deliver: &str) -> Option<(&'static str, Action)> {
    Some(match segment {
        "reset" => (
            "reset",
            Action::Reset {
                deliver_by_email: deliver == "email",
            },
        ),
        "unlock" => ("unlock", Action::Unlock),
        "clear-registrations" => ("clear-registrations", Action::ClearRegistrations),
        _ => return None,
    })
}

/// A point in time as the page shows it: in UTC, to the minute.
#[derive(Serialize)]
struct Moment {
    /// For `<time datetime>`.
    datetime: String,
    text: String,
}

fn moment(unix_ms: i64) -> Option<Moment> {
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    let date = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    Some(Moment {
        datetime: format!(
            "{date}T{:02}:{:02}:{:02}Z",
            at.hour(),
            at.minute(),
            at.second()
        ),
        text: format!("{date} {:02}:{:02} UTC", at.hour(), at.minute()),
    })
}

#[derive(Serialize)]
struct Event {
    at: Option<Moment>,
    event: String,
    outcome: String,
    method: Option<String>,
    actor: Option<String>,
}

/// The user card as the page shows it.
#[derive(Serialize)]
struct Card {
    sam_account_name: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    enabled: bool,
    locked: bool,
    locked_since: Option<Moment>,
    must_change_password: bool,
    password_last_set: Option<Moment>,
    totp: bool,
    email: Option<String>,
    ad_mail: Option<String>,
    registered_at: Option<Moment>,
    actionable: bool,
    blocked_until: Option<Moment>,
    events: Vec<Event>,
}

impl From<UserCard> for Card {
    fn from(c: UserCard) -> Self {
        Card {
            sam_account_name: c.sam_account_name,
            user_principal_name: c.user_principal_name,
            display_name: c.display_name,
            enabled: c.enabled,
            locked: c.locked,
            locked_since: c.locked_since_ms.and_then(moment),
            must_change_password: c.must_change_password,
            password_last_set: c.password_last_set_ms.and_then(moment),
            totp: c.totp,
            email: c.email,
            ad_mail: c.ad_mail,
            registered_at: c.registered_at_ms.and_then(moment),
            actionable: c.actionable,
            blocked_until: c.blocked_until_ms.and_then(moment),
            events: c
                .recent_events
                .into_iter()
                .map(|r| Event {
                    at: moment(r.event.at_ms),
                    event: r.event.event,
                    outcome: r.event.outcome,
                    method: r.event.method,
                    actor: r.event.actor,
                })
                .collect(),
        }
    }
}

/// A card for the template unit test in `mod.rs`.
#[cfg(test)]
pub fn sample_card(flag: bool) -> Value {
    use crate::domain::store::{AuditEvent, AuditRecord};
    let card = UserCard {
        sam_account_name: "jdoe".into(),
        user_principal_name: flag.then(|| "jdoe@example.test".into()),
        display_name: flag.then(|| "Jane Doe".into()),
        enabled: flag,
        locked: flag,
        locked_since_ms: flag.then_some(1_793_491_200_000),
        must_change_password: flag,
        password_last_set_ms: flag.then_some(1_793_491_200_000),
        totp: flag,
        email: flag.then(|| "j***@example.test".into()),
        registered_at_ms: flag.then_some(1_793_491_200_000),
        actionable: flag,
        ad_mail: flag.then(|| "j***@example.test".into()),
        verified_by: flag.then_some(VerifiedBy::Registered(MethodKind::Totp)),
        blocked_until_ms: flag.then_some(1_793_491_200_000),
        recent_events: (0..usize::from(flag))
            .map(|id| AuditRecord {
                id: i64::try_from(id).unwrap_or_default(),
                event: AuditEvent {
                    at_ms: 1_793_491_200_000,
                    event: "helpdesk_reset".into(),
                    outcome: "success".into(),
                    object_guid: None,
                    sam_account_name: Some("jdoe".into()),
                    actor: Some("op".into()),
                    client_ip: None,
                    method: None,
                    reason: None,
                    login_hash: None,
                },
            })
            .collect(),
    };
    Value::from_serialize(Card::from(card))
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

fn session(visitor: &Visitor) -> Result<&str, FlowError> {
    visitor.helpdesk.as_deref().ok_or(FlowError::Unauthorized)
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
    let looked_up = async {
        Helpdesk::new(&s.deps)
            .lookup(session(visitor)?, id, &visitor.client)
            .await
    }
    .await;
    let card = match looked_up {
        Ok(card) => card,
        Err(e) => return refused(s, visitor, e, id),
    };
    // The domain knows whether this operator verified the caller; the form only fills the gap
    // until the next look-up.
    let verified = card.verified_by.or(shown.verified);
    let card = Card::from(card);
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

async fn start(State(s): State<AppState>, visitor: Visitor) -> Response {
    let Some(token) = &visitor.helpdesk else {
        return s.pages.show(&visitor, sign_in_form(""));
    };
    match Helpdesk::new(&s.deps).operator(token).await {
        Ok(_) => s.pages.show(&visitor, search_page("")),
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
        Ok(token) => search_page("").bearer(HELPDESK, Some(&token)),
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
    let reply = sign_in_form("")
        .notice("notice_signed_out")
        .bearer(HELPDESK, None);
    s.pages.show(&visitor, reply)
}

async fn look_up(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let vars = Value::UNDEFINED;
    caller_page(&s, &visitor, &form.id, CARD, shown, vars, Outcome::Quiet).await
}

/// Mails the caller's manager the approval link; the card says so (or why not). The operator
/// looks the caller up again once the manager answered.
async fn manager_approval(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let asked = async {
        Helpdesk::new(&s.deps)
            .request_manager_approval(session(&visitor)?, &form.id, &visitor.client)
            .await
    }
    .await;
    let shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let outcome = match asked {
        Ok(()) => Outcome::Notice("notice_helpdesk_manager_asked"),
        Err(e) => Outcome::Failed(e, "error_manager_forbidden"),
    };
    caller_page(
        &s,
        &visitor,
        &form.id,
        CARD,
        shown,
        Value::UNDEFINED,
        outcome,
    )
    .await
}

async fn send_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let to = if form.to == CallerCheck::AdMail.as_str() {
        CallerCheck::AdMail
    } else {
        CallerCheck::Registered
    };
    let sent = async {
        Helpdesk::new(&s.deps)
            .send_code(session(&visitor)?, &form.id, to, &visitor.client)
            .await
    }
    .await;
    let shown = Shown {
        verified: form.verified(),
        email_sent: sent.is_ok(),
    };
    let outcome = match sent {
        Ok(()) => Outcome::Notice("notice_helpdesk_code_sent"),
        Err(e) => Outcome::Failed(e, "error_caller_no_email"),
    };
    caller_page(
        &s,
        &visitor,
        &form.id,
        CARD,
        shown,
        Value::UNDEFINED,
        outcome,
    )
    .await
}

async fn verify(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let mut shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let outcome = match MethodKind::parse(&form.method) {
        None => Outcome::Problem(StatusCode::BAD_REQUEST, "error_method"),
        Some(method) => {
            let verified = async {
                Helpdesk::new(&s.deps)
                    .verify(
                        session(&visitor)?,
                        &form.id,
                        method,
                        &form.code,
                        &visitor.client,
                    )
                    .await
            }
            .await;
            match verified {
                Ok(()) => {
                    shown.verified = (method == MethodKind::Totp)
                        .then_some(VerifiedBy::Registered(MethodKind::Totp));
                    Outcome::Notice("notice_caller_verified")
                }
                Err(e) => {
                    shown.email_sent = method == MethodKind::Email;
                    Outcome::Failed(e, "error_code")
                }
            }
        }
    };
    caller_page(
        &s,
        &visitor,
        &form.id,
        CARD,
        shown,
        Value::UNDEFINED,
        outcome,
    )
    .await
}

/// Lifts the caller's self-service block; a reason is all it takes.
async fn lift_block(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let lifted = async {
        Helpdesk::new(&s.deps)
            .lift_block(
                session(&visitor)?,
                &form.id,
                Some(&form.reason),
                &visitor.client,
            )
            .await
    }
    .await;
    let shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let outcome = match lifted {
        Ok(()) => Outcome::Notice("notice_block_lifted"),
        Err(e) => Outcome::Failed(e, "error_block_reason_required"),
    };
    caller_page(
        &s,
        &visitor,
        &form.id,
        CARD,
        shown,
        Value::UNDEFINED,
        outcome,
    )
    .await
}

/// Issues a registration code and shows it this once, like a temporary password.
async fn registration_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let issued = async {
        Helpdesk::new(&s.deps)
            .registration_code(session(&visitor)?, &form.id, &visitor.client)
            .await
    }
    .await;
    match issued {
        Ok(code) => {
            let reply = page("helpdesk_registration_code.html")
                .vars(context! {
                    id => &form.id,
                    verified => form.verified().map(shown_as),
                    code => code.as_str(),
                })
                .notice("notice_registration_code");
            s.pages.show(&visitor, reply)
        }
        Err(e) => {
            let shown = Shown {
                verified: form.verified(),
                email_sent: false,
            };
            let outcome = Outcome::Failed(e, "error_caller_protected");
            caller_page(
                &s,
                &visitor,
                &form.id,
                CARD,
                shown,
                Value::UNDEFINED,
                outcome,
            )
            .await
        }
    }
}

/// The confirmation step (are you sure?), with the reason field when the caller is unverified.
async fn confirm(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(segment): Path<String>,
    Form(form): Form<CallerForm>,
) -> Response {
    let Some((segment, _)) = action(&segment, "") else {
        return Redirect::to(HERE).into_response();
    };
    let shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let vars = context! { action => segment, reason => "" };
    if shown.verified.is_none() && s.deps.settings.helpdesk.require_verification {
        let outcome = Outcome::Problem(StatusCode::FORBIDDEN, "error_caller_not_verified");
        return caller_page(&s, &visitor, &form.id, CARD, shown, vars, outcome).await;
    }
    caller_page(&s, &visitor, &form.id, CONFIRM, shown, vars, Outcome::Quiet).await
}

async fn act(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(segment): Path<String>,
    Form(form): Form<CallerForm>,
) -> Response {
    let Some((segment, action)) = action(&segment, &form.deliver) else {
        return Redirect::to(HERE).into_response();
    };
    let mut shown = Shown {
        verified: form.verified(),
        email_sent: false,
    };
    let reason = Some(form.reason.as_str()).filter(|r| !r.trim().is_empty());
    let acted = async {
        Helpdesk::new(&s.deps)
            .act(
                session(&visitor)?,
                &form.id,
                action,
                reason,
                &visitor.client,
            )
            .await
    }
    .await;
    let vars = context! { action => segment, reason => &form.reason };
    let (template, outcome) = match acted {
        Ok(Some(password)) => {
            let mail_failed = action
                == Action::Reset {
                    deliver_by_email: true,
                };
            return temporary_password(&s, &visitor, &form, &password, mail_failed);
        }
        Ok(None) => (
            CARD,
            Outcome::Notice(match action {
                Action::Reset { .. } => "notice_password_mailed",
                Action::Unlock => "notice_caller_unlocked",
                Action::ClearRegistrations => "notice_registrations_cleared",
            }),
        ),
        // The domain asks for a reason before it looks for an address to mail to.
        Err(e @ FlowError::InvalidInput(_)) => {
            let no_address = reason.is_some()
                && action
                    == Action::Reset {
                        deliver_by_email: true,
                    };
            if no_address {
                (CONFIRM, Outcome::Failed(e, "error_caller_no_email"))
            } else {
                shown.verified = None;
                (CONFIRM, Outcome::Failed(e, "error_reason_required"))
            }
        }
        Err(e) => {
            if matches!(e, FlowError::NotVerified) {
                shown.verified = None;
            }
            (CARD, Outcome::Failed(e, "error_caller_protected"))
        }
    };
    caller_page(&s, &visitor, &form.id, template, shown, vars, outcome).await
}

/// The temporary password, shown this once: in the page of a POST answer (`no-store`), never in
/// a URL.
fn temporary_password(
    s: &AppState,
    visitor: &Visitor,
    form: &CallerForm,
    password: &SecretString,
    mail_failed: bool,
) -> Response {
    let reply = page("helpdesk_password.html").vars(context! {
        id => &form.id,
        verified => form.verified().map(shown_as),
        password => password.expose_secret(),
    });
    let reply = if mail_failed {
        reply.problem(StatusCode::OK, "error_password_not_mailed")
    } else {
        reply.notice("notice_password_reset")
    };
    s.pages.show(visitor, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_utc_to_the_minute() {
        let at = moment(1_793_491_260_000).unwrap();
        assert_eq!(at.datetime, "2026-11-01T00:01:00Z");
        assert_eq!(at.text, "2026-11-01 00:01 UTC");
    }

    #[test]
    fn actions_are_named_by_their_path_only() {
        assert_eq!(
            action("reset", "email"),
            Some((
                "reset",
                Action::Reset {
                    deliver_by_email: true
                }
            ))
        );
        assert_eq!(
            action("reset", "operator").map(|a| a.1),
            Some(Action::Reset {
                deliver_by_email: false
            })
        );
        assert_eq!(
            action("clear-registrations", "").map(|a| a.1),
            Some(Action::ClearRegistrations)
        );
        assert_eq!(action("delete", ""), None);
    }
}
