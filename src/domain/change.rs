//! Changing a password with the current one (`/change`): for people who never see Ctrl+Alt+Del
//! (VPN, Wi-Fi and Mac users) and for passwords that expired (AD 532) or must be changed (773,
//! e.g. a temporary one from the helpdesk), who can sign in nowhere else.
//!
//! The current password is checked by the lockout-safe sign-in every other flow uses (so the
//! answer and its time are the same for unknown, disabled and wrong), then written as AD's own
//! change, which AD judges against the current password, the history and the minimum age. No
//! registered method is needed, and no licence: a change is not a self-service *reset*, it is
//! what Windows offers everyone who knows their password.

use secrecy::SecretString;

use super::audit::{Audit, AuditKind, Outcome};
use super::deps::{Client, Deps, to_the_end};
use super::directory::{BadPasswords, DirectoryError, DirectoryUser};
use super::error::FlowError;
use super::hooks::{Actor, HookAccount, HookAction};
use super::notify::MailKind;
use super::policy::{PasswordPolicy, Requirement, after_write};
use super::reset::{Owner, broken_rules, reject_overlong};
use super::signin::{self, Attempt, SignInPurpose, may_bind};
use super::throttle::PerAddress;

pub struct PasswordChange<'a> {
    deps: &'a Deps,
}

impl<'a> PasswordChange<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }

    /// The rules to show before anything is typed: the domain's, since nobody is known yet.
    pub async fn requirements(&self) -> Result<Vec<Requirement>, FlowError> {
        let d = self.deps;
        let policy = d.directory.domain_password_policy().await?;
        Ok(d.settings.password_rules.requirements(&policy))
    }

    /// Changes the password of `login` from `current` to `new`. Runs to its end even when the
    /// request that asked for it goes away: once the directory took the password, its records
    /// follow.
    pub async fn change(
        &self,
        login: &str,
        current: &SecretString,
        new: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let (deps, login, client) = (self.deps.clone(), login.to_owned(), client.clone());
        let (current, new) = (current.clone(), new.clone());
        to_the_end(async move {
            PasswordChange::new(&deps)
                .change_step(&login, &current, &new, &client)
                .await
        })
        .await
    }

    async fn change_step(
        &self,
        login: &str,
        current: &SecretString,
        new: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        d.throttle
            .ip_limit(
                client,
                PerAddress::Starts,
                d.settings.throttle.ip_max_starts,
            )
            .await?;
        let login = signin::typed_login(login)?;
        // Judged the same for every login, before the directory is asked.
        reject_overlong(new)?;
        let user =
            match signin::sign_in(d, SignInPurpose::SelfService, login, current, client).await? {
                // 773 and 532 are right passwords too: they are whom this is for.
                Attempt::Right(signed_in) => signed_in.user,
                Attempt::Failed { user, failure } => {
                    self.audit_failed_sign_in(login, user.as_ref(), &failure.reason(), client)
                        .await?;
                    return Err(FlowError::InvalidCredentials);
                }
            };
        if d.settings.eligibility.is_never_reset(&user) {
            self.audit(&user, Outcome::Denied, Some("never_reset"), client)
                .await?;
            return Err(FlowError::Forbidden(
                "The password of this account cannot be changed here.".to_owned(),
            ));
        }
        let policy = d.directory.password_policy(&user).await?;
        let broken = broken_rules(
            &d.settings.password_rules,
            new,
            Owner::of(&user),
            policy.clone(),
        )
        .await;
        if !broken.is_empty() {
            let refused = FlowError::PasswordRejected(broken);
            self.audit(&user, Outcome::Failure, Some(&refused.to_string()), client)
                .await?;
            return Err(refused);
        }
        self.write(&user, current, new, &policy, client).await
    }

    async fn write(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        policy: &PasswordPolicy,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let now = d.now();
        // The current password was right a moment ago; the guard still stands, for a count that
        // rose meanwhile (a wrong current password in the modify counts as a wrong password).
        let guard = move |bad: BadPasswords, policy: &PasswordPolicy| may_bind(bad, policy, now);
        match d
            .directory
            .change_password(user, current, new, &guard)
            .await
        {
            Ok(Some(_dc)) => {
                let done = Audit {
                    event: AuditKind::PasswordChanged,
                    outcome: Outcome::Success,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: None,
                };
                // AD has changed it: a failure to record or tell is logged, not reported.
                // Remembered, so a later reset cannot go back to it where AD keeps no history
                // for resets.
                let remember = async {
                    if let Err(e) = d.history.remember(user, new).await {
                        tracing::warn!(error = %e, "the changed password is not in the local history");
                    }
                };
                tokio::join!(
                    d.audit.done(client, None, done),
                    super::enrollment::end_sessions(d, user),
                    remember,
                    d.notifier.notify_owner(
                        client,
                        user,
                        None,
                        client.locale,
                        MailKind::PasswordChanged,
                    ),
                );
                d.hooks.after(
                    HookAction::Change,
                    HookAccount::of(user),
                    Actor::Owner,
                    d.now(),
                    None,
                    Some(new),
                );
                Ok(())
            }
            // Changed since the sign-in, or now one failure from a lockout: as a wrong password.
            Ok(None) => {
                self.audit(user, Outcome::Failure, Some("near_lockout"), client)
                    .await?;
                Err(FlowError::InvalidCredentials)
            }
            Err(DirectoryError::WrongOldPassword) => {
                self.audit(user, Outcome::Failure, Some("wrong_old_password"), client)
                    .await?;
                Err(FlowError::InvalidCredentials)
            }
            // Every rule that can be checked in advance passed: what AD still refuses for is
            // history or minimum age.
            Err(e @ DirectoryError::PolicyViolation { .. }) => {
                self.audit(user, Outcome::Failure, Some(&e.to_string()), client)
                    .await?;
                Err(FlowError::PasswordRejected(vec![after_write(policy)]))
            }
            Err(e) => {
                let outcome = match e {
                    DirectoryError::WriteUnconfirmed { .. } => Outcome::Unknown,
                    _ => Outcome::Failure,
                };
                let reason = e.to_string();
                let failed = Audit {
                    event: AuditKind::PasswordChanged,
                    outcome,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(&reason),
                };
                d.audit.done(client, None, failed).await;
                Err(e.into())
            }
        }
    }

    async fn audit(
        &self,
        user: &DirectoryUser,
        outcome: Outcome,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<(), FlowError> {
        let row = Audit {
            event: AuditKind::PasswordChanged,
            outcome,
            user: Some(user.guid),
            sam_account_name: Some(&user.sam_account_name),
            method: None,
            reason,
        };
        self.deps.audit.record(client, row).await?;
        Ok(())
    }

    /// A sign-in that failed, audited like registration's: an unknown login only as its keyed
    /// hash, computed for every login so one without an account takes no longer.
    async fn audit_failed_sign_in(
        &self,
        login: &str,
        user: Option<&DirectoryUser>,
        reason: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let login_hash = d.keys.login_hash(login);
        let failed = Audit {
            event: AuditKind::PasswordChanged,
            outcome: Outcome::Failure,
            user: user.map(|u| u.guid),
            sam_account_name: user.map(|u| u.sam_account_name.as_str()),
            method: None,
            reason: Some(reason),
        };
        match user {
            Some(_) => d.audit.record(client, failed).await?,
            None => {
                d.audit
                    .typed_login(client, None, login_hash, failed)
                    .await?
            }
        }
        Ok(())
    }
}
