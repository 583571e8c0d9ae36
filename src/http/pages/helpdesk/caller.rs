//! Verifying the caller: a code mailed to them, a code they read out, or their manager's approval.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;

use crate::domain::helpdesk::{CallerCheck, Helpdesk, VerifiedBy};
use crate::domain::store::MethodKind;
use crate::http::AppState;
use crate::http::pages::Visitor;
use crate::http::pages::flash::{Carried, PageState, kept, see_other};

use super::{
    CALLER, CARD, CallerForm, Outcome, as_operator, caller_page, card_step, shown_as, to_card,
};

/// Mails the caller's manager the approval link; the card says so (or why not). The operator
/// looks the caller up again once the manager answered.
pub(super) async fn manager_approval(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let ask = async |helpdesk: &Helpdesk<'_>, session: &str| {
        helpdesk
            .request_manager_approval(session, &form.id, &visitor.client)
            .await
    };
    let (notice, detail) = ("notice_helpdesk_manager_asked", "error_manager_forbidden");
    card_step(&s, &visitor, carried, &form, ask, false, notice, detail).await
}

pub(super) async fn send_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
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
    card_step(&s, &visitor, carried, &form, send, true, notice, detail).await
}

/// Judges the code the caller read out or was mailed. A form the card showed before its last
/// answer (Reload of a wrong code) is not judged again: it would cost the caller an attempt.
pub(super) async fn verify(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        return see_other(CALLER, []);
    }
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
    // The card a GET shows next: this caller, as this answer shows them, with a new mark.
    let state = PageState {
        caller: Some(form.id.clone()),
        verified: shown.verified.map(|v| shown_as(v).to_owned()),
        email_sent: shown.email_sent,
        notice: None,
        ..state
    }
    .remarked();
    let vars = context! { once => &state.once };
    let response = caller_page(&s, &visitor, &form.id, CARD, shown, vars, outcome).await;
    kept(&s, &visitor, response, state)
}
