//! Signing in to registration and the session that follows: who may register, and whether
//! the session must step up before it changes anything.

use secrecy::SecretString;

use super::{Enrollment, Status, StepUpMethod, step_up_rule};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::Client;
use crate::domain::directory::{DirectoryUser, PasswordCheck};
use crate::domain::error::FlowError;
use crate::domain::licence::LicenceRequired;
use crate::domain::notifier::mask_email;
use crate::domain::secrets::token_hash;
use crate::domain::signin::{self, Attempt, SignInPurpose};
use crate::domain::store::{EnrolledMethod, MethodKind, Session, SessionKind};
use crate::domain::throttle::PerAddress;

/// What a signed-in user may register.
enum Right {
    Full,
    /// A helpdesk operator whom self-service is not for (the licence is off, or they are out of
    /// scope): their own authenticator app, the second factor of their helpdesk sign-in.
    AuthenticatorOnly,
    /// Why they may not register at all.
    Refused(FlowError),
}

impl Enrollment<'_> {
    /// Binds as the user on a fresh connection. Returns a session token on success.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<String, FlowError> {
        let d = self.deps;
        d.throttle
            .ip_limit(
                client,
                PerAddress::Starts,
                d.settings.throttle.ip_max_starts,
            )
            .await?;
        let login = signin::typed_login(login)?;
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
                        Some(_) => d.audit.record(client, failed).await?,
                        None => {
                            d.audit
                                .typed_login(client, None, login_hash, failed)
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
            d.audit
                .record(
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
                d.settings.registration.session_lifetime,
            )
            .await?;
        d.audit
            .record(
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
            .audit
            .record(
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
    pub(super) async fn email_allowed(&self, session: &Session) -> Result<(), FlowError> {
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

    pub(super) async fn session(&self, token: &str) -> Result<Session, FlowError> {
        let d = self.deps;
        let hash = token_hash(token);
        match d.sessions.session(&hash, d.now()).await? {
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
        let passkeys = self.passkey_summaries(&session).await?;
        let (step_up_methods, step_up_required) =
            self.step_up_state(&session, &methods, !passkeys.is_empty(), client);
        let confirmed = |kind| {
            methods
                .iter()
                .find(|m| m.kind == kind && m.confirmed_at.is_some())
        };
        let (now, max_age) = (
            self.deps.now(),
            self.deps.settings.registration.reconfirm_after(),
        );
        Ok(Status {
            totp: confirmed(MethodKind::Totp).is_some(),
            email: confirmed(MethodKind::Email)
                .and_then(|m| m.address.as_deref())
                .map(mask_email),
            reconfirm_due: methods
                .iter()
                .any(|m| m.confirmed_at.is_some() && !m.is_current(now, max_age)),
            step_up_required,
            step_up_methods,
            passkeys,
        })
    }

    fn step_up_state(
        &self,
        session: &Session,
        methods: &[EnrolledMethod],
        has_passkey: bool,
        client: &Client,
    ) -> (Vec<StepUpMethod>, bool) {
        let confirmed: Vec<MethodKind> = methods
            .iter()
            .filter(|m| m.confirmed_at.is_some())
            .map(|m| m.kind)
            .chain(has_passkey.then_some(MethodKind::Passkey))
            .collect();
        let networks = &self.deps.settings.registration.allowed_networks;
        let trusted = networks.is_empty()
            || client
                .ip
                .is_some_and(|ip| networks.iter().any(|n| n.contains(ip)));
        step_up_rule(&confirmed, session.stepped_up_at.is_some(), trusted)
    }

    /// The session, if it may change the user's methods now; otherwise `StepUpRequired`.
    pub(super) async fn changing_session(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<Session, FlowError> {
        let session = self.session(token).await?;
        let methods = self.deps.registrations.methods(&session.user).await?;
        let has_passkey = !self.deps.passkeys.passkeys(&session.user).await?.is_empty();
        if self
            .step_up_state(&session, &methods, has_passkey, client)
            .1
        {
            return Err(FlowError::StepUpRequired);
        }
        Ok(session)
    }

    /// This session proved a method (a step-up, or one it confirmed itself).
    pub(super) async fn stepped_up(&self, session: &Session) -> Result<(), FlowError> {
        let d = self.deps;
        d.sessions
            .set_stepped_up(&session.token_hash, d.now())
            .await?;
        Ok(())
    }
}
