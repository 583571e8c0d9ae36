//! `/api/v1/password/change`: a new password for someone who knows the current one.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;

use super::PasswordChange;
use crate::domain::change;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::api::Body;
use crate::http::extract::Caller;

#[utoipa::path(post, path = "/api/v1/password/change", tag = "password", request_body = PasswordChange,
    responses((status = 204, description = "Changed: the new password works now, the old one no longer"),
        (status = 401, description = "`invalid_credentials`: the username or current password is wrong (the same for unknown and disabled accounts)", body = ErrorBody),
        (status = 403, description = "`forbidden`: this account's password is not changed through this service (the service account and `directory.never_reset`); it works with the licence flag off", body = ErrorBody),
        (status = 422, description = "`password_policy`: the new password breaks these rules (history and minimum age as AD judged them)", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`write_unconfirmed`: AD did not answer the change, which it applied whole or not at all (try the new password); or `directory_unavailable`, `storage_unavailable`, `timeout`: nothing was changed, try again later", body = ErrorBody)))]
pub(in crate::http::api) async fn change_password(
    State(s): State<AppState>,
    Caller(client): Caller,
    Body(body): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let current = SecretString::from(body.current_password);
    let new = SecretString::from(body.new_password);
    change::PasswordChange::new(&s.deps)
        .change(&body.username, &current, &new, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
