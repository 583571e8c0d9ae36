//! `/api/v1/enrollment`, `/api/v1/reset` and `/api/v1/password`: registration and the reset and
//! unlock flows, for the users themselves.

pub(super) mod change;
pub(super) mod enrollment;
pub(super) mod passkey;
pub(super) mod reset;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use self::enrollment::{
    begin_email, begin_totp, confirm_email, confirm_totp, enrollment_status, reconfirm_totp,
    remove_email, remove_totp, send_step_up_code, sign_in, step_up,
};
use self::passkey::{begin_passkey, confirm_passkey, passkey_options, remove_passkey};
use self::reset::{
    check_password, password_policy, send_reset_code, set_password, start_reset, unlock, verify,
};
use super::MethodName;
use crate::error::BrokenRule;
use crate::http::AppState;

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
        .route("/api/v1/password/change", post(change::change_password))
        .route("/api/v1/enrollment/passkey", post(begin_passkey))
        .route("/api/v1/enrollment/passkey/confirm", post(confirm_passkey))
        .route(
            "/api/v1/enrollment/passkey/{id}",
            axum::routing::delete(remove_passkey),
        )
        .route("/api/v1/reset/{flow}/passkey", post(passkey_options))
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
    /// The user's passkeys, oldest first.
    passkeys: Vec<PasskeyListed>,
}

/// A registered passkey.
#[derive(Serialize, ToSchema)]
pub struct PasskeyListed {
    /// For `DELETE /api/v1/enrollment/passkey/{id}`.
    id: String,
    /// The user's name for it.
    #[schema(example = "Work phone")]
    name: String,
    /// Unix milliseconds.
    created_at: i64,
    /// Unix milliseconds of the last reset or unlock verified with it; null: never used.
    last_used_at: Option<i64>,
}

impl From<crate::domain::enrollment::PasskeySummary> for PasskeyListed {
    fn from(p: crate::domain::enrollment::PasskeySummary) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at.as_millis(),
            last_used_at: p.last_used_at.map(|t| t.as_millis()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyName {
    /// 1 to 64 characters, trimmed.
    #[schema(example = "Work phone")]
    name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyAnswer {
    #[schema(example = "Work phone")]
    name: String,
    /// What the browser's `PublicKeyCredential.toJSON()` gives for `navigator.credentials.create()`:
    /// `{"id","rawId","type","response":{"clientDataJSON","attestationObject","transports"?},
    /// "clientExtensionResults"?}`; binary fields base64url (padded and standard base64 accepted).
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// WebAuthn options as the library makes them, for `navigator.credentials.create()` or `.get()`:
/// `{"publicKey":{…}}`, binary fields base64url without padding. Creation: `rp`, `user`,
/// `challenge`, `pubKeyCredParams`, `timeout`, `excludeCredentials`, `authenticatorSelection`
/// (`userVerification: "required"`), `attestation: "none"`. Request: `challenge`, `timeout`,
/// `rpId`, `allowCredentials` (no `transports`), `userVerification: "required"`.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOptions {
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
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
    /// `totp`, `email` or `passkey`.
    #[schema(value_type = MethodName)]
    method: String,
    /// 6 digits from the authenticator app, or the 8 mailed; spaces and dashes are ignored.
    /// Not for a passkey.
    #[schema(example = "123456")]
    #[serde(default)]
    code: String,
    /// A passkey's answer to `POST /api/v1/reset/{flow}/passkey`: what the browser's
    /// `PublicKeyCredential.toJSON()` gives for `navigator.credentials.get()`:
    /// `{"id","rawId","type","response":{"clientDataJSON","authenticatorData","signature",
    /// "userHandle"}}`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    credential: Option<serde_json::Value>,
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

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    /// sAMAccountName or userPrincipalName.
    #[schema(example = "jdoe")]
    username: String,
    /// The current AD password (also when it has expired or must be changed).
    #[schema(example = "Current-Password-1")]
    current_password: String,
    #[schema(example = "Correct-Horse-Battery-9")]
    new_password: String,
}

/// An empty JSON object, for calls that take no arguments.
#[derive(Deserialize, ToSchema, Default)]
pub struct Empty {}
