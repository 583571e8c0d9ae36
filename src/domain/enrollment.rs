//! Registration: a user signs in with their current AD password, then adds or removes an
//! authenticator app (TOTP) or an email address. A method is active only once the user has
//! typed a code that proves they hold it.

use secrecy::SecretString;

use super::directory::DirectoryUser;
use super::notify::MailKind;
use super::secrets::{self, normalise_code, token_hash};
use super::selfservice::{Audit, Client, Deps, FlowError, mask_email, ms};
use super::signin::{self, Attempt, SignInPurpose};
use super::store::{CodePurpose, EnrolledMethod, MethodKind, PendingCode, Session, SessionKind};
use super::totp;

/// What the user has registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub totp: bool,
    /// The confirmed address, masked.
    pub email: Option<String>,
    /// A confirmed method is older than `registration.reconfirm_days`: it does not count for a
    /// reset until confirmed again.
    pub reconfirm_due: bool,
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
        d.ip_limit(client, "start", d.settings.ip_max_starts)
            .await?;
        let login = login.trim();
        if login.is_empty() || login.chars().count() > 256 {
            return Err(FlowError::InvalidCredentials);
        }
        let signed_in =
            match signin::sign_in(d, SignInPurpose::SelfService, login, password, client).await? {
                Attempt::Right(signed_in) => signed_in,
                Attempt::Failed { user, failure } => {
                    d.audit(
                        client,
                        Audit {
                            event: "sign_in",
                            outcome: "failure",
                            user: user.as_ref().map(|u| u.guid),
                            sam_account_name: Some(
                                user.as_ref().map_or(login, |u| u.sam_account_name.as_str()),
                            ),
                            method: None,
                            reason: Some(&failure.reason()),
                        },
                    )
                    .await?;
                    return Err(FlowError::InvalidCredentials);
                }
            };
        let signed_in = &signed_in.user;
        // Judged only now: whether self-service is for an account is told only to someone who
        // proved its password.
        let standing = d
            .settings
            .eligibility
            .standing(d.directory.as_ref(), signed_in)
            .await?;
        if let Some(why) = standing.excluded {
            d.audit(
                client,
                Audit {
                    event: "sign_in",
                    outcome: "denied",
                    user: Some(signed_in.guid),
                    sam_account_name: Some(&signed_in.sam_account_name),
                    method: None,
                    reason: Some(why.reason()),
                },
            )
            .await?;
            return Err(FlowError::NotInScope(why));
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
                event: "sign_in",
                outcome: "success",
                user: Some(signed_in.guid),
                sam_account_name: Some(&signed_in.sam_account_name),
                method: None,
                reason: None,
            },
        )
        .await?;
        Ok(token)
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

    pub async fn status(&self, token: &str) -> Result<Status, FlowError> {
        let session = self.session(token).await?;
        let methods = self.deps.registrations.methods(&session.user).await?;
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
        })
    }

    /// A new TOTP secret for the user to scan; it replaces any earlier one only once confirmed.
    pub async fn begin_totp(&self, token: &str) -> Result<totp::Provisioning, FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
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
        let session = self.session(token).await?;
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
        self.method_added(&session, MethodKind::Totp, client).await
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
        d.audit(
            client,
            Audit {
                event: "enrollment_reconfirmed",
                outcome: "success",
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
        let session = self.session(token).await?;
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
        let session = self.session(token).await?;
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
        self.method_added(&session, MethodKind::Email, client).await
    }

    pub async fn remove(
        &self,
        token: &str,
        kind: MethodKind,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        // Told before removal, so a removed address still hears that it was removed.
        let address = d.confirmed_email(&session.user).await?;
        if d.registrations.remove_method(&session.user, kind).await? {
            let notice = MailKind::MethodRemoved { method: kind };
            self.method_changed(
                &session,
                kind,
                "enrollment_removed",
                address,
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
                event: "enrollment_confirm",
                outcome: "failure",
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
                &format!("user:{}:mail", session.user),
                now,
                now - ms(d.settings.email_window),
            )
            .await?;
        if sent > d.settings.email_max_sends {
            d.audit_throttled(
                client,
                Some((session.user, &session.sam_account_name)),
                "email_sends",
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
        client: &Client,
    ) -> Result<(), FlowError> {
        let address = self.deps.confirmed_email(&session.user).await?;
        let notice = MailKind::MethodAdded { method };
        self.method_changed(session, method, "enrollment_added", address, notice, client)
            .await
    }

    /// Audits a registration change and tells the user at `address`.
    async fn method_changed(
        &self,
        session: &Session,
        method: MethodKind,
        event: &str,
        address: Option<String>,
        notice: MailKind,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        d.audit(
            client,
            Audit {
                event,
                outcome: "success",
                user: Some(session.user),
                sam_account_name: Some(&session.sam_account_name),
                method: Some(method),
                reason: None,
            },
        )
        .await?;
        d.notify(
            client,
            (session.user, &session.sam_account_name),
            address.as_deref(),
            None,
            &client.locale,
            notice,
        )
        .await;
        Ok(())
    }
}
