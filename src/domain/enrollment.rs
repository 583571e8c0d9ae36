//! Registration: a user signs in with their current AD password, then adds or removes an
//! authenticator app (TOTP) or an email address. A method is active only once the user has
//! typed a code that proves they hold it.

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::audit::{Audit, AuditKind, Outcome};
use super::clock::ms;
use super::deps::{Client, Deps};
use super::directory::{DirectoryUser, PasswordCheck};
use super::error::FlowError;
use super::licence::LicenceRequired;
use super::notifier::mask_email;
use super::notify::MailKind;
use super::secrets::{self, normalise_code, token_hash};
use super::signin::{self, Attempt, SignInPurpose};
use super::store::{
    CodePurpose, EnrolledMethod, MethodKind, PendingCode, Person, ResetFlow, Session, SessionKind,
    ThrottleKey,
};
use super::throttle::{Limit, PerAddress};
use super::verification::Subject;
use super::{registration_code, totp};

/// What the user has registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub totp: bool,
    /// The confirmed address, masked.
    pub email: Option<String>,
    /// A confirmed method is older than `registration.reconfirm_days`: it does not count for a
    /// reset until confirmed again.
    pub reconfirm_due: bool,
    /// This session must prove one of `step_up_methods` before it changes any method.
    pub step_up_required: bool,
    /// What can prove it is the user: their confirmed methods (due for re-confirmation or not)
    /// and a registration code from the helpdesk.
    pub step_up_methods: Vec<StepUpMethod>,
}

/// A way for a registration session to step up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepUpMethod {
    Totp,
    Email,
    /// A one-time code from the helpdesk or `sspr-bridge registration-code`.
    RegistrationCode,
}

impl StepUpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            StepUpMethod::Totp => "totp",
            StepUpMethod::Email => "email",
            StepUpMethod::RegistrationCode => "registration_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Totp, Self::Email, Self::RegistrationCode]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The step-up rule (as in Entra's combined registration). `confirmed`: the user's confirmed
/// methods; `trusted`: the request comes from `registration.allowed_networks`. Returns the methods
/// that can step the session up, and whether it must before it changes anything.
///
/// The first method needs only the AD password, from a trusted network; from anywhere else it
/// needs a registration code, so a phished password alone never gets a method onto an account.
/// Once a method exists, every new session proves one (or a registration code) first. A session
/// that has already proven one (a step-up, or a method it confirmed itself) goes on freely.
pub fn step_up_rule(
    confirmed: &[MethodKind],
    stepped_up: bool,
    trusted: bool,
) -> (Vec<StepUpMethod>, bool) {
    let mut methods: Vec<StepUpMethod> = MethodKind::ALL
        .into_iter()
        .filter(|kind| confirmed.contains(kind))
        .map(|kind| match kind {
            MethodKind::Totp => StepUpMethod::Totp,
            MethodKind::Email => StepUpMethod::Email,
        })
        .collect();
    methods.push(StepUpMethod::RegistrationCode);
    let required = !stepped_up && (!confirmed.is_empty() || !trusted);
    (methods, required)
}

/// A registration session opened with the old password ends with it: whoever signed in with it
/// (perhaps the reason for the reset) cannot go on changing methods. The password is already
/// written, so a database failure here is logged, not reported.
pub async fn end_sessions(d: &Deps, user: &DirectoryUser) {
    let ended = d
        .sessions
        .delete_user_sessions(&user.guid, SessionKind::Enrollment)
        .await;
    if let Err(e) = ended {
        tracing::error!(error = %e, "registration sessions not ended after a password reset");
    }
}

/// What a signed-in user may register.
enum Right {
    Full,
    /// A helpdesk operator whom self-service is not for (the licence is off, or they are out of
    /// scope): their own authenticator app, the second factor of their helpdesk sign-in.
    AuthenticatorOnly,
    /// Why they may not register at all.
    Refused(FlowError),
}

/// The id of a session's step-up verification: derived from the session, so each session proves
/// the user afresh and its wrong codes end it.
fn step_up_id(session_hash: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"sspr-bridge/enrollment-step-up/v1");
    hasher.update(session_hash);
    hasher.finalize().to_vec()
}

pub struct Enrollment<'a> {
    deps: &'a Deps,
}

impl<'a> Enrollment<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }

    /// Binds as the user on a fresh connection. Returns a session token on success.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<String, FlowError> {
        let d = self.deps;
        d.ip_limit(client, PerAddress::Starts, d.settings.ip_max_starts)
            .await?;
        let login = login.trim();
        if login.is_empty() || login.chars().count() > 256 {
            return Err(FlowError::InvalidCredentials);
        }
        let signed_in =
            match signin::sign_in(d, SignInPurpose::SelfService, login, password, client).await? {
                Attempt::Right(signed_in) => signed_in,
                Attempt::Failed { user, failure } => {
                    let reason = failure.reason();
                    // Hashed known or not, so a login without an account takes no longer.
                    let login_hash = d.keys.login_hash(login);
                    let failed = Audit {
                        event: AuditKind::SignIn,
                        outcome: Outcome::Failure,
                        user: user.as_ref().map(|u| u.guid),
                        sam_account_name: user.as_ref().map(|u| u.sam_account_name.as_str()),
                        method: None,
                        reason: Some(&reason),
                    };
                    match &user {
                        Some(_) => d.audit(client, failed).await?,
                        None => {
                            d.audit_typed_login(client, None, login_hash, failed)
                                .await?
                        }
                    }
                    return Err(FlowError::InvalidCredentials);
                }
            };
        self.refuse_password_change(&signed_in.user, signed_in.check, client)
            .await?;
        let signed_in = &signed_in.user;
        // Judged only now: whether self-service is for an account is told only to someone who
        // proved its password.
        if let Right::Refused(refusal) = self.registration_right(signed_in).await? {
            let reason = match &refusal {
                FlowError::NotInScope(why) => why.reason(),
                _ => "licence_required",
            };
            d.audit(
                client,
                Audit {
                    event: AuditKind::SignIn,
                    outcome: Outcome::Denied,
                    user: Some(signed_in.guid),
                    sam_account_name: Some(&signed_in.sam_account_name),
                    method: None,
                    reason: Some(reason),
                },
            )
            .await?;
            return Err(refusal);
        }
        let token = d
            .open_session(
                SessionKind::Enrollment,
                signed_in,
                d.settings.session_lifetime,
            )
            .await?;
        d.audit(
            client,
            Audit {
                event: AuditKind::SignIn,
                outcome: Outcome::Success,
                user: Some(signed_in.guid),
                sam_account_name: Some(&signed_in.sam_account_name),
                method: None,
                reason: None,
            },
        )
        .await?;
        Ok(token)
    }

    /// A must-change (773) or expired (532) password proves knowledge of the password, but not
    /// that its holder is the user: it is typically a temporary password the helpdesk set and read
    /// out. Registering with it would turn that into a method, then a password, of the reader's
    /// choosing; so the user changes it first (at a Windows sign-in) and comes back.
    async fn refuse_password_change(
        &self,
        user: &DirectoryUser,
        check: PasswordCheck,
        client: &Client,
    ) -> Result<(), FlowError> {
        if !matches!(check, PasswordCheck::MustChange | PasswordCheck::Expired) {
            return Ok(());
        }
        let reason = format!("{check:?}").to_lowercase();
        self.deps
            .audit(
                client,
                Audit {
                    event: AuditKind::SignIn,
                    outcome: Outcome::Denied,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(&reason),
                },
            )
            .await?;
        Err(FlowError::PasswordChangeRequired)
    }

    async fn registration_right(&self, user: &DirectoryUser) -> Result<Right, FlowError> {
        let d = self.deps;
        let excluded = if d.settings.self_service_licensed {
            let standing = d
                .settings
                .eligibility
                .standing(d.directory.as_ref(), user)
                .await?;
            match standing.excluded {
                None => return Ok(Right::Full),
                Some(why) => FlowError::NotInScope(why),
            }
        } else {
            FlowError::LicenceRequired(LicenceRequired)
        };
        let operator = match &d.settings.helpdesk.group_dn {
            Some(group) => d.directory.is_member_of(user, group).await?,
            None => false,
        };
        Ok(if operator {
            Right::AuthenticatorOnly
        } else {
            Right::Refused(excluded)
        })
    }

    /// An email address is a method for self-service only: an operator registering because they
    /// are one gets an authenticator app (a code mailed to an inbox is no second factor for the
    /// helpdesk).
    async fn email_allowed(&self, session: &Session) -> Result<(), FlowError> {
        let user = self
            .deps
            .directory
            .find_user(&session.sam_account_name)
            .await?
            .filter(|u| u.guid == session.user)
            .ok_or(FlowError::Unauthorized)?;
        match self.registration_right(&user).await? {
            Right::Full => Ok(()),
            Right::AuthenticatorOnly => Err(FlowError::Forbidden(
                "Helpdesk operators register an authenticator app here; an email address is not \
                 a second factor for the helpdesk."
                    .to_owned(),
            )),
            Right::Refused(refusal) => Err(refusal),
        }
    }

    /// Ends the session on the server, so a copied token or cookie is worth nothing afterwards.
    pub async fn sign_out(&self, token: &str) -> Result<(), FlowError> {
        self.deps
            .sessions
            .delete_session(&token_hash(token))
            .await?;
        Ok(())
    }

    async fn session(&self, token: &str) -> Result<Session, FlowError> {
        let d = self.deps;
        let hash = token_hash(token);
        match d.sessions.session(&hash, d.now_ms()).await? {
            Some(s) if s.kind == SessionKind::Enrollment => Ok(s),
            _ => Err(FlowError::Unauthorized),
        }
    }

    /// The signed-in user as AD sees them now (for the `mail` pre-fill and the notification name).
    pub async fn directory_user(&self, token: &str) -> Result<Option<DirectoryUser>, FlowError> {
        let session = self.session(token).await?;
        let user = self
            .deps
            .directory
            .find_user(&session.sam_account_name)
            .await?;
        Ok(user.filter(|u| u.guid == session.user))
    }

    pub async fn status(&self, token: &str, client: &Client) -> Result<Status, FlowError> {
        let session = self.session(token).await?;
        let methods = self.deps.registrations.methods(&session.user).await?;
        let (step_up_methods, step_up_required) = self.step_up_state(&session, &methods, client);
        let confirmed = |kind| {
            methods
                .iter()
                .find(|m| m.kind == kind && m.confirmed_at_ms.is_some())
        };
        let (now, max_age) = (self.deps.now_ms(), self.deps.settings.reconfirm_after);
        Ok(Status {
            totp: confirmed(MethodKind::Totp).is_some(),
            email: confirmed(MethodKind::Email)
                .and_then(|m| m.address.as_deref())
                .map(mask_email),
            reconfirm_due: methods
                .iter()
                .any(|m| m.confirmed_at_ms.is_some() && !m.is_current(now, max_age)),
            step_up_required,
            step_up_methods,
        })
    }

    fn step_up_state(
        &self,
        session: &Session,
        methods: &[EnrolledMethod],
        client: &Client,
    ) -> (Vec<StepUpMethod>, bool) {
        let confirmed: Vec<MethodKind> = methods
            .iter()
            .filter(|m| m.confirmed_at_ms.is_some())
            .map(|m| m.kind)
            .collect();
        let networks = &self.deps.settings.registration_networks;
        let trusted = networks.is_empty()
            || client
                .ip
                .is_some_and(|ip| networks.iter().any(|n| n.contains(ip)));
        step_up_rule(&confirmed, session.stepped_up_at_ms.is_some(), trusted)
    }

    /// The session, if it may change the user's methods now; otherwise `StepUpRequired`.
    async fn changing_session(&self, token: &str, client: &Client) -> Result<Session, FlowError> {
        let session = self.session(token).await?;
        let methods = self.deps.registrations.methods(&session.user).await?;
        if self.step_up_state(&session, &methods, client).1 {
            return Err(FlowError::StepUpRequired);
        }
        Ok(session)
    }

    /// This session proved a method (a step-up, or one it confirmed itself).
    async fn stepped_up(&self, session: &Session) -> Result<(), FlowError> {
        let d = self.deps;
        d.sessions
            .set_stepped_up(&session.token_hash, d.now_ms())
            .await?;
        Ok(())
    }

    /// The session's step-up verification, created on first use. It lives as long as the
    /// session; once wrong codes have ended it, so does the session.
    async fn step_up_subject(
        &self,
        session: &Session,
        client: &Client,
    ) -> Result<Subject, FlowError> {
        let d = self.deps;
        let id_hash = step_up_id(&session.token_hash);
        let purpose = CodePurpose::StepUpEmail;
        if let Some(subject) = Subject::live(d, id_hash.clone(), purpose).await? {
            return Ok(subject);
        }
        if d.flows.flow(&id_hash).await?.is_some() {
            d.sessions.delete_session(&session.token_hash).await?;
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        d.flows
            .create_flow(&ResetFlow {
                id_hash: id_hash.clone(),
                user: Some(session.user),
                login: session.sam_account_name.to_lowercase(),
                sam_account_name: Some(session.sam_account_name.clone()),
                methods_required: 1,
                verified_totp_at_ms: None,
                verified_email_at_ms: None,
                failures: 0,
                created_at_ms: d.now_ms(),
                expires_at_ms: session.expires_at_ms,
                finished_at_ms: None,
                dc: None,
                locale: client.locale.clone(),
            })
            .await?;
        Subject::live(d, id_hash, purpose)
            .await?
            .ok_or(FlowError::FlowNotFound)
    }

    /// Mails a step-up code to the user's confirmed address. A user without one gets no mail,
    /// and no code they typed can match.
    pub async fn send_step_up_code(&self, token: &str, client: &Client) -> Result<(), FlowError> {
        let session = self.session(token).await?;
        let subject = self.step_up_subject(&session, client).await?;
        subject
            .send_code(self.deps, |code| MailKind::ResetCode { code }, client, None)
            .await
    }

    /// Proves an existing method (or redeems a registration code), so this session may change
    /// the user's methods. Same rules as a reset verification: codes are spent once, wrong ones
    /// end the verification (and the session) and count against the user. The method used counts
    /// as re-confirmed.
    pub async fn step_up(
        &self,
        token: &str,
        method: StepUpMethod,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        let subject = self.step_up_subject(&session, client).await?;
        let proved = match method {
            StepUpMethod::Totp => Some(MethodKind::Totp),
            StepUpMethod::Email => Some(MethodKind::Email),
            StepUpMethod::RegistrationCode => None,
        };
        let checked = match proved {
            Some(kind) => subject.verify(d, kind, code, client, None).await.map(drop),
            None => self.redeem(&subject, &session, code, client).await,
        };
        if let Err(e) = checked {
            if matches!(
                e,
                FlowError::InvalidCode {
                    remaining_attempts: 0
                }
            ) {
                // Wrong codes ended the step-up, and with it the session: sign in again.
                d.sessions.delete_session(&session.token_hash).await?;
            }
            return Err(e);
        }
        if let Some(kind) = proved {
            d.registrations
                .reconfirm_method(&session.user, kind, d.now_ms())
                .await?;
        }
        self.stepped_up(&session).await?;
        d.audit(
            client,
            Audit {
                event: AuditKind::StepUp,
                outcome: Outcome::Success,
                user: Some(session.user),
                sam_account_name: Some(&session.sam_account_name),
                method: proved,
                reason: proved.is_none().then_some("registration_code"),
            },
        )
        .await?;
        Ok(())
    }

    /// Spends the user's registration code, if `code` is it; a wrong one counts like any wrong
    /// code.
    async fn redeem(
        &self,
        subject: &Subject,
        session: &Session,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        // As for any code: not spent during a block, which answers as a wrong code would.
        let blocked = subject.before_check(d, client).await?;
        if !blocked && registration_code::redeem(d, &session.user, code).await? {
            Ok(())
        } else {
            Err(subject.wrong_code(d, None, blocked, client, None).await?)
        }
    }

    /// A new TOTP secret for the user to scan; it replaces any earlier one only once confirmed.
    pub async fn begin_totp(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<totp::Provisioning, FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        let secret = totp::new_secret();
        let sealed = d.keys.seal(&secret, session.user.0.as_bytes());
        d.sessions
            .set_pending_totp(&session.token_hash, Some(&sealed))
            .await?;
        Ok(totp::provisioning(
            &secret,
            &d.settings.totp_issuer,
            &session.sam_account_name,
        ))
    }

    pub async fn confirm_totp(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        let Some(sealed) = &session.pending_totp else {
            return Err(FlowError::InvalidInput(
                "Start by adding an authenticator app; then type its code.".to_owned(),
            ));
        };
        let secret = d
            .keys
            .open(sealed, session.user.0.as_bytes())
            .ok_or_else(|| FlowError::InvalidInput("Add the authenticator app again.".into()))?;
        let Some(step) = totp::typed_step(&secret, code, d.now_ms()) else {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        };
        let now = d.now_ms();
        d.registrations
            .put_method(
                &session.user,
                &session.sam_account_name,
                &EnrolledMethod {
                    kind: MethodKind::Totp,
                    address: None,
                    secret_sealed: Some(sealed.clone()),
                    // The confirming code is spent: it cannot be replayed for a reset.
                    last_step: Some(step),
                    confirmed_at_ms: Some(now),
                    created_at_ms: now,
                },
            )
            .await?;
        d.sessions
            .set_pending_totp(&session.token_hash, None)
            .await?;
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Totp, None, client)
            .await
    }

    /// Confirms the registered authenticator app again with a current code (spent like any
    /// other), so it counts for resets for another `registration.reconfirm_days`. An email
    /// address is confirmed again by adding it again.
    pub async fn reconfirm_totp(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        let secret = d
            .registrations
            .methods(&session.user)
            .await?
            .into_iter()
            .find(|m| m.kind == MethodKind::Totp && m.confirmed_at_ms.is_some())
            .and_then(|m| m.secret_sealed)
            .and_then(|sealed| d.keys.open(&sealed, session.user.0.as_bytes()));
        let Some(secret) = secret else {
            return Err(FlowError::InvalidInput(
                "There is no authenticator app to confirm; add one.".to_owned(),
            ));
        };
        let now = d.now_ms();
        let step = totp::typed_step(&secret, code, now);
        // Spent atomically, as in a reset: a code seen once is never accepted again.
        let spent = match step {
            Some(step) => {
                d.registrations
                    .advance_totp_step(&session.user, step)
                    .await?
            }
            None => false,
        };
        if !spent {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        }
        d.registrations
            .reconfirm_method(&session.user, MethodKind::Totp, now)
            .await?;
        self.stepped_up(&session).await?;
        d.audit(
            client,
            Audit {
                event: AuditKind::EnrollmentReconfirmed,
                outcome: Outcome::Success,
                user: Some(session.user),
                sam_account_name: Some(&session.sam_account_name),
                method: Some(MethodKind::Totp),
                reason: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Mails a code to `address`; the address becomes active once the code is typed back.
    pub async fn begin_email(
        &self,
        token: &str,
        address: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        self.email_allowed(&session).await?;
        let address = address.trim();
        if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
            return Err(FlowError::InvalidInput(
                "That does not look like an email address.".to_owned(),
            ));
        }
        if d.mailer.is_none() {
            return Err(FlowError::MailUnavailable);
        }
        self.email_quota(&session, client).await?;
        let code = secrets::new_email_code();
        let now = d.now_ms();
        let purpose = CodePurpose::EnrollEmail;
        let pending = PendingCode {
            purpose,
            subject: session.token_hash.clone(),
            code_hash: d
                .keys
                .code_hash(purpose.as_str(), &session.token_hash, &code),
            address: address.to_owned(),
            created_at_ms: now,
            expires_at_ms: now + ms(d.settings.code_lifetime),
        };
        d.codes.put_code(&pending).await?;
        let mail = super::notify::Mail {
            to: address.to_owned(),
            display_name: None,
            locale: client.locale.clone(),
            kind: MailKind::EnrollmentCode {
                code: SecretString::from(code.to_string()),
            },
        };
        let who = (Some(session.user), session.sam_account_name.as_str());
        d.queue_code(&pending, Some(address.to_owned()), mail, who, client, None)
            .await?;
        Ok(())
    }

    pub async fn confirm_email(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        self.email_allowed(&session).await?;
        let purpose = CodePurpose::EnrollEmail;
        let pending = d.codes.code(purpose, &session.token_hash).await?;
        let now = d.now_ms();
        let valid = match (&pending, normalise_code(code, 8)) {
            (Some(p), Some(code)) => {
                p.expires_at_ms > now
                    && d.keys.code_matches(
                        purpose.as_str(),
                        &session.token_hash,
                        &code,
                        &p.code_hash,
                    )
            }
            _ => false,
        };
        let Some(pending) = pending.filter(|_| valid) else {
            return Err(self.wrong_code(&session, MethodKind::Email, client).await?);
        };
        // Single use: of two requests racing with the right code, one wins.
        if !d
            .codes
            .take_code(purpose, &session.token_hash, &pending.code_hash)
            .await?
        {
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        // Read before it is overwritten: the replaced address is told of its replacement.
        let replaced = d
            .confirmed_email(&session.user)
            .await?
            .filter(|old| !old.eq_ignore_ascii_case(&pending.address));
        d.registrations
            .put_method(
                &session.user,
                &session.sam_account_name,
                &EnrolledMethod {
                    kind: MethodKind::Email,
                    address: Some(pending.address),
                    secret_sealed: None,
                    last_step: None,
                    confirmed_at_ms: Some(now),
                    created_at_ms: now,
                },
            )
            .await?;
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Email, replaced, client)
            .await
    }

    pub async fn remove(
        &self,
        token: &str,
        kind: MethodKind,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        // Read before removal, so a removed address still hears that it was removed.
        let address = d.confirmed_email(&session.user).await?;
        if d.registrations.remove_method(&session.user, kind).await? {
            let notice = MailKind::MethodRemoved { method: kind };
            let also = address.filter(|_| kind == MethodKind::Email);
            self.method_changed(
                &session,
                kind,
                AuditKind::EnrollmentRemoved,
                also,
                notice,
                client,
            )
            .await?;
        }
        Ok(())
    }

    async fn wrong_code(
        &self,
        session: &Session,
        method: MethodKind,
        client: &Client,
    ) -> Result<FlowError, FlowError> {
        let d = self.deps;
        let failures = d.sessions.add_session_failure(&session.token_hash).await?;
        d.audit(
            client,
            Audit {
                event: AuditKind::EnrollmentConfirm,
                outcome: Outcome::Failure,
                user: Some(session.user),
                sam_account_name: Some(&session.sam_account_name),
                method: Some(method),
                reason: Some("wrong_code"),
            },
        )
        .await?;
        let remaining = d.settings.flow_max_failures - failures;
        if remaining <= 0 {
            // Too many wrong codes: the session ends; the user signs in again.
            d.sessions.delete_session(&session.token_hash).await?;
        }
        Ok(FlowError::InvalidCode {
            remaining_attempts: remaining.max(0),
        })
    }

    async fn email_quota(&self, session: &Session, client: &Client) -> Result<(), FlowError> {
        let d = self.deps;
        let now = d.now_ms();
        let sent = d
            .throttle
            .hit(
                &ThrottleKey::CodeMails(Person::User(session.user)).to_string(),
                now,
                now - ms(d.settings.email_window),
            )
            .await?;
        if sent > d.settings.email_max_sends {
            d.audit_throttled(
                client,
                Some((session.user, &session.sam_account_name)),
                Limit::EmailSends,
                None,
            )
            .await?;
            return Err(FlowError::Throttled {
                retry_after: d.settings.email_window,
            });
        }
        Ok(())
    }

    async fn method_added(
        &self,
        session: &Session,
        method: MethodKind,
        replaced: Option<String>,
        client: &Client,
    ) -> Result<(), FlowError> {
        let notice = MailKind::MethodAdded { method };
        self.method_changed(
            session,
            method,
            AuditKind::EnrollmentAdded,
            replaced,
            notice,
            client,
        )
        .await
    }

    /// Audits a registration change and tells the owner, as it commits: at the confirmed address
    /// (read now, so a new address hears of itself), at AD `mail`, and at `also` (an address just
    /// replaced or removed), so whoever took over the account cannot do it quietly.
    async fn method_changed(
        &self,
        session: &Session,
        method: MethodKind,
        event: AuditKind,
        also: Option<String>,
        notice: MailKind,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        d.audit(
            client,
            Audit {
                event,
                outcome: Outcome::Success,
                user: Some(session.user),
                sam_account_name: Some(&session.sam_account_name),
                method: Some(method),
                reason: None,
            },
        )
        .await?;
        let owner = match d.directory.find_user(&session.sam_account_name).await {
            Ok(user) => user.filter(|u| u.guid == session.user),
            Err(e) => {
                tracing::warn!(error = %e, "the owner's AD mail cannot be read; told elsewhere");
                None
            }
        };
        match owner {
            Some(owner) => {
                d.notify_owner(client, &owner, also.as_deref(), &client.locale, notice)
                    .await;
            }
            None => {
                let confirmed = d.confirmed_email(&session.user).await?;
                let also = also.filter(|a| {
                    confirmed
                        .as_deref()
                        .is_none_or(|c| !c.eq_ignore_ascii_case(a))
                });
                for to in [confirmed, also].into_iter().flatten() {
                    let who = (session.user, session.sam_account_name.as_str());
                    d.notify(client, who, Some(&to), None, &client.locale, notice.clone())
                        .await;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [StepUpMethod; 3] = [
        StepUpMethod::Totp,
        StepUpMethod::Email,
        StepUpMethod::RegistrationCode,
    ];

    #[test]
    fn the_first_method_needs_only_the_password_from_a_trusted_network() {
        let (methods, required) = step_up_rule(&[], false, true);
        assert!(!required);
        assert_eq!(methods, [StepUpMethod::RegistrationCode]);
    }

    #[test]
    fn from_elsewhere_the_first_method_takes_a_registration_code() {
        let (methods, required) = step_up_rule(&[], false, false);
        assert!(required);
        assert_eq!(methods, [StepUpMethod::RegistrationCode], "nothing else");
    }

    #[test]
    fn once_a_method_exists_every_new_session_steps_up_wherever_it_is() {
        for trusted in [true, false] {
            let (methods, required) = step_up_rule(&[MethodKind::Email], false, trusted);
            assert!(required);
            assert_eq!(
                methods,
                [StepUpMethod::Email, StepUpMethod::RegistrationCode]
            );
            let both = [MethodKind::Email, MethodKind::Totp];
            assert_eq!(step_up_rule(&both, false, trusted).0, ALL, "stable order");
        }
    }

    #[test]
    fn a_session_that_proved_a_method_goes_on() {
        for confirmed in [&[][..], &[MethodKind::Totp][..]] {
            for trusted in [true, false] {
                assert!(!step_up_rule(confirmed, true, trusted).1);
            }
        }
    }

    #[test]
    fn step_up_methods_have_the_api_names() {
        for method in ALL {
            assert_eq!(StepUpMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(StepUpMethod::parse("sms"), None);
    }

    #[test]
    fn each_session_has_its_own_step_up() {
        assert_ne!(step_up_id(&[1; 32]), step_up_id(&[2; 32]));
        assert_eq!(step_up_id(&[1; 32]), step_up_id(&[1; 32]));
    }
}
