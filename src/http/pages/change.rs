//! `/change`: a new password for someone who knows the current one, on one page. Its POST
//! answers with a redirect to the done page (Reload there sends nothing again), or shows the
//! form again with what went wrong.

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::flash::{self, Carried, PageState, see_other};
use super::{Reply, Visitor, back_to_start};
use crate::domain::change::PasswordChange;
use crate::http::AppState;

const HERE: &str = "/change";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(HERE, get(form).post(change))
        .route("/change/done", get(done))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Change {
    username: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// The form, with the rules that apply before anything is typed (the domain's: nobody is known
/// yet).
async fn page(s: &AppState, visitor: &Visitor, username: &str) -> Reply {
    let rules = match PasswordChange::new(&s.deps).requirements().await {
        Ok(list) => s.pages.change_rule_items(visitor.locale, &list),
        // The page then shows the general hint; the password is still checked in full.
        Err(e) => {
            tracing::debug!(error = %e, "password rules not listed");
            Vec::new()
        }
    };
    Reply::new("change.html")
        .here(HERE)
        .vars(context! { rules, username })
}

async fn form(State(s): State<AppState>, visitor: Visitor) -> Response {
    let reply = page(&s, &visitor, "").await;
    s.pages.show(&visitor, reply)
}

async fn change(State(s): State<AppState>, visitor: Visitor, Form(form): Form<Change>) -> Response {
    if form.new_password != form.confirm_password {
        let reply = page(&s, &visitor, &form.username)
            .await
            .problem(StatusCode::BAD_REQUEST, "error_passwords_differ");
        return s.pages.show(&visitor, reply);
    }
    let current = SecretString::from(form.current_password);
    let new = SecretString::from(form.new_password);
    let result = PasswordChange::new(&s.deps)
        .change(&form.username, &current, &new, &visitor.client)
        .await;
    match result {
        Ok(()) => {
            let state = PageState {
                done: Some(HERE.to_owned()),
                ..PageState::default()
            };
            let secure = s.pages.secure_cookies;
            see_other(
                "/change/done",
                [flash::cookie(&s.deps.keys, None, Some(&state), secure)],
            )
        }
        Err(e) => {
            // Broken rules come back listed; this key is the fallback.
            let reply = page(&s, &visitor, &form.username)
                .await
                .failure(e, "error_password_policy");
            s.pages.show(&visitor, reply)
        }
    }
}

async fn done(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    uri: Uri,
) -> Response {
    if carried.and_then(|c| c.done).is_none_or(|d| d != HERE) {
        return back_to_start(uri).await.into_response();
    }
    let reply = Reply::new("done.html")
        .here(HERE)
        .vars(context! { unlock => false });
    s.pages.show(&visitor, reply)
}
