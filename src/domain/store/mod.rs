//! What the flows need from persistent storage, as small traits. `crate::store` implements them
//! with sqlx on SQLite and PostgreSQL; unit tests may implement them in memory.

mod approvals;
mod audit;
mod codes;
mod flows;
mod history;
mod methods;
mod notices;
mod passkeys;
mod recovery_codes;
mod sessions;
mod steps;
mod throttle;

pub use approvals::{ApprovalStore, ManagerApproval};
pub use audit::{AuditEvent, AuditKind, AuditLog, AuditRecord, Outcome};
pub use codes::{CodePurpose, CodeStore, PendingCode};
pub use flows::{FlowOwner, FlowStore, ResetFlow};
pub use history::PasswordHistoryStore;
pub use methods::{EnrolledMethod, MAX_TOTP_APPS, MethodKind, RegistrationStore, new_method_id};
pub use notices::{Notice, NoticeLog};
pub use passkeys::{CeremonyPurpose, PasskeyStore, StoredPasskey};
pub use recovery_codes::RecoveryCodeStore;
pub use sessions::{Session, SessionKind, SessionStore};
pub use steps::Transactions;
pub use throttle::{Person, ThrottleKey, ThrottleStore};

#[derive(Debug, thiserror::Error)]
#[error("storage error: {message}")]
pub struct StoreError {
    pub message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
