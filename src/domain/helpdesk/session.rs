//! Operator sign-in (password and second factor), sessions, their limits and the membership
//! re-check, and sign-out.

use secrecy::SecretString;

use super::{FORBIDDEN, Helpdesk, Operator, membership_key};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::directory::{DirectoryUser, PasswordCheck};
use crate::domain::error::FlowError;
use crate::domain::locale::Locale;
use crate::domain::secrets::token_hash;
use crate::domain::signin::{self, Attempt, Failure, SignInPurpose, SignedIn};
use crate::domain::store::{MethodKind, Session, SessionKind, ThrottleKey};
use crate::domain::throttle::{Limit, Quota};
use crate::domain::verification::spend_app_code;

impl Helpdesk<'_> {
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
        let now = d.now();
        d.throttle
            .hit(&membership_key(&token_hash(&token)), now, now)
            .await?;
        self.audit_sign_in(client, Some(&user), login, Outcome::Success, "")
            .await?;
        Ok(token)
    }

    /// The operator's own authenticator code, when `helpdesk.operator_second_factor` asks for
    /// it. Only after the password and the group proved who is signing in, so the answer for a
    /// missing authenticator tells nothing to someone who does not know the password. A wrong or
    /// replayed code is refused like a wrong password.
    pub(super) async fn second_factor(
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
        let apps: Vec<_> = d
            .registrations
            .methods(&user.guid)
            .await?
            .into_iter()
            .filter(|m| m.kind == MethodKind::Totp && m.confirmed_at.is_some())
            .collect();
        if apps.is_empty() {
            self.audit_sign_in(
                client,
                Some(user),
                login,
                Outcome::Denied,
                "no_second_factor",
            )
            .await?;
            return Err(FlowError::SecondFactorRequired);
        }
        // Any of the operator's apps; its step is spent atomically, so a code read over a
        // shoulder is worth nothing after.
        let accepted = match code {
            Some(code) => spend_app_code(d, Some(&user.guid), &apps, code, true)
                .await?
                .is_some(),
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

    pub(super) async fn audit_sign_in(
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
                    .audit
                    .as_actor(client, Some(&u.sam_account_name), a)
                    .await?;
            }
            None => {
                self.deps
                    .audit
                    .typed_login(client, None, login_hash, a)
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
        let now = d.now();
        let session = match d.sessions.session(&hash, now).await? {
            Some(s) if s.kind == SessionKind::Helpdesk => s,
            _ => return Err(FlowError::Unauthorized),
        };
        if now.since(session.last_seen_at) > d.settings.helpdesk.session_idle {
            d.sessions.delete_session(&hash).await?;
            return Err(FlowError::Unauthorized);
        }
        self.recheck_membership(&session, now).await?;
        self.action_limit(&session).await?;
        d.sessions.touch_session(&hash, now).await?;
        Ok(Operator { session })
    }

    /// Counts a sign-in attempt, right or wrong, against the typed login, whether or not it names
    /// an account (so the limit says nothing about which do). Operators share no limit with the
    /// users they help; their failures are capped apart by `signin::sign_in`.
    pub(super) async fn sign_in_limit(
        &self,
        login: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let typed = signin::normalise_login(login, &d.settings.signin.domains);
        let key = ThrottleKey::OperatorSignIns(d.keys.login_hash(&typed));
        let quota = Quota {
            key,
            max: h.operator_max_sign_ins,
            window: h.operator_window,
            limit: Limit::OperatorSignIns,
        };
        d.throttle.take(client, quota, None).await
    }

    /// Counts one request of the operator's account (all their sessions together).
    pub(super) async fn action_limit(&self, session: &Session) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let key = ThrottleKey::OperatorActions(session.user);
        let quota = Quota {
            key,
            max: h.operator_max_actions,
            window: h.operator_window,
            limit: Limit::OperatorActions,
        };
        let operator = (session.user, session.sam_account_name.as_str());
        let client = Client {
            ip: None,
            locale: Locale::En,
        };
        d.throttle.take(&client, quota, Some(operator)).await
    }

    /// Ends the session of an operator who left the helpdesk group (or whose account was
    /// disabled or is gone) since it was last checked. The last check is a throttle event under
    /// the session, so every instance sees it.
    pub(super) async fn recheck_membership(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let key = membership_key(&session.token_hash);
        if d.throttle.count(&key, now - h.membership_recheck).await? > 0 {
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
                locale: Locale::En,
            };
            d.audit
                .as_actor(
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
        d.throttle.hit(&key, now, now).await?;
        Ok(())
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), FlowError> {
        self.deps
            .sessions
            .delete_session(&token_hash(token))
            .await?;
        Ok(())
    }
}
