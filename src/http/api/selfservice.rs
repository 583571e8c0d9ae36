//! `/api/v1/enrollment`, `/api/v1/reset` and `/api/v1/password`: registration and the reset and
//! unlock flows, for the users themselves.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Bearer, Body, MethodName, OptionalBody};
use crate::domain::deps::Client;
use crate::domain::enrollment::{Enrollment, StepUpMethod};
use crate::domain::locale::Locale as Language;
use crate::domain::reset::Reset;
use crate::domain::store::MethodKind;
use crate::error::{ApiError, BrokenRule, ErrorBody};
use crate::http::AppState;
use crate::http::extract::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enrollment/session", post(sign_in))
        .route("/api/v1/enrollment", get(enrollment_status))
        .route(
            "/api/v1/enrollment/totp",
            post(begin_totp).delete(remove_totp),
        )
        .route("/api/v1/enrollment/totp/confirm", post(confirm_totp))
        .route("/api/v1/enrollment/totp/reconfirm", post(reconfirm_totp))
        .route(
            "/api/v1/enrollment/email",
            post(begin_email).delete(remove_email),
        )
        .route("/api/v1/enrollment/email/confirm", post(confirm_email))
        .route("/api/v1/enrollment/step-up", post(step_up))
        .route("/api/v1/enrollment/step-up/email", post(send_step_up_code))
        .route("/api/v1/reset", post(start_reset))
        .route("/api/v1/reset/{flow}/email", post(send_reset_code))
        .route("/api/v1/reset/{flow}/verify", post(verify))
        .route("/api/v1/reset/{flow}/password", post(set_password))
        .route("/api/v1/reset/{flow}/unlock", post(unlock))
        .route("/api/v1/reset/{flow}/policy", get(password_policy))
        .route("/api/v1/password/check", post(check_password))
}

#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// sAMAccountName or userPrincipalName.
    #[schema(example = "jdoe")]
    username: String,
    /// The current AD password.
    #[schema(example = "Current-Password-1")]
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrollmentSession {
    /// Bearer token for the following calls.
    token: String,
    /// This session must step up (`POST /api/v1/enrollment/step-up`) before it adds, replaces
    /// or removes a method.
    step_up_required: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct StepUp {
    /// `totp`, `email` (a code from `step-up/email`) or `registration_code` (from the helpdesk).
    #[schema(example = "totp")]
    method: String,
    /// Spaces and dashes are ignored.
    #[schema(example = "123456")]
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrollmentStatus {
    totp: bool,
    /// The confirmed address, masked (`a***@example.com`), or null.
    email: Option<String>,
    /// A method was confirmed longer ago than `registration.reconfirm_days`: it does not count
    /// for a reset until confirmed again (`totp/reconfirm`, or add the email address again).
    reconfirm_due: bool,
    /// This session must step up before it adds, replaces or removes a method.
    step_up_required: bool,
    /// What this session can step up with: `totp`, `email`, `registration_code`.
    step_up_methods: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct TotpProvisioning {
    /// Base32, to type into an authenticator app by hand.
    secret: String,
    otpauth_uri: String,
    /// An SVG document with the QR code of `otpauth_uri`.
    qr_svg: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Code {
    /// Spaces and dashes are ignored.
    #[schema(example = "123456")]
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Address {
    #[schema(example = "jdoe@example.com")]
    address: String,
}

#[derive(Deserialize, ToSchema)]
pub struct StartReset {
    /// sAMAccountName or userPrincipalName.
    #[schema(example = "jdoe")]
    username: String,
}

#[derive(Serialize, ToSchema)]
pub struct Flow {
    /// The flow id: a bearer secret for the next calls; valid 15 minutes, single use.
    flow: String,
    methods_required: usize,
    /// The methods offered; verify with the ones you registered.
    #[schema(value_type = Vec<String>, example = json!(["totp", "email"]))]
    methods: Vec<&'static str>,
}

#[derive(Deserialize, ToSchema)]
pub struct Verify {
    // Documented as the enum, parsed by `method()`: an unknown one gets the API's own message.
    /// `totp` or `email`.
    #[schema(value_type = MethodName)]
    method: String,
    /// 6 digits from the authenticator app, or the 8 mailed; spaces and dashes are ignored.
    #[schema(example = "123456")]
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Verified {
    verified: bool,
    /// Methods still to verify.
    remaining: usize,
}

#[derive(Deserialize, ToSchema)]
pub struct NewPassword {
    #[schema(example = "Correct-Horse-Battery-9")]
    new_password: String,
}

/// The rules a new password must meet. Before the flow is verified (and for an unknown user)
/// these are the domain's own rules, so the answer reveals nothing about the account.
#[derive(Serialize, ToSchema)]
pub struct AppliedPolicy {
    min_length: u32,
    /// AD complexity: three of upper case, lower case, digits, symbols and letters without
    /// case; and not the username or a part of the display name.
    complexity: bool,
    /// Earlier passwords that may not be used again (AD checks this only when writing).
    history: u32,
    /// Days a password must be kept before it can be changed again (may be a fraction).
    min_age_days: f64,
    /// Days after which the password expires; null when it never does.
    max_age_days: Option<f64>,
    /// Common passwords (and `policy.banned_file`) are refused, also with substitutions and
    /// digits or symbols around them.
    banned_list: bool,
    /// Minimum zxcvbn strength score, 0 (off) to 4.
    min_strength: u8,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordCandidate {
    /// A reset flow id.
    flow: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordVerdict {
    /// Whether the password meets every rule that can be checked in advance (AD still checks
    /// history when it is written).
    ok: bool,
    broken: Vec<BrokenRule>,
}

/// An empty JSON object, for calls that take no arguments.
#[derive(Deserialize, ToSchema, Default)]
pub struct Empty {}

fn method(name: &str) -> Result<MethodKind, ApiError> {
    MethodKind::parse(name)
        .ok_or_else(|| ApiError::BadRequest("method must be \"totp\" or \"email\"".to_owned()))
}

#[utoipa::path(post, path = "/api/v1/enrollment/session", tag = "enrollment",
    request_body = SignIn,
    responses((status = 200, body = EnrollmentSession), (status = 401, body = ErrorBody),
        (status = 403, description = "not_in_scope: the password is right, but self-service is not for this account; password_change_required: AD requires a new password first (must change at next logon, or expired)", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(super) async fn sign_in(
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
pub(super) async fn step_up(
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
pub(super) async fn send_step_up_code(
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
pub(super) async fn enrollment_status(
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
    }))
}

#[utoipa::path(post, path = "/api/v1/enrollment/totp", tag = "enrollment",
    security(("bearer" = [])),
    responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 200, body = TotpProvisioning), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(super) async fn begin_totp(
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
pub(super) async fn confirm_totp(
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
pub(super) async fn reconfirm_totp(
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
pub(super) async fn begin_email(
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
pub(super) async fn confirm_email(
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
pub(super) async fn remove_totp(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    remove(&s, &token, MethodKind::Totp, &client).await
}

#[utoipa::path(delete, path = "/api/v1/enrollment/email", tag = "enrollment",
    security(("bearer" = [])), responses((status = 403, description = "step_up_required: this session must step up first", body = ErrorBody), (status = 204), (status = 401, body = ErrorBody),
        (status = 503, description = "`directory_unavailable`, `storage_unavailable`, `timeout`: try again later", body = ErrorBody)))]
pub(super) async fn remove_email(
    State(s): State<AppState>,
    Bearer(token): Bearer,
    Caller(client): Caller,
) -> Result<StatusCode, ApiError> {
    remove(&s, &token, MethodKind::Email, &client).await
}

#[utoipa::path(post, path = "/api/v1/reset", tag = "reset", request_body = StartReset,
    responses((status = 201, body = Flow), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn start_reset(
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
pub(super) async fn send_reset_code(
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
    responses((status = 200, body = Verified), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn verify(
    State(s): State<AppState>,
    Path(flow): Path<String>,
    Caller(client): Caller,
    Body(body): Body<Verify>,
) -> Result<Json<Verified>, ApiError> {
    let kind = method(&body.method)?;
    let v = Reset::new(&s.deps)
        .verify(&flow, kind, &body.code, &client)
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
pub(super) async fn set_password(
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
pub(super) async fn unlock(
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
pub(super) async fn password_policy(
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
pub(super) async fn check_password(
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
