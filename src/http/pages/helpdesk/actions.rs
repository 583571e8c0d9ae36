//! What an operator does to a verified caller's account, each after a confirmation step: reset,
//! unlock, clear registrations, lift a block, issue a registration code.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Action, Helpdesk};
use crate::http::AppState;
use crate::http::pages::Visitor;
use crate::http::pages::flash::{Carried, PageState, kept, onwards, see_other, shown};

use super::{
    CALLER, CARD, CONFIRM, CallerForm, HERE, Outcome, as_operator, caller_page, card_step, page,
    refused, shown_as, to_card,
};

/// Where the code an operator issued is shown.
pub(super) const REGISTRATION_CODE: &str = "/helpdesk/user/registration-code";

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

/// Lifts the caller's self-service block; a reason is all it takes.
pub(super) async fn lift_block(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let lift = async |helpdesk: &Helpdesk<'_>, session: &str| {
        helpdesk
            .lift_block(session, &form.id, Some(&form.reason), &visitor.client)
            .await
    };
    let (notice, detail) = ("notice_block_lifted", "error_block_reason_required");
    card_step(&s, &visitor, carried, &form, lift, false, notice, detail).await
}

/// Issues a registration code, shown on the page a GET renders from the operator's session:
/// Reload shows the same code and issues none.
pub(super) async fn registration_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let issued = as_operator(&s, &visitor, async |helpdesk, session| {
        helpdesk
            .registration_code(session, &form.id, &visitor.client)
            .await
    })
    .await;
    match issued {
        Ok(_) => {
            let state = PageState {
                caller: Some(form.id.clone()),
                verified: form.verified().map(|v| shown_as(v).to_owned()),
                ..PageState::default()
            }
            .with_notice("notice_registration_code");
            onwards(&s, &visitor, REGISTRATION_CODE, &state)
        }
        Err(e) => {
            let outcome = Outcome::Failed(e, "error_caller_protected");
            let vars = context! { once => carried.and_then(|c| c.once) };
            caller_page(&s, &visitor, &form.id, CARD, form.shown(), vars, outcome).await
        }
    }
}

/// The code issued last for the caller the page state names; without one, the card.
pub(super) async fn registration_code_form(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    let Some((state, id)) = carried.and_then(|c| c.caller.clone().map(|id| (c, id))) else {
        return see_other(HERE, []);
    };
    let issued = as_operator(&s, &visitor, async |helpdesk, session| {
        helpdesk.issued_registration_code(session, &id).await
    })
    .await;
    match issued {
        Ok(Some(code)) => {
            let reply = page("helpdesk_registration_code.html").vars(context! {
                id => &id,
                verified => state.verified.as_deref(),
                code => code.as_str(),
            });
            shown(&s, &visitor, reply, state)
        }
        Ok(None) => see_other(CALLER, []),
        Err(e) => refused(&s, &visitor, e, &id),
    }
}

/// The confirmation step (are you sure?), with the reason field when the caller is unverified.
///
/// Its form carries a new mark (see [`PageState::replayed`]), so the action it confirms is done
/// once, however often the browser sends the form again.
pub(super) async fn confirm(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(segment): Path<String>,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let Some((segment, _)) = action(&segment, "") else {
        return Redirect::to(HERE).into_response();
    };
    let shown = form.shown();
    let carried = carried.unwrap_or_default();
    if shown.verified.is_none() && s.deps.settings.helpdesk.require_verification {
        // The card as it was, its forms (and their mark) unchanged.
        let vars = context! { once => &carried.once };
        let outcome = Outcome::Problem(StatusCode::FORBIDDEN, "error_caller_not_verified");
        return caller_page(&s, &visitor, &form.id, CARD, shown, vars, outcome).await;
    }
    let state = PageState {
        caller: Some(form.id.clone()),
        verified: shown.verified.map(|v| shown_as(v).to_owned()),
        ..carried
    }
    .remarked();
    let vars = context! { action => segment, reason => "", once => &state.once };
    let response = caller_page(&s, &visitor, &form.id, CONFIRM, shown, vars, Outcome::Quiet).await;
    kept(&s, &visitor, response, state)
}

pub(super) async fn act(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(segment): Path<String>,
    Carried(carried): Carried,
    Form(form): Form<CallerForm>,
) -> Response {
    let Some((segment, action)) = action(&segment, &form.deliver) else {
        return Redirect::to(HERE).into_response();
    };
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        // Done already (Reload of its answer): the card, and nothing done twice.
        return to_card(&s, &visitor, &form.id, &form.shown(), None);
    }
    let mut shown = form.shown();
    let reason = Some(form.reason.as_str()).filter(|r| !r.trim().is_empty());
    let acted = as_operator(&s, &visitor, async |helpdesk, session| {
        helpdesk
            .act(session, &form.id, action, reason, &visitor.client)
            .await
    })
    .await;
    let vars = context! { action => segment, reason => &form.reason, once => &state.once };
    let (template, outcome) = match acted {
        Ok(Some(password)) => {
            let mail_failed = action
                == Action::Reset {
                    deliver_by_email: true,
                };
            let response = temporary_password(&s, &visitor, &form, &password, mail_failed);
            return kept(&s, &visitor, response, state.remarked());
        }
        Ok(None) => {
            let notice = match action {
                Action::Reset { .. } => "notice_password_mailed",
                Action::Unlock => "notice_caller_unlocked",
                Action::ClearRegistrations => "notice_registrations_cleared",
            };
            return to_card(&s, &visitor, &form.id, &shown, Some(notice));
        }
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
