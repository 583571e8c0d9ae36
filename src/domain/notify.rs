//! Mails the flows send. `crate::mail` renders them (text + HTML, per language) and sends them.

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ObjectGuid;
use super::locale::Locale;
use super::store::{MethodKind, StoreError};

/// What a mail says. Codes are secrets: they print as `[REDACTED]` in Debug and are never logged.
/// Serialised only to be sealed into the outbox (a secret field needs `with = "exposed"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailKind {
    /// The code that confirms a new address during registration.
    EnrollmentCode {
        #[serde(with = "exposed")]
        code: SecretString,
    },
    /// The code that verifies a password reset or unlock.
    ResetCode {
        #[serde(with = "exposed")]
        code: SecretString,
    },
    /// Notifications: never a password or a code.
    PasswordReset,
    AccountUnlocked,
    /// `name`: of an authenticator app, the name its owner gave it; absent in mails queued
    /// before apps had names.
    MethodAdded {
        #[serde(with = "method_kind")]
        method: MethodKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    MethodRemoved {
        #[serde(with = "method_kind")]
        method: MethodKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A helpdesk agent is verifying the caller: the code the user reads out to the agent on the
    /// call they made (unlike `ResetCode`, which must never be shared).
    HelpdeskCode {
        #[serde(with = "exposed")]
        code: SecretString,
    },
    /// The helpdesk set a temporary password, delivered by mail at the operator's choice. The
    /// only mail that carries a password; it must be changed at next logon.
    TemporaryPassword {
        #[serde(with = "exposed")]
        password: SecretString,
    },
    /// Notifications of what the helpdesk did (never a password or a code).
    HelpdeskPasswordReset,
    HelpdeskUnlocked,
    HelpdeskRegistrationsCleared,
    /// The helpdesk lifted the self-service block that wrong codes put on the account.
    HelpdeskBlockLifted,
    /// To `notify.admins`: a protected account (allow-listed in `policy.allow_protected`) reset
    /// its password through self-service. Names the account; never a password or a code.
    ProtectedAccountReset {
        account: String,
    },
    /// Batch reminders (`sspr-bridge remind`, `notify-expiry`), never a password or a code: set
    /// up a verification method; the password expires soon.
    RegistrationReminder {
        /// The password must be changed first (expired, or must change at next logon), which
        /// registration refuses: the mail sends the user to `/change`, then to `/register`.
        #[serde(default)]
        change_first: bool,
    },
    /// Self-service was blocked for the user after too many wrong codes (`throttle.user_*`):
    /// the only sign of it anywhere, since the flows meet a block silently.
    SelfServiceBlocked,
    PasswordExpiry {
        /// Whole days left, rounded up.
        days_left: u32,
        expires_at: std::time::SystemTime,
        /// Where the mail sends the user to choose the new password.
        #[serde(default)]
        page: PasswordPage,
    },
    /// `notify-expiry`, once per password: it has expired, and how to change it (`/change`,
    /// with the expired password; the user registered nothing or forgot nothing).
    PasswordExpired {
        expired_at: std::time::SystemTime,
    },
    /// To the caller's AD manager: a helpdesk operator asks them to confirm who is on the
    /// phone. Carries the approval link's token (the link is the only way to the approval).
    ManagerApprovalRequest {
        #[serde(with = "exposed")]
        token: SecretString,
        /// The operator's sAMAccountName.
        operator: String,
        /// The caller, as [`crate::domain::helpdesk::caller_label`] names them.
        caller: String,
    },
    /// The code the manager confirms an approval with (never read to anyone).
    ManagerApprovalCode {
        #[serde(with = "exposed")]
        code: SecretString,
    },
    /// To the caller's AD `mail`: their manager declined to confirm a helpdesk caller as them.
    ManagerApprovalDeclined {
        /// The manager, as [`crate::domain::helpdesk::caller_label`] names people.
        manager: String,
    },
    /// The user changed their password with the current one (`/change`).
    PasswordChanged,
    /// The user made a new set of recovery codes; the old ones no longer work. Never a code.
    RecoveryCodesCreated,
    /// One of the user's recovery codes was used in a reset, unlock or step-up; `left` unused.
    RecoveryCodeUsed {
        left: u32,
    },
}

/// The page a mail sends a user to for a new password.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordPage {
    /// `/reset`: with the registered methods, for a password that may be forgotten.
    Reset,
    /// `/change`: with the current password; needs no method and no licence.
    #[default]
    Change,
}

impl MailKind {
    /// A stable name for metrics and the audit; never a code or a password.
    pub fn label(&self) -> &'static str {
        match self {
            MailKind::EnrollmentCode { .. } => "enrollment_code",
            MailKind::ResetCode { .. } => "reset_code",
            MailKind::PasswordReset => "password_reset",
            MailKind::AccountUnlocked => "account_unlocked",
            MailKind::MethodAdded { .. } => "method_added",
            MailKind::MethodRemoved { .. } => "method_removed",
            MailKind::HelpdeskCode { .. } => "helpdesk_code",
            MailKind::TemporaryPassword { .. } => "temporary_password",
            MailKind::HelpdeskPasswordReset => "helpdesk_password_reset",
            MailKind::HelpdeskUnlocked => "helpdesk_unlocked",
            MailKind::HelpdeskRegistrationsCleared => "helpdesk_registrations_cleared",
            MailKind::HelpdeskBlockLifted => "helpdesk_block_lifted",
            MailKind::ProtectedAccountReset { .. } => "protected_account_reset",
            MailKind::RegistrationReminder { .. } => "registration_reminder",
            MailKind::PasswordExpiry { .. } => "password_expiry",
            MailKind::SelfServiceBlocked => "self_service_blocked",
            MailKind::ManagerApprovalRequest { .. } => "manager_approval_request",
            MailKind::ManagerApprovalCode { .. } => "manager_approval_code",
            MailKind::ManagerApprovalDeclined { .. } => "manager_approval_declined",
            MailKind::PasswordChanged => "password_changed",
            MailKind::PasswordExpired { .. } => "password_expired",
            MailKind::RecoveryCodesCreated => "recovery_codes_created",
            MailKind::RecoveryCodeUsed { .. } => "recovery_code_used",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    /// Used in the greeting when known.
    pub display_name: Option<String>,
    pub locale: Locale,
    pub kind: MailKind,
}

#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {message}")]
pub struct MailError {
    pub message: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Why a mail is queued, for the audit row written if it is never delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A one-time code: audited as a failed `code_sent`; dropped unsent once the code expired.
    Code,
    /// A notification: audited as a failed `notification`.
    Notice,
}

/// Whom a queued mail is about, for the audit; never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    /// `None` for a decoy (an unknown login).
    pub user: Option<uuid::Uuid>,
    pub sam_account_name: String,
    /// The helpdesk operator who caused the mail, if any.
    pub actor: Option<String>,
    pub client_ip: Option<String>,
}

impl About {
    pub fn new(
        user: Option<ObjectGuid>,
        sam_account_name: &str,
        actor: Option<&str>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            user: user.map(|g| g.0),
            sam_account_name: sam_account_name.to_owned(),
            actor: actor.map(str::to_owned),
            client_ip: client_ip.map(|ip| ip.to_string()),
        }
    }
}

/// A mail handed to the outbox, as the sender finds it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Queued {
    pub mail: Mail,
    pub purpose: Purpose,
    pub about: About,
    /// Written like a real mail so that an unknown login costs the same, but never sent.
    pub decoy: bool,
}

/// Where the flows leave the mails they send (codes and notifications): a durable table a
/// background task sends from, so no answer waits on the mail server or depends on its health.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores `queued` (sealed); it is sent within moments, retried until `send_by_ms`, and
    /// dropped unsent after that.
    async fn enqueue(&self, queued: &Queued, send_by_ms: i64) -> Result<(), StoreError>;
}

/// One stored outbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// Random; also the context the body is sealed to, so a body copied to another row does
    /// not open.
    pub id: String,
    /// A [`Queued`], padded and sealed with `security.secret_key`.
    pub body_sealed: Vec<u8>,
    pub created_at_ms: i64,
    pub send_by_ms: i64,
    pub next_attempt_at_ms: i64,
    pub attempts: i64,
}

/// The outbox table. Several instances share it: a row is worked on by whoever claims it.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn insert_mail(&self, row: &OutboxRow) -> Result<(), StoreError>;
    /// Runs `f` once the row just inserted is committed: at once, unless the insert was part of
    /// a step ([`super::store::Transactions`]), then after its commit (and never after a
    /// rollback), so whoever `f` wakes finds the row.
    fn when_committed(&self, f: Box<dyn FnOnce() + Send>) {
        f();
    }
    /// Up to `limit` ids of rows due at `now_ms` (their next attempt is due, no live claim).
    async fn due_mails(&self, now_ms: i64, limit: i64) -> Result<Vec<String>, StoreError>;
    /// Claims the row `id` until `until_ms` if it is still due at `now_ms` and nobody else holds
    /// it; `None` when another instance was first (or it is gone).
    async fn claim_mail(
        &self,
        id: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<OutboxRow>, StoreError>;
    /// Releases a claimed row for another attempt at `next_attempt_at_ms`, counting one more
    /// attempt when `failed`.
    async fn retry_mail(
        &self,
        id: &str,
        next_attempt_at_ms: i64,
        failed: bool,
    ) -> Result<(), StoreError>;
    /// Removes a sent, dropped or given-up row.
    async fn delete_mail(&self, id: &str) -> Result<(), StoreError>;
    /// Every row, oldest first, claimed or not (for inspection; the sender claims).
    async fn mails(&self) -> Result<Vec<OutboxRow>, StoreError>;
    async fn pending_mails(&self) -> Result<i64, StoreError>;
}

/// Serialises a secret in clear: only for the sealed outbox body.
mod exposed {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose_secret())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        Ok(SecretString::from(String::deserialize(d)?))
    }
}

mod method_kind {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::domain::store::MethodKind;

    pub fn serialize<S: Serializer>(kind: &MethodKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MethodKind, D::Error> {
        let text = String::deserialize(d)?;
        MethodKind::parse(&text).ok_or_else(|| D::Error::custom(format!("method {text:?}")))
    }
}
