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

use super::{CARD, CallerForm, Outcome, Shown, caller_page, session};

/// Mails the caller's manager the approval link; the card says so (or why not). The operator
/// looks the caller up again once the manager answered.
pub(super) async fn manager_approval(
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

pub(super) async fn verify(
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
