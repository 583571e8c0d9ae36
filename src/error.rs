//! The one error type of the HTTP API. Clients get a stable code and a message for a person;
//! the cause goes to the log (by the logging middleware, not here: rendering has no side effects).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::directory::DirectoryError;
use crate::domain::licence::LicenceRequired;
use crate::domain::reset::retry_after_secs;
use crate::domain::selfservice::FlowError;
use crate::domain::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    LicenceRequired(#[from] LicenceRequired),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Flow(FlowError),
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        // Directory and store failures inside a flow are the same failures as outside one.
        match e {
            FlowError::Directory(e) => ApiError::Directory(e),
            FlowError::Store(e) => ApiError::Store(e),
            e => ApiError::Flow(e),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// Attached to error responses so the logging middleware can record what the client is not told.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::LicenceRequired(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Directory(e) => match e {
                DirectoryError::PolicyViolation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                DirectoryError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Flow(e) => match e {
                FlowError::InvalidCredentials | FlowError::Unauthorized => StatusCode::UNAUTHORIZED,
                FlowError::InvalidCode { .. } | FlowError::InvalidInput(_) => {
                    StatusCode::BAD_REQUEST
                }
                FlowError::FlowNotFound => StatusCode::NOT_FOUND,
                FlowError::NotVerified | FlowError::Forbidden(_) => StatusCode::FORBIDDEN,
                FlowError::NotFound => StatusCode::NOT_FOUND,
                FlowError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                FlowError::PasswordRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
                FlowError::MailUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                FlowError::Directory(_) | FlowError::Store(_) => {
                    unreachable!("unwrapped by From<FlowError>")
                }
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::LicenceRequired(_) => "licence_required",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Directory(e) => match e {
                DirectoryError::PolicyViolation { .. } => "password_policy",
                DirectoryError::Unavailable { .. } => "directory_unavailable",
                _ => "directory_error",
            },
            ApiError::Store(_) => "storage_unavailable",
            ApiError::Flow(e) => match e {
                FlowError::InvalidCredentials => "invalid_credentials",
                FlowError::Unauthorized => "unauthorized",
                FlowError::InvalidCode { .. } => "invalid_code",
                FlowError::FlowNotFound => "flow_not_found",
                FlowError::NotVerified => "not_verified",
                FlowError::Forbidden(_) => "forbidden",
                FlowError::NotFound => "not_found",
                FlowError::Throttled { .. } => "throttled",
                FlowError::InvalidInput(_) => "invalid_request",
                FlowError::PasswordRejected(_) => "password_policy",
                FlowError::MailUnavailable => "mail_unavailable",
                FlowError::Directory(_) | FlowError::Store(_) => "internal_error",
            },
        }
    }

    /// What a person is told. Directory and storage details stay in the log.
    pub fn message(&self) -> String {
        match self {
            ApiError::LicenceRequired(e) => e.to_string(),
            ApiError::NotFound => "There is nothing at this address.".to_owned(),
            ApiError::BadRequest(m) => m.clone(),
            ApiError::Directory(DirectoryError::PolicyViolation { .. }) => {
                "The new password does not meet the domain's password policy. Choose another one."
                    .to_owned()
            }
            ApiError::Directory(DirectoryError::Unavailable { .. }) | ApiError::Store(_) => {
                "The service cannot reach the directory or its database right now. Please try \
                 again in a minute."
                    .to_owned()
            }
            ApiError::Directory(_) => {
                "The directory refused the operation. Please contact the helpdesk.".to_owned()
            }
            ApiError::Flow(FlowError::InvalidCode { remaining_attempts }) => {
                match remaining_attempts {
                    0 => "The code is wrong or has expired, and no attempts are left: start again."
                        .to_owned(),
                    1 => "The code is wrong or has expired. 1 attempt left.".to_owned(),
                    n => format!("The code is wrong or has expired. {n} attempts left."),
                }
            }
            ApiError::Flow(FlowError::Throttled { retry_after }) => format!(
                "Too many attempts. Try again in {} minutes, or contact the helpdesk.",
                retry_after.as_secs().div_ceil(60)
            ),
            ApiError::Flow(e) => {
                let mut m = e.to_string();
                if let Some(first) = m.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                if !m.ends_with('.') {
                    m.push('.');
                }
                m
            }
        }
    }

    fn cause(&self) -> Option<String> {
        match self {
            ApiError::Directory(e) => Some(e.to_string()),
            ApiError::Store(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.message(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::Flow(FlowError::Throttled { retry_after }) = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after_secs(*retry_after).into(),
            );
        }
        if let Some(cause) = self.cause() {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }
}
