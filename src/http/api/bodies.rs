//! What the API's handlers take from a request besides the path: JSON bodies whose rejections
//! are [`ApiError`]s, the bearer token, and the shapes both APIs share.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::error::FlowError;
use crate::domain::store::MethodKind;
use crate::error::ApiError;

/// A JSON body whose rejection (bad JSON, wrong type, missing field) is an [`ApiError`].
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(|rejection| body_rejected(rejection.status(), rejection.body_text()))?;
        from_object(value).map(Body)
    }
}

/// serde's derive also reads a struct from a JSON array, its fields in order: `["jdoe"]` would
/// start a reset, an answer the API documents for no such body. Every documented body is an
/// object, so only an object is read.
fn from_object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "Invalid JSON body: expected an object".to_owned(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("Invalid JSON body: {e}")))
}

/// A body over the limit is 413, whether the limit layer saw it coming (`Content-Length`) or it
/// ran out while reading (chunked); any other unreadable body is 400 `invalid_request`.
fn body_rejected(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::Http(status)
    } else {
        ApiError::BadRequest(text)
    }
}

/// A JSON body that may be absent (no bytes at all, or `null`): then `T::default()`.
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejected(rejection.status(), rejection.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Null) => Ok(OptionalBody(T::default())),
            Ok(value) => from_object(value).map(OptionalBody),
            Err(e) => Err(ApiError::BadRequest(format!("Invalid JSON body: {e}"))),
        }
    }
}

/// The `Authorization: Bearer …` token of a registration session.
pub struct Bearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| Bearer(t.trim().to_owned()))
            .filter(|Bearer(t)| !t.is_empty())
            .ok_or(ApiError::Flow(FlowError::Unauthorized))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Token {
    /// Bearer token for the following calls.
    token: String,
}

impl Token {
    pub fn new(token: String) -> Self {
        Self { token }
    }
}

/// A verification method, as the API names it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MethodName {
    Totp,
    Email,
    Passkey,
}

/// The method a body names (documented as [`MethodName`]), or the API's own message.
pub fn method(name: &str) -> Result<MethodKind, ApiError> {
    MethodKind::parse(name).ok_or_else(|| {
        ApiError::BadRequest("method must be \"totp\", \"email\" or \"passkey\"".to_owned())
    })
}
