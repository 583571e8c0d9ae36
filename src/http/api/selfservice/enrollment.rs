//! The `/api/v1/enrollment` handlers: signing in, stepping up, and adding, confirming and
//! removing the methods a user resets with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;

use super::{Address, Code, EnrollmentSession, EnrollmentStatus, SignIn, StepUp, TotpProvisioning};
use crate::domain::deps::Client;
use crate::domain::enrollment::{Enrollment, StepUpMethod};
use crate::domain::store::MethodKind;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::api::{Bearer, Body};
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
            "method must be \"totp\", \"email\" or \"registration_code\"".to_owned(),
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
        passkeys: status.passkeys.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp", tag = "enrollment",
    security(("bearer" = [])),
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 200, body = TotpProvisioning), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn begin_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<Json<TotpProvisioning>, ApiError> {
    let p = Enrollment::new(&s.deps).begin_totp(&token, &client).await?;
    Ok(Json(TotpProvisioning {
        secret: p.secret,
        otpauth_uri: p.otpauth_uri,
        qr_svg: p.qr_svg,
    }))
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp/confirm", tag = "enrollment",
    security(("bearer" = [])), request_body = Code,
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
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
