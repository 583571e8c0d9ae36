//! The `/api/v1/reset` handlers and `/api/v1/password/check`: verifying a reset flow, then
//! setting a new password or unlocking the account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;

use super::{
    AppliedPolicy, Empty, Flow, NewPassword, PasswordCandidate, PasswordVerdict, StartReset,
    Verified, Verify,
};
use crate::domain::locale::Locale as Language;
use crate::domain::reset::Reset;
use crate::domain::store::MethodKind;
use crate::error::{ApiError, BrokenRule, ErrorBody};
use crate::http::AppState;
use crate::http::api::{Body, OptionalBody, method};
use crate::http::extract::Caller;

#[utoipa::path(post, path = "/api/v1/reset", tag = "reset", request_body = StartReset,
    responses((status = 201, body = Flow), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(in crate::http::api) async fn start_reset(
    State(s): State<AppState>,
    Caller(client): Caller,
    Body(body): Body<StartReset>,
) -> Result<(StatusCode, Json<Flow>), ApiError> {
    let started = Reset::new(&s.deps).start(&body.username, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(Flow {
            flow: started.flow,
            methods_required: started.methods_required,
            methods: started.methods.iter().map(|m| m.as_str()).collect(),
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/reset/{flow}/email", tag = "reset", request_body = Option<Empty>,
    params(("flow" = String, Path)),
    responses((status = 202), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`mail_unavailable`: no mail server is configured; or `directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn send_reset_code(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    OptionalBody(Empty {}): OptionalBody<Empty>,
) -> Result<StatusCode, ApiError> {
    Reset::new(&s.deps).send_email_code(&flow, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/reset/{flow}/verify", tag = "reset", request_body = Verify,
    params(("flow" = String, Path)),
    responses((status = 200, body = Verified), (status = 400, description = "invalid_code: a wrong code or passkey answer (also one whose signature counter did not go up)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(in crate::http::api) async fn verify(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    Body(body): Body<Verify>,
) -> Result<Json<Verified>, ApiError> {
    let kind = method(&body.method)?;
    // A passkey's answer goes through the same verification as a typed code, as its JSON text.
    let code = match (kind, &body.credential) {
        (MethodKind::Passkey, Some(credential)) => credential.to_string(),
        _ => body.code,
    };
    let v = Reset::new(&s.deps)
        .verify(&flow, kind, &code, &client)
        .await?;
    Ok(Json(Verified {
        verified: true,
        remaining: v.remaining,
    }))
}

#[utoipa::path(post, path = "/api/v1/reset/{flow}/password", tag = "reset", request_body = NewPassword,
    params(("flow" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, description = "`write_unconfirmed`: AD did not answer the write, which it applied whole or not at all (try the new password; the flow stays open for another try); or `directory_unavailable`, `storage_unavailable`, `timeout`: nothing was changed, try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn set_password(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    Body(body): Body<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let password = SecretString::from(body.new_password);
    Reset::new(&s.deps)
        .set_password(&flow, &password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/reset/{flow}/unlock", tag = "reset", request_body = Option<Empty>,
    params(("flow" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "`write_unconfirmed`: AD did not answer the write, which it applied whole or not at all (try the new password; the flow stays open for another try); or `directory_unavailable`, `storage_unavailable`, `timeout`: nothing was changed, try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn unlock(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    OptionalBody(Empty {}): OptionalBody<Empty>,
) -> Result<StatusCode, ApiError> {
    Reset::new(&s.deps).unlock(&flow, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn days(d: std::time::Duration) -> f64 {
    d.as_secs_f64() / 86_400.0
}

#[utoipa::path(get, path = "/api/v1/reset/{flow}/policy", tag = "reset",
    params(("flow" = String, Path)),
    responses((status = 200, body = AppliedPolicy), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(in crate::http::api) async fn password_policy(
    State(s): State<AppState>,
    Path(flow): Path<String>,
) -> Result<Json<AppliedPolicy>, ApiError> {
    let policy = Reset::new(&s.deps).password_policy(&flow).await?;
    Ok(Json(AppliedPolicy {
        min_length: policy.min_length,
        complexity: policy.complexity,
        history: policy.history_length,
        min_age_days: days(policy.min_age),
        max_age_days: policy.max_age.map(days),
        banned_list: true,
        min_strength: s.deps.settings.password_rules.min_strength,
    }))
}

#[utoipa::path(post, path = "/api/v1/password/check", tag = "reset", request_body = PasswordCandidate,
    responses((status = 200, body = PasswordVerdict), (status = 404, body = ErrorBody),
        (status = 422, description = "password_policy: longer than AD accepts, not checked further", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(in crate::http::api) async fn check_password(
    State(s): State<AppState>,
    Caller(client): Caller,
    Body(body): Body<PasswordCandidate>,
) -> Result<Json<PasswordVerdict>, ApiError> {
    let password = SecretString::from(body.password);
    let broken = Reset::new(&s.deps)
        .check_password(&body.flow, &password, &client)
        .await?;
    Ok(Json(PasswordVerdict {
        ok: broken.is_empty(),
        broken: broken
            .iter()
            .map(|v| BrokenRule::new(v, Language::En))
            .collect(),
    }))
}
