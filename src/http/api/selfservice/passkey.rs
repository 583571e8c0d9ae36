//! The passkey handlers: creation options and their answer at `/api/v1/enrollment/passkey`,
//! removal, and a reset flow's request options. The verification itself is `reset/{flow}/verify`
//! with `"method":"passkey"`, like every method.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{Empty, PasskeyAnswer, PasskeyName, PasskeyOptions};
use crate::domain::enrollment::Enrollment;
use crate::domain::reset::Reset;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::api::{Bearer, Body, OptionalBody};
use crate::http::extract::Caller;

#[utoipa::path(post, path = "/api/v1/enrollment/passkey", tag = "enrollment",
    security(("bearer" = [])), request_body = PasskeyName,
    responses((status = 200, body = PasskeyOptions),
        (status = 400, description = "invalid_request: no name, or longer than 64 characters; or passkeys are off (server.public_url is an IP address)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "step_up_required: this session must step up first", body = ErrorBody),
        (status = 409, description = "limit_reached: the user has 5 passkeys", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn begin_passkey(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<PasskeyName>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let options = Enrollment::new(&s.deps)
        .begin_passkey(&token, &body.name, &client)
        .await?;
    Ok(Json(options))
}

#[utoipa::path(post, path = "/api/v1/enrollment/passkey/confirm", tag = "enrollment",
    security(("bearer" = [])), request_body = PasskeyAnswer,
    responses((status = 204),
        (status = 400, description = "invalid_credential: the answer does not check out, or no challenge was waiting; invalid_request: a bad name", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "step_up_required: this session must step up first", body = ErrorBody),
        (status = 409, description = "limit_reached: the user has 5 passkeys", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn confirm_passkey(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Body(body): Body<PasskeyAnswer>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .confirm_passkey(&token, &body.name, &body.credential, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/enrollment/passkey/{id}", tag = "enrollment",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "step_up_required: this session must step up first", body = ErrorBody),
        (status = 404, description = "not_found: the user has no passkey of this id", body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn remove_passkey(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Enrollment::new(&s.deps)
        .remove_passkey(&token, &id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/reset/{flow}/passkey", tag = "reset", request_body = Option<Empty>,
    params(("flow" = String, Path)),
    responses((status = 200, body = PasskeyOptions),
        (status = 400, description = "invalid_request: passkeys are off (server.public_url is an IP address)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn passkey_options(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    OptionalBody(Empty {}): OptionalBody<Empty>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let options = Reset::new(&s.deps).passkey_options(&flow, &client).await?;
    Ok(Json(options))
}
