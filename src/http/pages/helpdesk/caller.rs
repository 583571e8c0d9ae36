//! Verifying the caller: a code mailed to them, a code they read out, or their manager's approval.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;

use crate::domain::helpdesk::{CallerCheck, Helpdesk, VerifiedBy};
use crate::domain::store::MethodKind;
use crate::http::AppState;
use crate::http::pages::Visitor;

use super::{CARD, CallerForm, Outcome, as_operator, caller_page, card_step, to_card};

/// Mails the caller's manager the approval link; the card says so (or why not). The operator
/// looks the caller up again once the manager answered.
pub(super) async fn manager_approval(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let ask = async |helpdesk: &Helpdesk<'_>, session: &str| {
        helpdesk
            .request_manager_approval(session, &form.id, &visitor.client)
            .await
    };
    let (notice, detail) = ("notice_helpdesk_manager_asked", "error_manager_forbidden");
    card_step(&s, &visitor, &form, ask, false, notice, detail).await
}

pub(super) async fn send_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let to = if form.to == CallerCheck::AdMail.as_str() {
        CallerCheck::AdMail
    } else {
        CallerCheck::Registered
    };
    let send = async |helpdesk: &Helpdesk<'_>, session: &str| {
        helpdesk
            .send_code(session, &form.id, to, &visitor.client)
            .await
    };
    let (notice, detail) = ("notice_helpdesk_code_sent", "error_caller_no_email");
    card_step(&s, &visitor, &form, send, true, notice, detail).await
}

pub(super) async fn verify(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<CallerForm>,
) -> Response {
    let mut shown = form.shown();
    let outcome = match MethodKind::parse(&form.method) {
        None => Outcome::Problem(StatusCode::BAD_REQUEST, "error_method"),
        Some(method) => {
            let verified = as_operator(&s, &visitor, async |helpdesk, session| {
                helpdesk
                    .verify(session, &form.id, method, &form.code, &visitor.client)
                    .await
            })
            .await;
            match verified {
                Ok(()) => {
                    shown.verified = (method == MethodKind::Totp)
                        .then_some(VerifiedBy::Registered(MethodKind::Totp));
                    let notice = Some("notice_caller_verified");
                    return to_card(&s, &visitor, &form.id, &shown, notice);
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
