//! The `/api/v1/enrollment` handlers: signing in, stepping up, and adding, confirming and
//! removing the methods a user resets with.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;

use super::{
    Address, Authenticator, Code, EnrollmentSession, EnrollmentStatus, NewAuthenticator,
    RecoveryCodeSet, SignIn, StepUp, TotpProvisioning,
};
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::enrollment::{Enrollment, StepUpMethod};
use crate::domain::locale::Locale;
use crate::domain::store::MethodKind;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::api::{Bearer, Body, OptionalBody};
use crate::http::extract::Caller;

#[utoipa::path(post, path = "/api/v1/enrollment/session", tag = "enrollment",
    request_body = SignIn,
    responses((status = 200, body = EnrollmentSession), (status = 401, body = ErrorBody),
        (status = 403, description = "not_in_scope: the password is right, but self-service is not for this account; password_change_required: AD requires a new password first (must change at next logon, or expired)", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn sign_in(
    State(s): State<AppState>,
    Caller(client): Caller,
    Body(body): Body<SignIn>,
) -> Result<Json<EnrollmentSession>, ApiError> {
    let password = SecretString::from(body.password);
    let enrollment = Enrollment::new(&s.deps);
    let token = enrollment
        .sign_in(&body.username, &password, &client)
        .await?;
    let status = enrollment.status(&token, &client).await?;
    Ok(Json(EnrollmentSession {
        token,
        step_up_required: status.step_up_required,
    }))
}

#[utoipa::path(post, path = "/api/v1/enrollment/step-up", tag = "enrollment",
    security(("bearer" = [])), request_body = StepUp,
    responses((status = 204), (status = 400, description = "invalid_code: wrong, expired, malformed or never sent", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn step_up(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<StepUp>,
) -> Result<StatusCode, ApiError> {
    let method = StepUpMethod::parse(&body.method).ok_or_else(|| {
        ApiError::BadRequest(
            "method must be \"totp\", \"email\", \"registration_code\" or \"recovery_code\""
                .to_owned(),
        )
    })?;
    Enrollment::new(&s.deps)
        .step_up(&token, method, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/enrollment/step-up/email", tag = "enrollment",
    security(("bearer" = [])),
    responses((status = 202, description = "a code is on its way to the confirmed address"),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn send_step_up_code(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .send_step_up_code(&token, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/api/v1/enrollment", tag = "enrollment",
    security(("bearer" = [])),
    responses((status = 200, body = EnrollmentStatus), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn enrollment_status(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<Json<EnrollmentStatus>, ApiError> {
    let status = Enrollment::new(&s.deps).status(&token, &client).await?;
    Ok(Json(EnrollmentStatus {
        totp: status.totp,
        email: status.email,
        reconfirm_due: status.reconfirm_due,
        step_up_required: status.step_up_required,
        step_up_methods: status.step_up_methods.iter().map(|m| m.as_str()).collect(),
        recovery_codes_left: status.recovery_codes_left,
        authenticators: status
            .authenticators
            .into_iter()
            .map(|app| Authenticator {
                id: app.id,
                name: app.name.unwrap_or_else(|| {
                    let page = &crate::i18n::catalog(Locale::En).page;
                    page.get("method_totp").cloned().unwrap_or_default()
                }),
                created_at: rfc3339(app.created_at),
                last_used_at: app.last_used_at.map(rfc3339),
            })
            .collect(),
        passkeys: status.passkeys.into_iter().map(Into::into).collect(),
    }))
}

fn rfc3339(at: Timestamp) -> String {
    humantime::format_rfc3339_millis(at.to_system_time()).to_string()
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp", tag = "enrollment",
    security(("bearer" = [])), request_body(content = Option<NewAuthenticator>, description = "optional: without it, the app is unnamed (\"Authenticator app\")"),
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 200, body = TotpProvisioning), (status = 401, body = ErrorBody),
        (status = 400, description = "invalid_request: the name is empty, longer than 64 characters or has control characters", body = ErrorBody),
        (status = 409, description = "limit_reached: the user has 5 authenticator apps; remove one first", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn begin_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    OptionalBody(body): OptionalBody<NewAuthenticator>,
) -> Result<Json<TotpProvisioning>, ApiError> {
    let p = Enrollment::new(&s.deps)
        .begin_totp(&token, body.name.as_deref(), &client)
        .await?;
    Ok(Json(TotpProvisioning {
        secret: p.secret,
        otpauth_uri: p.otpauth_uri,
        qr_svg: p.qr_svg,
    }))
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp/confirm", tag = "enrollment",
    security(("bearer" = [])), request_body = Code,
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "limit_reached: the user has 5 authenticator apps; remove one first", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn confirm_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<Code>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .confirm_totp(&token, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp/reconfirm", tag = "enrollment",
    security(("bearer" = [])), request_body = Code,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn reconfirm_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<Code>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .reconfirm_totp(&token, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/enrollment/email", tag = "enrollment",
    security(("bearer" = [])), request_body = Address,
    responses((status = 202), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "step_up_required: this session must step up first", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, description = "`mail_unavailable`: no mail server is configured; or `directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn begin_email(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<Address>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .begin_email(&token, &body.address, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/enrollment/email/confirm", tag = "enrollment",
    security(("bearer" = [])), request_body = Code,
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn confirm_email(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<Code>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .confirm_email(&token, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    s: &AppState,
    token: &str,
    kind: MethodKind,
    client: &Client,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps).remove(token, kind, client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one authenticator app.
#[utoipa::path(delete, path = "/api/v1/enrollment/totp/{id}", tag = "enrollment",
    params(("id" = String, Path, description = "the app's id from `GET /api/v1/enrollment`")),
    security(("bearer" = [])), responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204),
        (status = 404, description = "not_found: this user has no authenticator app of this id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn remove_totp_app(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if Enrollment::new(&s.deps)
        .remove_app(&token, &id, &client)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Removes every authenticator app.
#[utoipa::path(delete, path = "/api/v1/enrollment/totp", tag = "enrollment",
    security(("bearer" = [])), responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn remove_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    remove(&s, &token, MethodKind::Totp, &client).await
}

#[utoipa::path(delete, path = "/api/v1/enrollment/email", tag = "enrollment",
    security(("bearer" = [])), responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn remove_email(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    remove(&s, &token, MethodKind::Email, &client).await
}

#[utoipa::path(post, path = "/api/v1/enrollment/recovery-codes", tag = "enrollment",
    security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodeSet), (status = 401, body = ErrorBody),
        (status = 403, description = "step_up_required: this session must step up first; forbidden: recovery codes are turned off (`registration.recovery_codes`)", body = ErrorBody),
        (status = 409, description = "method_required: register an authenticator app or an email address first; recovery codes are a backup", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn new_recovery_codes(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<Json<RecoveryCodeSet>, ApiError> {
    let set = Enrollment::new(&s.deps)
        .new_recovery_codes(&token, &client)
        .await?;
    Ok(Json(RecoveryCodeSet::new(set)))
}

#[utoipa::path(delete, path = "/api/v1/enrollment/recovery-codes", tag = "enrollment",
    security(("bearer" = [])), responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn remove_recovery_codes(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .remove_recovery_codes(&token, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
