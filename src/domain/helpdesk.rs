//! The helpdesk: operators (members of `helpdesk.group_dn`, nested groups included) look a
//! caller up, verify them with a registered method, then reset to a temporary password that must
//! be changed at next logon, unlock, or clear the caller's registrations. The operator never
//! chooses the password. Everything is audited with the operator as actor.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

mod approval;

pub use approval::{APPROVAL_LIFETIME, Answer, ApprovalView, Approvals, caller_label};

pub use super::error::ManagerRefusal;
pub use super::settings::CallerCheck;
pub use super::store::{ApprovalStore, ManagerApproval};

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Outcome};
use super::clock::ms;
use super::deps::{Client, Deps};
use super::directory::{AccountChange, DirectoryUser, PasswordCheck};
use super::error::FlowError;
use super::notifier::mask_email;
use super::notify::{Mail, MailKind};
use super::protection::{is_allowed, is_protected};
use super::registration_code;
use super::secrets::{temporary_password, token_hash};
use super::signin::{self, Attempt, Failure, SignInPurpose, SignedIn};
use super::store::{
    AuditRecord, CodePurpose, MethodKind, Person, ResetFlow, Session, SessionKind, ThrottleKey,
};
use super::throttle::Limit;
use super::totp;
use super::verification::Subject;

/// FILETIME (100 ns ticks since 1601) → Unix ms; `None` for 0 and "never".
pub fn filetime_ms(filetime: i64) -> Option<i64> {
    const EPOCH_DIFF_MS: i64 = 11_644_473_600_000;
    (filetime > 0 && filetime != i64::MAX).then(|| filetime / 10_000 - EPOCH_DIFF_MS)
}

/// How an operator verified a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    Registered(MethodKind),
    AdMail,
    Manager,
}

impl VerifiedBy {
    pub fn check(self) -> CallerCheck {
        match self {
            VerifiedBy::Registered(_) => CallerCheck::Registered,
            VerifiedBy::AdMail => CallerCheck::AdMail,
            VerifiedBy::Manager => CallerCheck::Manager,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.check().as_str()
    }
}

/// What an operator sees about a caller.
#[derive(Clone, Debug)]
pub struct UserCard {
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub locked: bool,
    pub locked_since_ms: Option<i64>,
    pub must_change_password: bool,
    pub password_last_set_ms: Option<i64>,
    pub totp: bool,
    /// The confirmed address, masked.
    pub email: Option<String>,
    /// When the earliest active method was confirmed.
    pub registered_at_ms: Option<i64>,
    /// The operator may act on this account (not protected, or allow-listed).
    pub actionable: bool,
    /// The account's AD `mail`, masked (where an `ad_mail` check sends its code).
    pub ad_mail: Option<String>,
    /// How this operator has verified the caller in this session, if they have.
    pub verified_by: Option<VerifiedBy>,
    /// Until when wrong codes block the user's self-service (Unix ms), if they do.
    pub blocked_until_ms: Option<i64>,
    pub recent_events: Vec<AuditRecord>,
}

/// What an operator does to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A temporary password, shown to the operator or mailed to the user.
    Reset {
        deliver_by_email: bool,
    },
    Unlock,
    ClearRegistrations,
}

impl Action {
    fn event(self) -> AuditKind {
        match self {
            Action::Reset { .. } => AuditKind::HelpdeskReset,
            Action::Unlock => AuditKind::HelpdeskUnlock,
            Action::ClearRegistrations => AuditKind::HelpdeskClearRegistrations,
        }
    }
}

/// A signed-in operator.
pub struct Operator {
    session: Session,
}

pub struct Helpdesk<'a> {
    deps: &'a Deps,
}

const FORBIDDEN: &str = "Only members of the helpdesk group can sign in here.";

impl<'a> Helpdesk<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }

    /// Signs an operator in. Everyone who may not gets the same answer, whatever the reason.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &SecretString,
        code: Option<&str>,
        client: &Client,
    ) -> Result<String, FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        self.sign_in_limit(login, client).await?;
        let refused = || FlowError::Forbidden(FORBIDDEN.to_owned());
        let Some(group) = &h.group_dn else {
            return Err(refused());
        };
        let user = match signin::sign_in(d, SignInPurpose::Operator, login, password, client)
            .await?
        {
            // Only a valid password: an operator whose own password expired changes it first.
            Attempt::Right(SignedIn {
                user,
                check: PasswordCheck::Valid,
            }) => user,
            Attempt::Right(SignedIn { user, check }) => {
                let reason = format!("{check:?}").to_lowercase();
                self.audit_sign_in(client, Some(&user), login, Outcome::Failure, &reason)
                    .await?;
                return Err(refused());
            }
            Attempt::Failed { user, failure } => {
                let reason = match failure {
                    Failure::UnknownUser | Failure::Disabled => "unknown_or_disabled".to_owned(),
                    other => other.reason(),
                };
                self.audit_sign_in(client, user.as_ref(), login, Outcome::Failure, &reason)
                    .await?;
                return Err(refused());
            }
        };
        if !d.directory.is_member_of(&user, group).await? {
            self.audit_sign_in(
                client,
                Some(&user),
                login,
                Outcome::Denied,
                "not_in_helpdesk_group",
            )
            .await?;
            return Err(refused());
        }
        self.second_factor(&user, login, code, client).await?;
        let token = d
            .open_session(SessionKind::Helpdesk, &user, h.session_lifetime)
            .await?;
        // The group was just checked.
        let now = d.now_ms();
        d.throttle
            .hit(&membership_key(&token_hash(&token)).to_string(), now, now)
            .await?;
        self.audit_sign_in(client, Some(&user), login, Outcome::Success, "")
            .await?;
        Ok(token)
    }

    /// The operator's own authenticator code, when `helpdesk.operator_second_factor` asks for
    /// it. Only after the password and the group proved who is signing in, so the answer for a
    /// missing authenticator tells nothing to someone who does not know the password. A wrong or
    /// replayed code is refused like a wrong password.
    async fn second_factor(
        &self,
        user: &DirectoryUser,
        login: &str,
        code: Option<&str>,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        if !d.settings.helpdesk.operator_second_factor {
            return Ok(());
        }
        let secret = d
            .registrations
            .methods(&user.guid)
            .await?
            .into_iter()
            .find(|m| m.kind == MethodKind::Totp && m.confirmed_at_ms.is_some())
            .and_then(|m| m.secret_sealed)
            .and_then(|sealed| d.keys.open(&sealed, user.guid.0.as_bytes()));
        let Some(secret) = secret else {
            self.audit_sign_in(
                client,
                Some(user),
                login,
                Outcome::Denied,
                "no_second_factor",
            )
            .await?;
            return Err(FlowError::SecondFactorRequired);
        };
        let step = code.and_then(|c| totp::typed_step(&secret, c, d.now_ms()));
        // The step is spent atomically, so a code read over a shoulder is worth nothing after.
        let accepted = match step {
            Some(step) => d.registrations.advance_totp_step(&user.guid, step).await?,
            None => false,
        };
        if !accepted {
            self.audit_sign_in(
                client,
                Some(user),
                login,
                Outcome::Failure,
                "wrong_second_factor",
            )
            .await?;
            return Err(FlowError::Forbidden(FORBIDDEN.to_owned()));
        }
        Ok(())
    }

    async fn audit_sign_in(
        &self,
        client: &Client,
        user: Option<&DirectoryUser>,
        login: &str,
        outcome: Outcome,
        reason: &str,
    ) -> Result<(), FlowError> {
        let a = Audit {
            event: AuditKind::HelpdeskSignIn,
            outcome,
            user: None,
            sam_account_name: None,
            method: None,
            reason: (!reason.is_empty()).then_some(reason),
        };
        // Hashed known or not, so a login without an account takes no longer.
        let login_hash = self.deps.keys.login_hash(login);
        match user {
            Some(u) => {
                self.deps
                    .audit_as(client, Some(&u.sam_account_name), a)
                    .await?;
            }
            None => {
                self.deps
                    .audit_typed_login(client, None, login_hash, a)
                    .await?;
            }
        }
        Ok(())
    }

    /// The operator behind a token: a helpdesk session that has not expired nor been idle too
    /// long. Each call counts as activity.
    pub async fn operator(&self, token: &str) -> Result<Operator, FlowError> {
        let d = self.deps;
        let hash = token_hash(token);
        let now = d.now_ms();
        let session = match d.sessions.session(&hash, now).await? {
            Some(s) if s.kind == SessionKind::Helpdesk => s,
            _ => return Err(FlowError::Unauthorized),
        };
        if now - session.last_seen_at_ms > ms(d.settings.helpdesk.session_idle) {
            d.sessions.delete_session(&hash).await?;
            return Err(FlowError::Unauthorized);
        }
        self.recheck_membership(&session, now).await?;
        self.action_limit(&session, now).await?;
        d.sessions.touch_session(&hash, now).await?;
        Ok(Operator { session })
    }

    /// Counts a sign-in attempt, right or wrong, against the typed login, whether or not it names
    /// an account (so the limit says nothing about which do). Operators share no limit with the
    /// users they help; their failures are capped apart by `signin::sign_in`.
    async fn sign_in_limit(&self, login: &str, client: &Client) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let now = d.now_ms();
        let typed = signin::normalise_login(login, &d.settings.signin.domains);
        let key = ThrottleKey::OperatorSignIns(d.keys.login_hash(&typed));
        let count = d
            .throttle
            .hit(&key.to_string(), now, now - ms(h.operator_window))
            .await?;
        if count > h.operator_max_sign_ins {
            d.audit_throttled(client, None, Limit::OperatorSignIns, None)
                .await?;
            return Err(FlowError::Throttled {
                retry_after: h.operator_window,
            });
        }
        Ok(())
    }

    /// Counts one request of the operator's account (all their sessions together).
    async fn action_limit(&self, session: &Session, now: i64) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let key = ThrottleKey::OperatorActions(session.user);
        let count = d
            .throttle
            .hit(&key.to_string(), now, now - ms(h.operator_window))
            .await?;
        if count > h.operator_max_actions {
            let operator = (session.user, session.sam_account_name.as_str());
            let client = Client {
                ip: None,
                locale: String::new(),
            };
            d.audit_throttled(&client, Some(operator), Limit::OperatorActions, None)
                .await?;
            return Err(FlowError::Throttled {
                retry_after: h.operator_window,
            });
        }
        Ok(())
    }

    /// Ends the session of an operator who left the helpdesk group (or whose account was
    /// disabled or is gone) since it was last checked. The last check is a throttle event under
    /// the session, so every instance sees it.
    async fn recheck_membership(&self, session: &Session, now: i64) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let key = membership_key(&session.token_hash);
        if d.throttle
            .count(&key.to_string(), now - ms(h.membership_recheck))
            .await?
            > 0
        {
            return Ok(());
        }
        let still_member = match (
            &h.group_dn,
            d.directory.find_user(&session.sam_account_name).await?,
        ) {
            (Some(group), Some(user)) if user.guid == session.user && !user.is_disabled() => {
                d.directory.is_member_of(&user, group).await?
            }
            _ => false,
        };
        if !still_member {
            d.sessions.delete_session(&session.token_hash).await?;
            let client = Client {
                ip: None,
                locale: String::new(),
            };
            d.audit_as(
                &client,
                Some(&session.sam_account_name),
                Audit {
                    event: AuditKind::HelpdeskSessionEnded,
                    outcome: Outcome::Denied,
                    user: Some(session.user),
                    sam_account_name: Some(&session.sam_account_name),
                    method: None,
                    reason: Some("not_in_helpdesk_group"),
                },
            )
            .await?;
            return Err(FlowError::Unauthorized);
        }
        d.throttle.hit(&key.to_string(), now, now).await?;
        Ok(())
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), FlowError> {
        self.deps
            .sessions
            .delete_session(&token_hash(token))
            .await?;
        Ok(())
    }

    async fn target(&self, id: &str) -> Result<DirectoryUser, FlowError> {
        self.deps
            .directory
            .find_user_by(id.trim(), true)
            .await?
            .ok_or(FlowError::NotFound)
    }

    /// Whether the operator may act on `user`: not protected and not a helpdesk member
    /// themselves, unless allow-listed; never the service account or a `directory.never_reset`
    /// account, allow-listed or not.
    async fn actionable(&self, user: &DirectoryUser) -> Result<bool, FlowError> {
        let d = self.deps;
        if d.settings.eligibility.is_never_reset(user) {
            return Ok(false);
        }
        let h = &d.settings.helpdesk;
        let directory = d.directory.as_ref();
        let guarded = is_protected(directory, user).await?
            || match &h.group_dn {
                Some(group) => directory.is_member_of(user, group).await?,
                None => false,
            };
        Ok(!guarded || is_allowed(directory, user, &h.allow_protected).await?)
    }

    pub async fn lookup(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<UserCard, FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        let methods = d.registrations.methods(&user.guid).await?;
        let confirmed: Vec<_> = methods
            .iter()
            .filter(|m| m.confirmed_at_ms.is_some())
            .collect();
        // Where the DC keeps no change time for `manager`, the service's first sight of the value
        // is what `helpdesk.manager_min_age` counts from: every look-up records it. The card
        // itself does not depend on it.
        if let Err(e) = self.note_manager(&user).await {
            tracing::warn!(error = %e, "the caller's manager could not be recorded");
        }
        let card = UserCard {
            sam_account_name: user.sam_account_name.clone(),
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            enabled: !user.is_disabled(),
            locked: user.is_locked(),
            locked_since_ms: filetime_ms(user.lockout_time).filter(|_| user.is_locked()),
            must_change_password: user.must_change_password(),
            password_last_set_ms: filetime_ms(user.pwd_last_set),
            totp: confirmed.iter().any(|m| m.kind == MethodKind::Totp),
            email: confirmed
                .iter()
                .find(|m| m.kind == MethodKind::Email)
                .and_then(|m| m.address.as_deref())
                .map(mask_email),
            registered_at_ms: confirmed.iter().filter_map(|m| m.confirmed_at_ms).min(),
            actionable: self.actionable(&user).await?,
            ad_mail: ad_mail(&user).map(mask_email),
            verified_by: self.verified_by(&operator, &user).await?,
            blocked_until_ms: d
                .throttle
                .blocked_until(
                    &ThrottleKey::Blocked(block_key(&user)).to_string(),
                    d.now_ms(),
                )
                .await?,
            // Operators' own look-ups would crowd out what the caller did.
            recent_events: d
                .audit
                .for_user(&user.guid, 50)
                .await?
                .into_iter()
                .filter(|r| r.event.event != "helpdesk_lookup")
                .take(10)
                .collect(),
        };
        d.audit_as(
            client,
            Some(&operator.session.sam_account_name),
            Audit {
                event: AuditKind::HelpdeskLookup,
                outcome: Outcome::Success,
                user: Some(user.guid),
                sam_account_name: Some(&user.sam_account_name),
                method: None,
                reason: None,
            },
        )
        .await?;
        Ok(card)
    }

    /// The operator's verification of this caller, created on first use. Keyed by the operator's
    /// session and the caller, so one operator's check is not another's.
    async fn verification(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
        check: CallerCheck,
        client: &Client,
    ) -> Result<Subject, FlowError> {
        let d = self.deps;
        let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
        let purpose = CodePurpose::HelpdeskEmail;
        if let Some(subject) = Subject::live(d, id_hash.clone(), purpose).await? {
            return Ok(subject);
        }
        if d.flows.flow(&id_hash).await?.is_some() {
            // Ended by wrong codes (or expired): a fresh one needs a new session, so an operator
            // cannot guess codes forever.
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        let now = d.now_ms();
        d.flows
            .create_flow(&ResetFlow {
                id_hash: id_hash.clone(),
                user: Some(user.guid),
                login: user.sam_account_name.to_lowercase(),
                sam_account_name: Some(user.sam_account_name.clone()),
                methods_required: 1,
                verified_totp_at_ms: None,
                verified_email_at_ms: None,
                failures: 0,
                created_at_ms: now,
                expires_at_ms: now + ms(d.settings.helpdesk.verification_lifetime),
                finished_at_ms: None,
                dc: None,
                locale: client.locale.clone(),
            })
            .await?;
        Subject::live(d, id_hash, purpose)
            .await?
            .ok_or(FlowError::FlowNotFound)
    }

    /// The verification of `check` this operator is doing of this caller, if one is live.
    async fn live_check(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
        check: CallerCheck,
    ) -> Result<Option<Subject>, FlowError> {
        let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
        Subject::live(self.deps, id_hash, CodePurpose::HelpdeskEmail).await
    }

    async fn verified_by(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
    ) -> Result<Option<VerifiedBy>, FlowError> {
        let allowed = &self.deps.settings.helpdesk.verification_methods;
        for check in CallerCheck::ALL.into_iter().filter(|c| allowed.contains(c)) {
            let Some(subject) = self.live_check(operator, user, check).await? else {
                continue;
            };
            let verified = subject.flow.verified();
            let by = match check {
                CallerCheck::Registered => verified.first().copied().map(VerifiedBy::Registered),
                CallerCheck::AdMail => verified
                    .contains(&MethodKind::Email)
                    .then_some(VerifiedBy::AdMail),
                CallerCheck::Manager => (!verified.is_empty()).then_some(VerifiedBy::Manager),
            };
            if by.is_some() {
                return Ok(by);
            }
        }
        Ok(None)
    }

    /// Refuses a check that `helpdesk.verification_methods` leaves out.
    fn allowed(&self, check: CallerCheck) -> Result<(), FlowError> {
        if self
            .deps
            .settings
            .helpdesk
            .verification_methods
            .contains(&check)
        {
            Ok(())
        } else {
            Err(FlowError::Forbidden(format!(
                "Verifying callers by {} is turned off here (helpdesk.verification_methods).",
                check.as_str()
            )))
        }
    }

    /// Mails the caller a code to read back to the operator: to their confirmed address
    /// (`registered`) or to the account's AD `mail` (`ad_mail`).
    pub async fn send_code(
        &self,
        token: &str,
        id: &str,
        to: CallerCheck,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        self.allowed(to)?;
        let address = match to {
            CallerCheck::Registered => {
                if d.confirmed_email(&user.guid).await?.is_none() {
                    return Err(FlowError::InvalidInput(
                        "This user has no confirmed email address.".to_owned(),
                    ));
                }
                None
            }
            CallerCheck::AdMail => Some(ad_mail(&user).map(str::to_owned).ok_or_else(|| {
                FlowError::InvalidInput("This user has no mail address in AD.".to_owned())
            })?),
            CallerCheck::Manager => {
                return Err(FlowError::InvalidInput(
                    "A manager approves by a link, not a code.".to_owned(),
                ));
            }
        };
        let mut subject = self.verification(&operator, &user, to, client).await?;
        subject.address = address;
        subject
            .send_code(
                d,
                |code| MailKind::HelpdeskCode { code },
                client,
                Some(&operator.session.sam_account_name),
            )
            .await
    }

    pub async fn verify(
        &self,
        token: &str,
        id: &str,
        method: MethodKind,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        let check = match method {
            MethodKind::Totp => CallerCheck::Registered,
            MethodKind::Email => self.emailed_check(&operator, &user).await?,
        };
        self.allowed(check)?;
        let subject = self.verification(&operator, &user, check, client).await?;
        subject
            .verify(
                d,
                method,
                code,
                client,
                Some(&operator.session.sam_account_name),
            )
            .await?;
        Ok(())
    }

    /// Which emailed code the operator is reading back: the one sent last, of those not yet
    /// used; the confirmed address's when none is waiting.
    async fn emailed_check(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
    ) -> Result<CallerCheck, FlowError> {
        let mut latest = (CallerCheck::Registered, i64::MIN);
        for check in [CallerCheck::Registered, CallerCheck::AdMail] {
            let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
            let pending = self
                .deps
                .codes
                .code(CodePurpose::HelpdeskEmail, &id_hash)
                .await?;
            if let Some(code) = pending.filter(|c| c.created_at_ms > latest.1) {
                latest = (check, code.created_at_ms);
            }
        }
        Ok(latest.0)
    }

    /// Refuses (and audits) acting on an account the helpdesk may not touch.
    async fn refuse_protected(
        &self,
        user: &DirectoryUser,
        event: AuditKind,
        actor: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        if self.actionable(user).await? {
            return Ok(());
        }
        self.deps
            .audit_as(
                client,
                Some(actor),
                Audit {
                    event,
                    outcome: Outcome::Denied,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some("protected_account"),
                },
            )
            .await?;
        Err(FlowError::Forbidden(
            "This account is protected (an administrator or a helpdesk member); the helpdesk \
             cannot act on it."
                .to_owned(),
        ))
    }

    /// Issues a one-time registration code that stands in for the caller's step-up once (they
    /// lost every method). A code adds methods that reset the password later, so it takes a
    /// verified caller whatever `require_verification` says, and never a protected account.
    pub async fn registration_code(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<Zeroizing<String>, FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.as_str();
        let user = self.target(id).await?;
        self.refuse_protected(&user, AuditKind::RegistrationCodeIssued, actor, client)
            .await?;
        if self.verified_by(&operator, &user).await?.is_none() {
            return Err(FlowError::NotVerified);
        }
        registration_code::issue(d, &user, actor, client).await
    }

    /// Acts on the caller's account. Returns the temporary password when it is to be shown to
    /// the operator (once; it is stored nowhere).
    pub async fn act(
        &self,
        token: &str,
        id: &str,
        action: Action,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<Option<SecretString>, FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.clone();
        let user = self.target(id).await?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());

        self.refuse_protected(&user, action.event(), &actor, client)
            .await?;

        let verified_by = self.verified_by(&operator, &user).await?;
        let method = match (verified_by, reason) {
            (Some(m), _) => m.as_str().to_owned(),
            (None, _) if h.require_verification => return Err(FlowError::NotVerified),
            (None, None) => {
                return Err(FlowError::InvalidInput(
                    "Verify the caller first, or write the reason for acting without verification."
                        .to_owned(),
                ));
            }
            (None, Some(_)) => "unverified".to_owned(),
        };

        let address = d.confirmed_email(&user.guid).await?;
        let (temporary, notification) = match action {
            Action::Reset { deliver_by_email } => {
                if deliver_by_email && address.is_none() {
                    return Err(FlowError::InvalidInput(
                        "This user has no confirmed email address to send the password to."
                            .to_owned(),
                    ));
                }
                let password =
                    SecretString::from(temporary_password(h.temporary_password_length).to_string());
                d.directory
                    .write_account(
                        &user,
                        &AccountChange {
                            new_password: Some(&password),
                            unlock: true,
                            must_change: true,
                        },
                    )
                    .await?;
                super::enrollment::end_sessions(d, &user).await;
                (Some(password), MailKind::HelpdeskPasswordReset)
            }
            Action::Unlock => {
                d.directory
                    .write_account(
                        &user,
                        &AccountChange {
                            unlock: true,
                            ..AccountChange::default()
                        },
                    )
                    .await?;
                (None, MailKind::HelpdeskUnlocked)
            }
            Action::ClearRegistrations => {
                d.registrations.remove_all(&user.guid).await?;
                (None, MailKind::HelpdeskRegistrationsCleared)
            }
        };
        let audit_reason = match reason {
            Some(r) if method == "unverified" => format!("unverified: {r}"),
            Some(r) => r.to_owned(),
            None => String::new(),
        };
        // Done: a database failure from here on is logged, not reported, or the operator would
        // not see the temporary password that the account now has.
        d.audit_done(
            client,
            Some(&actor),
            Audit {
                event: action.event(),
                outcome: Outcome::Success,
                user: Some(user.guid),
                sam_account_name: Some(&user.sam_account_name),
                method: None,
                reason: Some(&format!("verified_by={method}; {audit_reason}")),
            },
        )
        .await;

        // The password mail first, then the notice of what the helpdesk did.
        let shown = match (action, temporary, &address) {
            (
                Action::Reset {
                    deliver_by_email: true,
                },
                Some(password),
                Some(to),
            ) => self.mail_temporary(&user, to, password, client).await,
            (_, temporary, _) => temporary,
        };
        // `address` was read before the action: after a clear it is told it was removed.
        d.notify_owner(
            client,
            &user,
            address.as_deref(),
            &client.locale,
            notification,
        )
        .await;
        Ok(shown)
    }

    /// Lifts the self-service block that wrong codes put on the caller, and forgets those
    /// failures. A block says nothing about who is calling, so a written reason is enough; the
    /// owner is told, so a lift they did not ask for does not go unnoticed.
    pub async fn lift_block(
        &self,
        token: &str,
        id: &str,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.as_str();
        let user = self.target(id).await?;
        let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
            return Err(FlowError::InvalidInput(
                "Write the reason for lifting the block.".to_owned(),
            ));
        };
        let key = block_key(&user);
        let lifted = d
            .throttle
            .lift_block(
                &ThrottleKey::Blocked(key.clone()).to_string(),
                &ThrottleKey::WrongCodes(key).to_string(),
                d.now_ms(),
            )
            .await?;
        d.audit_as(
            client,
            Some(actor),
            Audit {
                event: AuditKind::HelpdeskLiftBlock,
                outcome: if lifted {
                    Outcome::Success
                } else {
                    Outcome::NotBlocked
                },
                user: Some(user.guid),
                sam_account_name: Some(&user.sam_account_name),
                method: None,
                reason: Some(reason),
            },
        )
        .await?;
        if lifted {
            d.notify_owner(
                client,
                &user,
                None,
                &client.locale,
                MailKind::HelpdeskBlockLifted,
            )
            .await;
        }
        Ok(())
    }

    /// Mails the temporary password; if that fails, returns it so the operator can tell the
    /// caller (it is already set and must be changed at next logon, so losing it helps nobody).
    async fn mail_temporary(
        &self,
        user: &DirectoryUser,
        to: &str,
        password: SecretString,
        client: &Client,
    ) -> Option<SecretString> {
        let mail = Mail {
            to: to.to_owned(),
            display_name: user.display_name.clone(),
            locale: client.locale.clone(),
            kind: MailKind::TemporaryPassword {
                password: SecretString::from(password.expose_secret().to_owned()),
            },
        };
        let sent = match &self.deps.mailer {
            Some(mailer) => mailer.send(&mail).await.is_ok(),
            None => false,
        };
        if sent {
            None
        } else {
            tracing::warn!("temporary password mail not sent; showing it to the operator");
            Some(password)
        }
    }
}

/// The key of the self-service block on a user (see `Subject::user_key`).
fn block_key(user: &DirectoryUser) -> Person {
    Person::User(user.guid)
}

/// The throttle key whose events are a session's membership checks.
fn membership_key(session_hash: &[u8]) -> ThrottleKey {
    let hex: String = session_hash.iter().map(|b| format!("{b:02x}")).collect();
    ThrottleKey::OperatorMembership(hex)
}

/// The AD `mail` of the account, if it has one.
fn ad_mail(user: &DirectoryUser) -> Option<&str> {
    user.mail
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// One verification per operator session, caller and kind of check, so one operator's check is
/// not another's, and a code mailed to AD `mail` proves `ad_mail`, never `registered`.
fn verification_id(session_hash: &[u8], user: &ObjectGuid, check: CallerCheck) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"sspr-bridge/helpdesk-verification/v1");
    hasher.update(session_hash);
    hasher.update(user.0.as_bytes());
    if check != CallerCheck::Registered {
        hasher.update(check.as_str().as_bytes());
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_convert_to_unix_ms() {
        // 2026-11-01T00:00:00Z
        assert_eq!(
            filetime_ms(134_379_648_000_000_000),
            Some(1_793_491_200_000)
        );
        assert_eq!(filetime_ms(0), None);
        assert_eq!(filetime_ms(i64::MAX), None);
    }
}
