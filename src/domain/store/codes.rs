//! Emailed one-time codes.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::clock::Timestamp;

/// What an emailed code proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePurpose {
    /// Confirms a new email address during registration (subject: the session).
    EnrollEmail,
    /// Verifies a reset flow (subject: the flow).
    ResetEmail,
    /// A helpdesk operator verifying a caller (subject: operator session + target user).
    HelpdeskEmail,
    /// A one-time registration code the helpdesk gave a caller (subject: the user's objectGUID).
    RegistrationCode,
    /// A registration session proving an existing method before it changes any (subject: the
    /// session's step-up verification).
    StepUpEmail,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::EnrollEmail => "enroll_email",
            CodePurpose::ResetEmail => "reset_email",
            CodePurpose::HelpdeskEmail => "helpdesk_email",
            CodePurpose::RegistrationCode => "registration_code",
            CodePurpose::StepUpEmail => "step_up_email",
        }
    }
}

/// An emailed one-time code, stored only as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub purpose: CodePurpose,
    /// What the code belongs to: a session's token hash or a flow's id hash.
    pub subject: Vec<u8>,
    pub code_hash: Vec<u8>,
    /// Where it was sent.
    pub address: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code, replacing any earlier one for the same purpose and subject (a resend
    /// replaces the old code).
    async fn put_code(&self, code: &PendingCode) -> Result<(), StoreError>;
    async fn code(
        &self,
        purpose: CodePurpose,
        subject: &[u8],
    ) -> Result<Option<PendingCode>, StoreError>;
    /// Deletes the code if it is still the one with `code_hash`; true only for the caller that
    /// deleted it (single use under races, and a resend in between is not consumed).
    async fn take_code(
        &self,
        purpose: CodePurpose,
        subject: &[u8],
        code_hash: &[u8],
    ) -> Result<bool, StoreError>;
}
