//! `/api/v1/helpdesk`: the helpdesk API. Works whether or not the licence is declared
//! (administrators may always reset passwords); off while `helpdesk.group_dn` is empty.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Bearer, Body, OptionalBody, Token, method};
use crate::domain::helpdesk::{Action, CallerCheck, Helpdesk, UserCard};
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::extract::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/helpdesk/session", post(sign_in).delete(sign_out))
        .route("/api/v1/helpdesk/users/{id}", get(lookup))
        .route("/api/v1/helpdesk/users/{id}/email-code", post(email_code))
        .route("/api/v1/helpdesk/users/{id}/verify", post(verify))
        .route("/api/v1/helpdesk/users/{id}/reset", post(reset))
        .route("/api/v1/helpdesk/users/{id}/unlock", post(unlock))
        .route("/api/v1/helpdesk/users/{id}/enrollment", delete(clear))
        .route("/api/v1/helpdesk/users/{id}/block", delete(lift_block))
        .route(
            "/api/v1/helpdesk/users/{id}/registration-code",
            post(registration_code),
        )
        .route(
            "/api/v1/helpdesk/users/{id}/manager-approval",
            post(manager_approval),
        )
}

#[derive(Deserialize, ToSchema)]
pub struct OperatorSignIn {
    username: String,
    password: String,
    /// The current code of the operator's own authenticator app (required while
    /// `helpdesk.operator_second_factor` is on).
    #[serde(default)]
    code: Option<String>,
}

/// A self-service event from the audit table.
#[derive(Serialize, ToSchema)]
pub struct Event {
    /// Unix milliseconds.
    at_ms: i64,
    event: String,
    outcome: String,
    method: Option<String>,
    actor: Option<String>,
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserStatus {
    sam_account_name: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    enabled: bool,
    locked: bool,
    /// Unix milliseconds, when locked.
    locked_since_ms: Option<i64>,
    must_change_password: bool,
    password_last_set_ms: Option<i64>,
    totp: bool,
    /// The confirmed address, masked.
    email: Option<String>,
    registered_at_ms: Option<i64>,
    /// Whether the helpdesk may act on this account (protected accounts and helpdesk members
    /// are refused unless allow-listed).
    actionable: bool,
    /// The account's AD `mail`, masked: where an `ad_mail` code goes.
    ad_mail: Option<String>,
    /// How this operator verified the caller in this session: `registered` (a registered
    /// method), `ad_mail` (a code mailed to AD `mail`) or `manager` (the AD manager approved).
    verified_by: Option<String>,
    /// Until when (Unix milliseconds) too many wrong codes block the user's self-service; null
    /// when not blocked. `DELETE .../block` lifts it.
    blocked_until: Option<i64>,
    recent_events: Vec<Event>,
}

impl From<UserCard> for UserStatus {
    fn from(c: UserCard) -> Self {
        UserStatus {
            sam_account_name: c.sam_account_name,
            user_principal_name: c.user_principal_name,
            display_name: c.display_name,
            enabled: c.enabled,
            locked: c.locked,
            locked_since_ms: c.locked_since_ms,
            must_change_password: c.must_change_password,
            password_last_set_ms: c.password_last_set_ms,
            totp: c.totp,
            email: c.email,
            registered_at_ms: c.registered_at_ms,
            actionable: c.actionable,
            ad_mail: c.ad_mail,
            verified_by: c.verified_by.map(|m| m.as_str().to_owned()),
            blocked_until: c.blocked_until_ms,
            recent_events: c
                .recent_events
                .into_iter()
                .map(|r| Event {
                    at_ms: r.event.at.as_millis(),
                    event: r.event.event.as_str().to_owned(),
                    outcome: r.event.outcome.as_str().to_owned(),
                    method: r.event.method,
                    actor: r.event.actor,
                    reason: r.event.reason,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CallerCode {
    // Documented as the enum, parsed by hand: an unknown one gets the API's own message.
    /// `totp` or `email`.
    #[schema(value_type = super::MethodName)]
    method: String,
    code: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct EmailCodeRequest {
    // Documented as the enum, parsed by hand: an unknown one gets the API's own message.
    /// `registered` (the confirmed address; the default) or `ad_mail` (the AD `mail` attribute).
    #[schema(value_type = Option<EmailCodeTo>)]
    to: Option<String>,
}

/// Where a helpdesk verification code is mailed.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the API; `to` is parsed by hand")]
pub enum EmailCodeTo {
    Registered,
    AdMail,
}

#[derive(Serialize, ToSchema)]
pub struct CallerVerified {
    verified: bool,
}

#[derive(Deserialize, ToSchema, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Deliver {
    /// Shown once to the operator in the answer.
    #[default]
    Operator,
    /// Mailed to the user's confirmed address instead.
    Email,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// Why; required when acting without verification (if allowed at all).
    reason: Option<String>,
    #[serde(default)]
    deliver: Deliver,
}

#[derive(Serialize, ToSchema)]
pub struct TemporaryPassword {
    /// Present when delivered to the operator; shown once, stored nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    temporary_password: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct Reason {
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/helpdesk/session", tag = "helpdesk",
    operation_id = "helpdesk_sign_in", request_body = OperatorSignIn,
    responses((status = 200, body = Token), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn sign_in(
    State(s): State<AppState>,
    Caller(client): Caller,
    Body(body): Body<OperatorSignIn>,
) -> Result<Json<Token>, ApiError> {
    let password = SecretString::from(body.password);
    let token = Helpdesk::new(&s.deps)
        .sign_in(&body.username, &password, body.code.as_deref(), &client)
        .await?;
    Ok(Json(Token::new(token)))
}

#[utoipa::path(delete, path = "/api/v1/helpdesk/session", tag = "helpdesk",
    operation_id = "helpdesk_sign_out",
    security(("bearer" = [])), responses((status = 204)))]
pub(super) async fn sign_out(
    State(s): State<AppState>,
    Bearer(token): Bearer,
) -> Result<StatusCode, ApiError> {
    let helpdesk = Helpdesk::new(&s.deps);
    // Only an operator's own live session: any other token is answered like on every other
    // operator call, and a registration session's token cannot end that session here.
    helpdesk.operator(&token).await?;
    helpdesk.sign_out(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/helpdesk/users/{id}", tag = "helpdesk",
    operation_id = "helpdesk_lookup",
    params(("id" = String, Path, description = "sAMAccountName, userPrincipalName or mail")),
    security(("bearer" = [])),
    responses((status = 200, body = UserStatus), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn lookup(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<Json<UserStatus>, ApiError> {
    let card = Helpdesk::new(&s.deps).lookup(&token, &id, &client).await?;
    Ok(Json(card.into()))
}

#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/email-code", tag = "helpdesk",
    operation_id = "helpdesk_email_code",
    params(("id" = String, Path)), security(("bearer" = [])),
    request_body = Option<EmailCodeRequest>,
    responses((status = 202), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn email_code(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<EmailCodeRequest>,
) -> Result<StatusCode, ApiError> {
    let to = match body.to.as_deref() {
        None | Some("registered") => CallerCheck::Registered,
        Some("ad_mail") => CallerCheck::AdMail,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "to must be \"registered\" or \"ad_mail\"".to_owned(),
            ));
        }
    };
    Helpdesk::new(&s.deps)
        .send_code(&token, &id, to, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/verify", tag = "helpdesk",
    operation_id = "helpdesk_verify",
    params(("id" = String, Path)), security(("bearer" = [])), request_body = CallerCode,
    responses((status = 200, body = CallerVerified), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn verify(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    Body(body): Body<CallerCode>,
) -> Result<Json<CallerVerified>, ApiError> {
    let method = method(&body.method)?;
    Helpdesk::new(&s.deps)
        .verify(&token, &id, method, &body.code, &client)
        .await?;
    Ok(Json(CallerVerified { verified: true }))
}

#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/reset", tag = "helpdesk",
    operation_id = "helpdesk_reset",
    params(("id" = String, Path)), security(("bearer" = [])), request_body = ResetRequest,
    responses((status = 200, body = TemporaryPassword), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn reset(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    Body(body): Body<ResetRequest>,
) -> Result<Json<TemporaryPassword>, ApiError> {
    let action = Action::Reset {
        deliver_by_email: body.deliver == Deliver::Email,
    };
    let password = Helpdesk::new(&s.deps)
        .act(&token, &id, action, body.reason.as_deref(), &client)
        .await?;
    Ok(Json(TemporaryPassword {
        temporary_password: password.map(|p| p.expose_secret().to_owned()),
    }))
}

async fn act_without_answer(
    s: &AppState,
    token: &str,
    id: &str,
    action: Action,
    reason: Reason,
    client: &crate::domain::deps::Client,
) -> Result<StatusCode, ApiError> {
    let reason = reason.reason;
    Helpdesk::new(&s.deps)
        .act(token, id, action, reason.as_deref(), client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/unlock", tag = "helpdesk",
    operation_id = "helpdesk_unlock",
    params(("id" = String, Path)), security(("bearer" = [])), request_body = Option<Reason>,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn unlock(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<Reason>,
) -> Result<StatusCode, ApiError> {
    act_without_answer(&s, &token, &id, Action::Unlock, body, &client).await
}

#[utoipa::path(delete, path = "/api/v1/helpdesk/users/{id}/enrollment", tag = "helpdesk",
    operation_id = "helpdesk_clear",
    params(("id" = String, Path)), security(("bearer" = [])), request_body = Option<Reason>,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn clear(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<Reason>,
) -> Result<StatusCode, ApiError> {
    act_without_answer(&s, &token, &id, Action::ClearRegistrations, body, &client).await
}

#[utoipa::path(delete, path = "/api/v1/helpdesk/users/{id}/block", tag = "helpdesk",
    operation_id = "helpdesk_lift_block",
    params(("id" = String, Path)), security(("bearer" = [])), request_body = Reason,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn lift_block(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<Reason>,
) -> Result<StatusCode, ApiError> {
    Helpdesk::new(&s.deps)
        .lift_block(&token, &id, body.reason.as_deref(), &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time registration code, shown once.
#[derive(Serialize, ToSchema)]
pub struct RegistrationCode {
    /// `ABCD-EFGH-JKMN-PQRS`; stands in for the caller's step-up once, until
    /// `registration.code_lifetime` ends. Stored only as a keyed hash.
    code: String,
}

#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/registration-code", tag = "helpdesk",
    operation_id = "helpdesk_registration_code",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RegistrationCode), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn registration_code(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<Json<RegistrationCode>, ApiError> {
    let code = Helpdesk::new(&s.deps)
        .registration_code(&token, &id, &client)
        .await?;
    Ok(Json(RegistrationCode {
        code: code.as_str().to_owned(),
    }))
}

/// Mails the caller's AD manager (at the manager's AD `mail`) a link, valid once for 15 minutes,
/// to a page that asks for no password: the manager confirms with their own registered method
/// that the person on the phone with this operator is the caller, or declines. An approval makes
/// the card's `verified_by` `manager`. Refused with 409 and its own code when the caller has no
/// manager (`no_manager`), the manager is disabled (`manager_disabled`), has no AD mail
/// (`manager_without_mail`), registered no method (`manager_not_registered`), is the operator
/// asking (`manager_is_operator`) or was set less than `helpdesk.manager_min_age` ago
/// (`manager_too_recent`); 403 `forbidden` for a protected caller or when `manager` is not in
/// `helpdesk.verification_methods`.
#[utoipa::path(post, path = "/api/v1/helpdesk/users/{id}/manager-approval", tag = "helpdesk",
    operation_id = "helpdesk_manager_approval",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn manager_approval(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Helpdesk::new(&s.deps)
        .request_manager_approval(&token, &id, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
