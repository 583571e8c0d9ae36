//! What the flows need from persistent storage, as small traits. `crate::store` implements them
//! with sqlx on SQLite and PostgreSQL; unit tests may implement them in memory.

use std::fmt;

use async_trait::async_trait;

use super::ObjectGuid;
use super::clock::Timestamp;
use super::locale::Locale;

/// A way a user can prove who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    Totp,
    Email,
}

impl MethodKind {
    pub const ALL: [MethodKind; 2] = [MethodKind::Totp, MethodKind::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Totp => "totp",
            MethodKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One registered (or pending) verification method of one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolledMethod {
    pub kind: MethodKind,
    /// Email: the address. TOTP: none.
    pub address: Option<String>,
    /// TOTP: the shared secret, encrypted with `security.secret_key` (AEAD); never stored in clear.
    pub secret_sealed: Option<Vec<u8>>,
    /// TOTP: the last accepted RFC 6238 time step; any step at or below it is refused.
    pub last_step: Option<i64>,
    /// When the user proved control of the method; `None` while pending.
    pub confirmed_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl EnrolledMethod {
    /// Whether the method counts for a reset at `now`: confirmed, and, when confirmations go
    /// stale after `max_age` (`registration.reconfirm_days`), confirmed within it.
    pub fn is_current(&self, now: Timestamp, max_age: Option<std::time::Duration>) -> bool {
        match (self.confirmed_at, max_age) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(age)) => at >= now - age,
        }
    }
}

/// What happened, for the audit table. Never holds a password, a code or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    /// e.g. `sign_in`, `enrollment_added`, `flow_started`, `verification`, `password_reset`, `unlock`, `throttled`.
    pub event: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub object_guid: Option<ObjectGuid>,
    pub sam_account_name: Option<String>,
    /// Who acted when it was not the user: a helpdesk operator's sAMAccountName.
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub method: Option<String>,
    pub reason: Option<String>,
    /// A typed login that matched no account, as [`super::secrets::Keys::login_hash`]: never in
    /// clear, since people type passwords into username boxes. `sam_account_name` is then `None`.
    pub login_hash: Option<String>,
}

/// An audit event as stored, with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}

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

#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// All methods of a user, pending and confirmed.
    async fn methods(&self, user: &ObjectGuid) -> Result<Vec<EnrolledMethod>, StoreError>;
    /// Inserts or replaces the user's method of `method.kind`; `sam_account_name` is kept for
    /// reports only (the key is the GUID).
    async fn put_method(
        &self,
        user: &ObjectGuid,
        sam_account_name: &str,
        method: &EnrolledMethod,
    ) -> Result<(), StoreError>;
    /// Returns whether a method was removed.
    async fn remove_method(&self, user: &ObjectGuid, kind: MethodKind) -> Result<bool, StoreError>;
    /// Removes every method of the user; returns how many.
    async fn remove_all(&self, user: &ObjectGuid) -> Result<u64, StoreError>;
    /// Records `step` as the last accepted TOTP step, atomically and only if it is greater than
    /// the stored one. Returns false when the step was already used (a replay), so two instances
    /// racing on the same code cannot both accept it.
    async fn advance_totp_step(&self, user: &ObjectGuid, step: i64) -> Result<bool, StoreError>;
    /// Sets `confirmed_at` of the user's confirmed method of `kind` to `at` (the user
    /// proved again that they hold it). Returns false when there is no such confirmed method.
    async fn reconfirm_method(
        &self,
        user: &ObjectGuid,
        kind: MethodKind,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events at or after `since`, oldest first, at most `limit`.
    async fn since(&self, since: Timestamp, limit: i64) -> Result<Vec<AuditRecord>, StoreError>;
    /// The next page: events after the event (`at`, `id`) in the same order.
    async fn after(
        &self,
        at: Timestamp,
        id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest `limit` events about one user, newest first (the helpdesk's user card).
    async fn for_user(&self, user: &ObjectGuid, limit: i64)
    -> Result<Vec<AuditRecord>, StoreError>;
}

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
    /// A TOTP secret shown to the user but not yet confirmed with a code (sealed).
    pub pending_totp: Option<Vec<u8>>,
    /// Wrong codes typed in this session.
    pub failures: i64,
    /// When this session proved one of the user's methods (a step-up, or a method it confirmed);
    /// until then it may read the user's methods but not change them.
    pub stepped_up_at: Option<Timestamp>,
}

/// A password reset or unlock in progress. The flow id is a bearer secret: only its SHA-256 is
/// stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetFlow {
    pub id_hash: Vec<u8>,
    /// `None` for a decoy: the login matched no user who may reset (unknown, unregistered,
    /// disabled, out of scope). A decoy answers like a real flow and can never succeed, so the
    /// API does not reveal which accounts exist.
    pub user: Option<ObjectGuid>,
    /// The login as typed, lower-cased: the throttle key of a decoy, and what the audit shows.
    pub login: String,
    pub sam_account_name: Option<String>,
    pub methods_required: i64,
    pub verified_totp_at: Option<Timestamp>,
    pub verified_email_at: Option<Timestamp>,
    pub failures: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Set once the password was written or the account unlocked: a flow is single use.
    pub finished_at: Option<Timestamp>,
    /// The DC that took the flow's write; the rest of the flow stays on it (replication lags).
    pub dc: Option<String>,
    /// Language of the person who started the flow, for the mails it sends.
    pub locale: Locale,
}

/// Whose a reset flow is, as the flows judge it (the row keeps the two columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOwner<'a> {
    User {
        guid: ObjectGuid,
        sam_account_name: &'a str,
    },
    /// The login named no account that may reset: the flow answers like a real one and can
    /// never succeed.
    Decoy { login: &'a str },
}

impl ResetFlow {
    /// A flow is a user's when it names both the account and its name; flows are written with
    /// both or neither.
    pub fn owner(&self) -> FlowOwner<'_> {
        match (self.user, self.sam_account_name.as_deref()) {
            (Some(guid), Some(sam_account_name)) => FlowOwner::User {
                guid,
                sam_account_name,
            },
            _ => FlowOwner::Decoy { login: &self.login },
        }
    }

    pub fn verified(&self) -> Vec<MethodKind> {
        let mut v = Vec::new();
        if self.verified_totp_at.is_some() {
            v.push(MethodKind::Totp);
        }
        if self.verified_email_at.is_some() {
            v.push(MethodKind::Email);
        }
        v
    }
}

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
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    /// The session, if it exists and `now` is before its end (expired ones are never returned).
    async fn session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;
    async fn touch_session(&self, token_hash: &[u8], now: Timestamp) -> Result<(), StoreError>;
    async fn set_pending_totp(
        &self,
        token_hash: &[u8],
        sealed: Option<&[u8]>,
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

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn create_flow(&self, flow: &ResetFlow) -> Result<(), StoreError>;
    async fn flow(&self, id_hash: &[u8]) -> Result<Option<ResetFlow>, StoreError>;
    /// Records a successful verification with `method` (atomic per column, so two methods
    /// verified at once are both kept).
    async fn mark_verified(
        &self,
        id_hash: &[u8],
        method: MethodKind,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Adds one failed verification atomically; returns the new count.
    async fn add_flow_failure(&self, id_hash: &[u8]) -> Result<i64, StoreError>;
    /// Marks the flow finished; true only for the first caller (single use across instances).
    async fn finish_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<bool, StoreError>;
    /// Undoes the [`Self::finish_flow`] made at `at` (the write it guarded failed), so the flow
    /// can be tried again; a flow finished at another time is left alone.
    async fn reopen_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<(), StoreError>;
    async fn set_flow_dc(&self, id_hash: &[u8], dc: &str) -> Result<(), StoreError>;
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

/// Whom a block holds: an account, or the typed login of a decoy (as its keyed hash), so a
/// name without an account is blocked alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Person {
    User(ObjectGuid),
    Login(String),
}

/// What a throttle counts or blocks. Its text ([`fmt::Display`]) is the key the
/// [`ThrottleStore`] files it under; nothing reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThrottleKey {
    /// Reset and registration starts from one client address (or IPv6 prefix).
    AddressStarts(String),
    /// Code checks from one client address (or IPv6 prefix).
    AddressVerifications(String),
    /// The block a person earns by wrong codes.
    Blocked(Person),
    /// A person's wrong codes, counted towards that block.
    WrongCodes(Person),
    /// Code mails to a person.
    CodeMails(Person),
    /// Failed sign-ins of a user with one typed login (its keyed hash).
    UserSignIns(String),
    /// Failed sign-ins of an operator with one typed login (its keyed hash).
    OperatorSignInFailures(String),
    /// An operator's sign-in attempts with one typed login (its keyed hash).
    OperatorSignIns(String),
    /// An operator's requests.
    OperatorActions(ObjectGuid),
    /// Group membership checks of one operator session (the hex of its token hash).
    OperatorMembership(String),
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Person::User(guid) => write!(f, "user:{guid}"),
            Person::Login(hash) => write!(f, "login:{hash}"),
        }
    }
}

impl fmt::Display for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleKey::AddressStarts(address) => write!(f, "ip:start:{address}"),
            ThrottleKey::AddressVerifications(address) => write!(f, "ip:verify:{address}"),
            ThrottleKey::Blocked(person) => write!(f, "{person}"),
            ThrottleKey::WrongCodes(person) => write!(f, "{person}:fail"),
            ThrottleKey::CodeMails(person) => write!(f, "{person}:mail"),
            ThrottleKey::UserSignIns(hash) => write!(f, "signin:user:{hash}"),
            ThrottleKey::OperatorSignInFailures(hash) => write!(f, "signin:operator:{hash}"),
            ThrottleKey::OperatorSignIns(hash) => write!(f, "operator:sign_in:{hash}"),
            ThrottleKey::OperatorActions(guid) => write!(f, "operator:actions:{guid}"),
            ThrottleKey::OperatorMembership(hex) => write!(f, "operator:member:{hex}"),
        }
    }
}

/// Counters for throttling, kept in the database so they hold across restarts and instances.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Records one event under `key` at `at`; returns how many events the key has at or
    /// after `since`, this one included.
    async fn hit(&self, key: &str, at: Timestamp, since: Timestamp) -> Result<i64, StoreError>;
    /// How many events the key has at or after `since`.
    async fn count(&self, key: &str, since: Timestamp) -> Result<i64, StoreError>;
    /// Blocks `key` until `until` (a later block extends, an earlier one does not shorten).
    async fn block(&self, key: &str, until: Timestamp) -> Result<(), StoreError>;
    /// When the block on `key` ends, if it is blocked at `now`.
    async fn blocked_until(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Lifts the block on `key` and forgets every event of `counter` (its failure count), so
    /// the next failure starts a fresh count. Returns whether a block was in force at `now`.
    async fn lift_block(
        &self,
        key: &str,
        counter: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Deletes events and blocks that ended before `before`.
    async fn prune(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// A mail a batch command (`remind`, `notify-expiry`) sends a user, recorded so that it goes out
/// only as often as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub user: ObjectGuid,
    /// e.g. `registration_reminder`, `password_expiry`.
    pub kind: String,
    /// What makes one notice of a kind different from another (for an expiry warning: the
    /// threshold and the password's pwdLastSet); empty when the kind has one per user.
    pub key: String,
    pub sent_at: Timestamp,
}

#[async_trait]
pub trait NoticeLog: Send + Sync {
    /// When the notice (user, kind, key) was last sent, if ever.
    async fn notice_sent_at(
        &self,
        user: &ObjectGuid,
        kind: &str,
        key: &str,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Records `notice` as sent unless the same (user, kind, key) was sent at or after
    /// `since` ([`Timestamp::MIN`]: ever). True when recorded, and only then may the mail go out:
    /// atomic, so two runs at once send it once.
    async fn claim_notice(&self, notice: &Notice, since: Timestamp) -> Result<bool, StoreError>;
    /// Withdraws a claimed notice whose mail could not be sent, so the next run tries again.
    async fn release_notice(&self, notice: &Notice) -> Result<(), StoreError>;
}

/// One approval link, as stored (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerApproval {
    /// SHA-256 of the link's token; also the id of the manager's verification flow.
    pub id_hash: Vec<u8>,
    /// The operator's `manager` check of the caller, marked verified on approval.
    pub check_id_hash: Vec<u8>,
    /// The operator's sAMAccountName.
    pub operator: String,
    pub caller: ObjectGuid,
    pub caller_sam: String,
    pub caller_name: Option<String>,
    pub manager: ObjectGuid,
    pub manager_sam: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn create_approval(&self, approval: &ManagerApproval) -> Result<(), StoreError>;
    async fn approval(&self, id_hash: &[u8]) -> Result<Option<ManagerApproval>, StoreError>;
    /// Records that `user`'s `manager` is `manager_dn` at `now`, and returns since when the
    /// service has seen that value: `now` for a value new to it (first sight, or a change).
    async fn manager_seen_since(
        &self,
        user: &ObjectGuid,
        manager_dn: &str,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn throttle_keys_keep_the_text_rows_were_filed_under() {
        // Blocks and counts in force across an upgrade are found only under the same text.
        let guid = ObjectGuid(uuid::Uuid::from_u128(7));
        let user = || Person::User(guid);
        let login = || Person::Login("ab12".to_owned());
        let cases = [
            (
                ThrottleKey::AddressStarts("192.0.2.7".into()),
                "ip:start:192.0.2.7",
            ),
            (
                ThrottleKey::AddressVerifications("2001:db8::/64".into()),
                "ip:verify:2001:db8::/64",
            ),
            (ThrottleKey::Blocked(user()), &format!("user:{guid}")),
            (ThrottleKey::Blocked(login()), "login:ab12"),
            (
                ThrottleKey::WrongCodes(user()),
                &format!("user:{guid}:fail"),
            ),
            (ThrottleKey::WrongCodes(login()), "login:ab12:fail"),
            (ThrottleKey::CodeMails(login()), "login:ab12:mail"),
            (ThrottleKey::UserSignIns("ab12".into()), "signin:user:ab12"),
            (
                ThrottleKey::OperatorSignInFailures("ab12".into()),
                "signin:operator:ab12",
            ),
            (
                ThrottleKey::OperatorSignIns("ab12".into()),
                "operator:sign_in:ab12",
            ),
            (
                ThrottleKey::OperatorActions(guid),
                &format!("operator:actions:{guid}"),
            ),
            (
                ThrottleKey::OperatorMembership("0aff".into()),
                "operator:member:0aff",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn a_flow_without_an_account_is_a_decoy() {
        let guid = ObjectGuid(uuid::Uuid::from_u128(7));
        let mut flow = ResetFlow {
            id_hash: vec![1],
            user: Some(guid),
            login: "jdoe".to_owned(),
            sam_account_name: Some("JDoe".to_owned()),
            methods_required: 1,
            verified_totp_at: None,
            verified_email_at: None,
            failures: 0,
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(1),
            finished_at: None,
            dc: None,
            locale: Locale::En,
        };
        assert_eq!(
            flow.owner(),
            FlowOwner::User {
                guid,
                sam_account_name: "JDoe"
            }
        );
        flow.user = None;
        flow.sam_account_name = None;
        assert_eq!(flow.owner(), FlowOwner::Decoy { login: "jdoe" });
    }

    #[test]
    fn a_method_is_current_while_confirmed_within_the_limit() {
        let method = |confirmed_at: Option<i64>| EnrolledMethod {
            kind: MethodKind::Totp,
            address: None,
            secret_sealed: None,
            last_step: None,
            confirmed_at: confirmed_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(0),
        };
        let day = Duration::from_secs(86_400);
        let now = Timestamp::from_millis(10 * 86_400_000);
        assert!(!method(None).is_current(now, None), "pending");
        assert!(method(Some(0)).is_current(now, None), "never stale");
        let ms = now.as_millis();
        assert!(method(Some(ms - 86_400_000)).is_current(now, Some(day)));
        assert!(!method(Some(ms - 86_400_001)).is_current(now, Some(day)));
    }
}
