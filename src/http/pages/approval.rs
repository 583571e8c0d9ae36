//! `/approve/{token}`: the page behind the link a helpdesk operator's request mails to the
//! caller's AD manager. It asks for no password (a mailed link that asks for one teaches people
//! to fall for phishing): it names the operator and the caller, and the manager confirms with
//! their own registered method, or declines. The token in the path is the only key; it works
//! once, for 15 minutes.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::flash::{self, Carried, PageState};
use super::{Reply, Visitor};
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Answer, ApprovalView, Approvals, caller_label};
use crate::domain::store::MethodKind;
use crate::http::AppState;

/// Where the language switch leads: the link itself cannot be named here, so the page asks to
/// open it again (in the language just chosen, which a cookie keeps).
const HERE: &str = "/approve";
const PAGE: &str = "approve.html";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(HERE, get(reopen))
        .route("/approve/{token}", get(show).post(answer))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApprovalForm {
    /// `approve`, `decline` or `send_code`.
    action: String,
    /// `totp` or `email`, for `approve`.
    method: String,
    code: String,
    /// The form's mark (see [`PageState::replayed`]).
    once: String,
}

/// The answers a manager may have given, which this page confirms for as long as the page
/// state lasts (so a reload still shows it); otherwise it asks to open the link again.
const ANSWERED: [&str; 2] = ["approve_done", "approve_declined"];

async fn reopen(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    let answered = carried
        .and_then(|c| c.done)
        .and_then(|d| ANSWERED.into_iter().find(|a| *a == d));
    let reply = Reply::new("message.html")
        .here(HERE)
        .vars(context! { heading => "approve_title" })
        .notice(answered.unwrap_or("approve_reopen"));
    s.pages.show(&visitor, reply)
}

async fn show(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
    Carried(carried): Carried,
) -> Response {
    let state = carried.unwrap_or_default().marked();
    let viewed = Approvals::new(&s.deps).view(&token).await;
    let reply = match (viewed, state.notice_key()) {
        (Ok(view), Some(notice)) => form(&token, &view, &state).notice(notice),
        (Ok(view), None) => form(&token, &view, &state),
        (Err(e), _) => ended(e),
    };
    let response = no_referrer(s.pages.show(&visitor, reply));
    flash::kept(&s, &visitor, response, state)
}

async fn answer(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
    Carried(carried): Carried,
    Form(f): Form<ApprovalForm>,
) -> Response {
    let here = format!("{HERE}/{token}");
    let state = carried.unwrap_or_default();
    if state.replayed(&f.once) {
        // Answered already (a wrong code's page reloaded): the page again, no second attempt.
        return flash::see_other(&here, []);
    }
    let approvals = Approvals::new(&s.deps);
    let client = &visitor.client;
    let done = match (f.action.as_str(), MethodKind::parse(&f.method)) {
        ("send_code", _) => approvals.send_code(&token, client).await.map(|()| None),
        ("approve", Some(method)) => approvals
            .answer(&token, Answer::Approve { method }, &f.code, client)
            .await
            .map(|()| Some("approve_done")),
        ("decline", _) => approvals
            .answer(&token, Answer::Decline, "", client)
            .await
            .map(|()| Some("approve_declined")),
        _ => Err(FlowError::InvalidInput(String::new())),
    };
    let reply = match done {
        Ok(Some(outcome)) => {
            let state = PageState {
                done: Some(outcome.to_owned()),
                ..PageState::default()
            };
            return flash::onwards(&s, &visitor, HERE, &state);
        }
        // A code was mailed: the same page, with the field for it.
        Ok(None) => {
            let state = PageState {
                email_sent: true,
                ..PageState::default()
            }
            .with_notice("approve_code_sent");
            return flash::onwards(&s, &visitor, &here, &state);
        }
        Err(e @ (FlowError::FlowNotFound | FlowError::Store(_) | FlowError::Directory(_))) => {
            ended(e)
        }
        // A wrong code (counted) or a bad form: the page again, with what went wrong.
        Err(e) => match approvals.view(&token).await {
            Ok(view) => {
                let state = PageState {
                    email_sent: f.method == MethodKind::Email.as_str() || state.email_sent,
                    ..state
                }
                .remarked();
                let reply = form(&token, &view, &state).failure(e, "error_form_invalid");
                let response = shown(&s, &visitor, reply);
                return flash::kept(&s, &visitor, response, state);
            }
            Err(ended_by) => ended(ended_by),
        },
    };
    shown(&s, &visitor, reply)
}

/// The form, its code fields marked with `state`'s mark.
fn form(token: &str, view: &ApprovalView, state: &PageState) -> Reply {
    Reply::new(PAGE).here(HERE).vars(context! {
        token,
        operator => &view.operator,
        caller => caller_label(&view.caller_sam, view.caller_name.as_deref()),
        totp => view.totp,
        email => view.email,
        email_sent => state.email_sent,
        once => state.once,
    })
}

/// Unknown, used, declined, expired or ended by wrong codes: all read the same.
fn ended(error: FlowError) -> Reply {
    let reply = Reply::new("message.html")
        .here(HERE)
        .vars(context! { heading => "approve_title" });
    match error {
        FlowError::FlowNotFound => reply.problem(StatusCode::NOT_FOUND, "approve_ended"),
        other => reply.failure(other, "error_directory"),
    }
}

/// The link's token is in this page's address: no other site may see it as a referrer.
fn shown(s: &AppState, visitor: &Visitor, reply: Reply) -> Response {
    no_referrer(s.pages.show(visitor, reply))
}

fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
