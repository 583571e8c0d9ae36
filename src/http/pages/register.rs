//! `/register`: sign in with the current AD password, then add or remove an authenticator app or
//! an email address. The session token lives in the `sspr_session` cookie.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use minijinja::{Value, context};
use secrecy::SecretString;
use serde::Deserialize;

use super::cookies::{self, SESSION};
use super::flash::{self, Carried, PageState, kept, onwards, see_other, shown};
use super::{Reply, Visitor, back_to_start};
use crate::domain::enrollment::{Enrollment, RECOVERY_CODES, StepUpMethod};
use crate::domain::error::FlowError;
use crate::domain::store::{MAX_TOTP_APPS, MethodKind};
use crate::domain::totp::Provisioning;
use crate::http::AppState;

const HERE: &str = "/register";
/// The page of a secret to add to an authenticator app, while the session holds one.
const TOTP: &str = "/register/totp";
const EMAIL_CODE: &str = "/register/email/confirm";

pub fn routes() -> Router<AppState> {
    let step = |handler: MethodRouter<AppState>| handler.get(back_to_start);
    Router::new()
        .route(HERE, get(start).post(sign_in))
        .route("/register/totp", get(totp_form).post(begin_totp))
        .route("/register/totp/confirm", step(post(confirm_totp)))
        .route("/register/totp/reconfirm", step(post(reconfirm_totp)))
        .route("/register/email", get(email_form).post(begin_email))
        .route(EMAIL_CODE, get(email_code_form).post(confirm_email))
        .route(
            "/register/remove/{method}",
            get(confirm_removal).post(remove),
        )
        .route(
            "/register/remove/totp/{id}",
            get(confirm_app_removal).post(remove_app),
        )
        .route("/register/step-up", step(post(step_up)))
        .route("/register/step-up/email", step(post(send_step_up_code)))
        .route("/register/sign-out", step(post(sign_out)))
        .route("/register/recovery-codes", step(post(new_recovery_codes)))
        .route("/register/passkey", step(post(passkey_options)))
        .route("/register/passkey/confirm", step(post(confirm_passkey)))
        .route("/register/passkey/remove", step(post(remove_passkey)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignIn {
    username: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Code {
    code: String,
    /// Shown again above the code field; only display.
    address: String,
    /// The form's mark (see [`PageState::replayed`]).
    once: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StepUp {
    method: String,
    code: String,
    /// The form's mark (see [`PageState::replayed`]).
    once: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Address {
    address: String,
}

/// The passkey form: its name, and (sent by static/passkey.js) the browser's credential.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NewPasskey {
    name: String,
    /// `PublicKeyCredential.toJSON()`, as JSON text.
    credential: String,
    /// The form's mark (see [`PageState::replayed`]).
    once: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasskeyId {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AppName {
    /// Left empty: an unnamed app.
    name: String,
}

fn page(template: &'static str) -> Reply {
    Reply::new(template).here(HERE)
}

fn sign_in_form(username: &str) -> Reply {
    page("signin.html").vars(context! { username })
}

fn session(visitor: &Visitor) -> Result<&str, FlowError> {
    visitor.session.as_deref().ok_or(FlowError::Unauthorized)
}

/// Shows `error` on `reply`; an ended session (or one ended by this error) sends the user back
/// to the sign-in form instead, and forgets the cookie.
fn refused(
    s: &AppState,
    visitor: &Visitor,
    reply: Reply,
    error: FlowError,
    detail: &'static str,
) -> Response {
    let reply = match error {
        FlowError::Unauthorized
        | FlowError::InvalidCode {
            remaining_attempts: 0,
        } => sign_in_form("").bearer(SESSION, None),
        _ => reply,
    };
    s.pages.show(visitor, reply.failure(error, detail))
}

/// The overview: what is registered, and what can be added or removed. Its code forms carry
/// `state`'s mark.
async fn overview(
    s: &AppState,
    visitor: &Visitor,
    token: &str,
    state: &PageState,
) -> Result<Reply, FlowError> {
    let status = Enrollment::new(&s.deps)
        .status(token, &visitor.client)
        .await?;
    let passkeys: Vec<Value> = status
        .passkeys
        .iter()
        .map(|p| context! { id => p.id, name => p.name })
        .collect();
    let apps: Vec<_> = status
        .authenticators
        .iter()
        .map(|app| context! { id => app.id, name => app.name })
        .collect();
    Ok(page("register.html").vars(context! {
        totp => status.totp,
        apps,
        max_apps => MAX_TOTP_APPS,
        email => status.email,
        passkeys_on => s.deps.settings.passkeys.passkeys_enabled(),
        passkeys,
        reconfirm_due => status.reconfirm_due,
        step_up_required => status.step_up_required,
        step_up_methods => status
            .step_up_methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>(),
        once => state.once,
        recovery_codes => s.deps.settings.registration.recovery_codes,
        recovery_codes_left => status.recovery_codes_left,
        recovery_codes_total => RECOVERY_CODES,
    }))
}

/// The overview after a change, confirming it: a redirect, so Reload shows the overview again
/// and repeats nothing.
fn changed(s: &AppState, visitor: &Visitor, notice: &'static str) -> Response {
    onwards(s, visitor, HERE, &PageState::default().with_notice(notice))
}

async fn start(State(s): State<AppState>, visitor: Visitor, Carried(carried): Carried) -> Response {
    let state = carried.unwrap_or_default();
    let Some(token) = &visitor.session else {
        return shown(&s, &visitor, sign_in_form(""), state);
    };
    let state = state.marked();
    match overview(&s, &visitor, token, &state).await {
        Ok(reply) => shown(&s, &visitor, reply, state),
        Err(e) => {
            let mut response = refused(&s, &visitor, page("message.html"), e, "error_directory");
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
    let enrollment = Enrollment::new(&s.deps);
    let signed_in = match enrollment
        .sign_in(&form.username, &password, &visitor.client)
        .await
    {
        Ok(token) => token,
        Err(e) => {
            let reply = sign_in_form(&form.username).failure(e, "error_credentials");
            return s.pages.show(&visitor, reply);
        }
    };
    see_other(
        HERE,
        [cookies::bearer(
            SESSION,
            Some(&signed_in),
            s.pages.secure_cookies,
        )],
    )
}

/// `ABCD EFGH …`: a secret to type by hand, in groups of four.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts a new secret, then shows it on the page a GET renders from the session: Reload shows
/// the same secret, and Back starts none.
async fn begin_totp(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<AppName>,
) -> Response {
    let name = Some(form.name.trim()).filter(|n| !n.is_empty());
    let result = async {
        Enrollment::new(&s.deps)
            .begin_totp(session(&visitor)?, name, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(_) => see_other(TOTP, []),
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_app_name"),
    }
}

/// The secret the session holds to be confirmed, as a QR code and typed; without one, the
/// overview.
async fn totp_form(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    if visitor.session.is_none() {
        // Back to an ended session's step: its start, which offers to sign in.
        return see_other(HERE, []);
    }
    let result = async {
        Enrollment::new(&s.deps)
            .pending_totp(session(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(Some(provisioning)) => {
            let state = carried.unwrap_or_default().marked();
            let reply = totp_page(Some(&provisioning), &state);
            shown(&s, &visitor, reply, state)
        }
        Ok(None) => see_other(HERE, []),
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

/// The page to confirm an app: with the secret to add (`provisioning`), or only the code field
/// and a button for a new secret.
fn totp_page(provisioning: Option<&Provisioning>, state: &PageState) -> Reply {
    let Some(provisioning) = provisioning else {
        return page("register_totp.html").vars(context! { setup => false, once => state.once });
    };
    // A data: URI, which the CSP allows for images; base64 cannot break the attribute.
    let qr = Value::from_safe_string(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&provisioning.qr_svg)
    ));
    page("register_totp.html").vars(context! {
        setup => true,
        qr,
        otpauth_uri => provisioning.otpauth_uri,
        secret => grouped(&provisioning.secret),
        once => state.once,
    })
}

async fn confirm_totp(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<Code>,
) -> Response {
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        // Answered already (its error shown once): the page as it is now, no second attempt.
        return see_other(TOTP, []);
    }
    let result = async {
        let token = session(&visitor)?;
        Enrollment::new(&s.deps)
            .confirm_totp(token, &form.code, &visitor.client)
            .await?;
        Ok::<_, FlowError>(token)
    }
    .await;
    match result {
        Ok(_) => changed(&s, &visitor, "notice_totp_added"),
        Err(e) => {
            let state = state.remarked();
            let retry = totp_page(None, &state);
            let response = refused(&s, &visitor, retry, e, "error_totp_not_started");
            kept(&s, &visitor, response, state)
        }
    }
}

async fn reconfirm_totp(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<Code>,
) -> Response {
    let token = match session(&visitor) {
        Ok(token) => token,
        Err(e) => return refused(&s, &visitor, page("message.html"), e, "error_directory"),
    };
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        return see_other(HERE, []);
    }
    let enrollment = Enrollment::new(&s.deps);
    match enrollment
        .reconfirm_totp(token, &form.code, &visitor.client)
        .await
    {
        Ok(()) => changed(&s, &visitor, "notice_reconfirmed"),
        // The overview again, with its re-confirm form under the error.
        Err(e) => {
            refused_on_overview(&s, &visitor, token, state, e, "error_totp_not_started").await
        }
    }
}

/// The overview again with `error` under it, its forms newly marked (the one just sent was
/// answered); a session the error ended sends the user to sign in.
async fn refused_on_overview(
    s: &AppState,
    visitor: &Visitor,
    token: &str,
    state: PageState,
    e: FlowError,
    detail: &'static str,
) -> Response {
    let state = state.remarked();
    let response = match overview(s, visitor, token, &state).await {
        Ok(retry) => refused(s, visitor, retry, e, detail),
        Err(_) => refused(s, visitor, page("message.html"), e, "error_directory"),
    };
    kept(s, visitor, response, state)
}

async fn step_up(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<StepUp>,
) -> Response {
    let token = match session(&visitor) {
        Ok(token) => token,
        Err(e) => return refused(&s, &visitor, page("message.html"), e, "error_directory"),
    };
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        return see_other(HERE, []);
    }
    let Some(method) = StepUpMethod::parse(&form.method) else {
        return Redirect::to(HERE).into_response();
    };
    match Enrollment::new(&s.deps)
        .step_up(token, method, &form.code, &visitor.client)
        .await
    {
        Ok(()) => changed(&s, &visitor, "notice_stepped_up"),
        Err(e) => refused_on_overview(&s, &visitor, token, state, e, "error_directory").await,
    }
}

async fn send_step_up_code(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    let token = match session(&visitor) {
        Ok(token) => token,
        Err(e) => return refused(&s, &visitor, page("message.html"), e, "error_directory"),
    };
    match Enrollment::new(&s.deps)
        .send_step_up_code(token, &visitor.client)
        .await
    {
        Ok(()) => changed(&s, &visitor, "notice_stepup_code_sent"),
        Err(e) => {
            let state = carried.unwrap_or_default();
            refused_on_overview(&s, &visitor, token, state, e, "error_directory").await
        }
    }
}

async fn email_form(State(s): State<AppState>, visitor: Visitor) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .directory_user(session(&visitor)?)
            .await
    }
    .await;
    match result {
        Ok(user) => {
            let address = user.and_then(|u| u.mail).unwrap_or_default();
            let reply = page("register_email.html").vars(context! { step => "address", address });
            s.pages.show(&visitor, reply)
        }
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

async fn begin_email(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<Address>,
) -> Response {
    let address = form.address.trim();
    let result = async {
        Enrollment::new(&s.deps)
            .begin_email(session(&visitor)?, address, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            let state = PageState {
                address: Some(address.to_owned()),
                ..PageState::default()
            }
            .with_notice("notice_code_sent");
            onwards(&s, &visitor, EMAIL_CODE, &state)
        }
        Err(e) => {
            let retry = page("register_email.html").vars(context! { step => "address", address });
            refused(&s, &visitor, retry, e, "error_email_address")
        }
    }
}

/// The code step, after the code was mailed; without that, the address step.
async fn email_code_form(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
) -> Response {
    let Some(state) = carried.filter(|c| c.address.is_some() && visitor.session.is_some()) else {
        return see_other("/register/email", []);
    };
    let state = state.marked();
    shown(&s, &visitor, email_code_page(&state), state)
}

fn email_code_page(state: &PageState) -> Reply {
    page("register_email.html").vars(context! {
        step => "code",
        address => state.address.as_deref(),
        once => state.once,
    })
}

async fn confirm_email(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<Code>,
) -> Response {
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        return see_other(EMAIL_CODE, []);
    }
    let result = async {
        let token = session(&visitor)?;
        Enrollment::new(&s.deps)
            .confirm_email(token, &form.code, &visitor.client)
            .await?;
        Ok::<_, FlowError>(token)
    }
    .await;
    match result {
        Ok(_) => changed(&s, &visitor, "notice_email_added"),
        Err(e) => {
            let state = PageState {
                address: Some(form.address.trim().to_owned()),
                ..state
            }
            .remarked();
            let response = refused(
                &s,
                &visitor,
                email_code_page(&state),
                e,
                "error_email_address",
            );
            kept(&s, &visitor, response, state)
        }
    }
}

/// The confirmation step before a method is removed.
async fn confirm_removal(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(method): Path<String>,
) -> Response {
    let Some(kind) = MethodKind::parse(&method) else {
        return Redirect::to(HERE).into_response();
    };
    let result = async {
        Enrollment::new(&s.deps)
            .status(session(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(status) => {
            let reply = page("register_remove.html").vars(context! {
                method => kind.as_str(),
                email => status.email,
            });
            s.pages.show(&visitor, reply)
        }
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

async fn remove(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(method): Path<String>,
) -> Response {
    let Some(kind) = MethodKind::parse(&method) else {
        return Redirect::to(HERE).into_response();
    };
    let result = async {
        let token = session(&visitor)?;
        Enrollment::new(&s.deps)
            .remove(token, kind, &visitor.client)
            .await?;
        Ok::<_, FlowError>(token)
    }
    .await;
    match result {
        Ok(_) => changed(&s, &visitor, "notice_removed"),
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

/// The confirmation step before one authenticator app is removed; an id that is not one of the
/// user's leads back to the overview.
async fn confirm_app_removal(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .status(session(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(status) => match status.authenticators.into_iter().find(|a| a.id == id) {
            Some(app) => {
                let reply = page("register_remove.html").vars(context! {
                    method => MethodKind::Totp.as_str(),
                    app_id => app.id,
                    app_name => app.name,
                });
                s.pages.show(&visitor, reply)
            }
            None => Redirect::to(HERE).into_response(),
        },
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

async fn remove_app(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .remove_app(session(&visitor)?, &id, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(true) => changed(&s, &visitor, "notice_removed"),
        Ok(false) => Redirect::to(HERE).into_response(),
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

/// Makes a new set of recovery codes and shows it, this once: only their hashes are kept.
async fn new_recovery_codes(State(s): State<AppState>, visitor: Visitor) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .new_recovery_codes(session(&visitor)?, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(set) => {
            let codes: Vec<&str> = set.codes.iter().map(|c| c.as_str()).collect();
            let reply = page("register_recovery_codes.html").vars(context! { codes });
            s.pages.show(&visitor, reply)
        }
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

/// The creation options for the page's script, which runs `navigator.credentials.create` with
/// them; a refusal as `{"message"}` for it to show.
async fn passkey_options(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewPasskey>,
) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .begin_passkey(session(&visitor)?, &form.name, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(options) => Json(options).into_response(),
        Err(e) => s
            .pages
            .refusal_json(visitor.locale, e, "error_passkey_name"),
    }
}

async fn confirm_passkey(
    State(s): State<AppState>,
    visitor: Visitor,
    Carried(carried): Carried,
    Form(form): Form<NewPasskey>,
) -> Response {
    let token = match session(&visitor) {
        Ok(token) => token,
        Err(e) => return refused(&s, &visitor, page("message.html"), e, "error_directory"),
    };
    let state = carried.unwrap_or_default();
    if state.replayed(&form.once) {
        return see_other(HERE, []);
    }
    // Not JSON (no script sent it): checked as no answer to the challenge, and refused.
    let credential = serde_json::from_str(&form.credential).unwrap_or_default();
    match Enrollment::new(&s.deps)
        .confirm_passkey(token, &form.name, &credential, &visitor.client)
        .await
    {
        Ok(()) => changed(&s, &visitor, "notice_passkey_added"),
        Err(e) => refused_on_overview(&s, &visitor, token, state, e, "error_passkey_name").await,
    }
}

async fn remove_passkey(
    State(s): State<AppState>,
    visitor: Visitor,
    Form(form): Form<PasskeyId>,
) -> Response {
    let result = async {
        Enrollment::new(&s.deps)
            .remove_passkey(session(&visitor)?, &form.id, &visitor.client)
            .await
    }
    .await;
    match result {
        Ok(()) => changed(&s, &visitor, "notice_passkey_removed"),
        Err(e) => refused(&s, &visitor, page("message.html"), e, "error_directory"),
    }
}

async fn sign_out(State(s): State<AppState>, visitor: Visitor) -> Response {
    if let Some(token) = &visitor.session {
        // The session ends on the server too, so a copied cookie is worth nothing.
        if let Err(e) = Enrollment::new(&s.deps).sign_out(token).await {
            tracing::warn!(error = %e, "session not deleted at sign-out");
        }
    }
    let secure = s.pages.secure_cookies;
    let state = PageState::default().with_notice("notice_signed_out");
    see_other(
        HERE,
        [
            cookies::bearer(SESSION, None, secure),
            flash::cookie(&s.deps.keys, None, Some(&state), secure),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn secrets_are_grouped_in_fours() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
        assert_eq!(grouped(""), "");
    }
}
