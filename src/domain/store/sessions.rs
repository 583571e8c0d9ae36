//! Signed-in sessions.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// What a session is for. Helpdesk sessions (operators) come with the helpdesk feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A user who signed in with their AD password to manage their verification methods.
    Enrollment,
    /// A helpdesk operator.
    Helpdesk,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Enrollment => "enrollment",
            SessionKind::Helpdesk => "helpdesk",
        }
    }
}

/// A signed-in session. The bearer token itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub kind: SessionKind,
    pub user: ObjectGuid,
    pub sam_account_name: String,
    pub created_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    /// Last request, for idle timeouts.
    pub last_seen_at: Timestamp,
    /// A TOTP secret shown to the user but not yet confirmed with a code (sealed). In a helpdesk
    /// session: the registration code its operator issued last, sealed, so its page can be shown
    /// again.
    pub pending_totp: Option<Vec<u8>>,
    /// The name the user gave the app of `pending_totp`.
    pub pending_totp_name: Option<String>,
    /// Wrong codes typed in this session.
    pub failures: i64,
    /// When this session proved one of the user's methods (a step-up, or a method it confirmed);
    /// until then it may read the user's methods but not change them.
    pub stepped_up_at: Option<Timestamp>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    /// The session, if it exists and `now` is before its end (expired ones are never returned).
    async fn session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;
    async fn touch_session(&self, token_hash: &[u8], now: Timestamp) -> Result<(), StoreError>;
    /// Sets (or, with `None`, clears) the session's pending secret and the name of its app.
    async fn set_pending_totp(
        &self,
        token_hash: &[u8],
        sealed: Option<&[u8]>,
        name: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Adds one wrong code to the session atomically; returns the new count.
    async fn add_session_failure(&self, token_hash: &[u8]) -> Result<i64, StoreError>;
    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;
    /// Records that the session proved one of the user's methods at `at`.
    async fn set_stepped_up(&self, token_hash: &[u8], at: Timestamp) -> Result<(), StoreError>;
    /// Ends every session of `kind` of `user` (a password reset ends the registration sessions
    /// opened with the old password); returns how many.
    async fn delete_user_sessions(
        &self,
        user: &ObjectGuid,
        kind: SessionKind,
    ) -> Result<u64, StoreError>;
}
