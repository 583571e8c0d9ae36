//! The last step of a reset or unlock: the rules a new password is judged by, the write to the
//! directory (claimed once, audited, reopened when the directory did not take it), and whom it
//! is told to.

use secrecy::{ExposeSecret, SecretString};

use super::{Owner, Reset};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::{Client, to_the_end};
use crate::domain::directory::{AccountChange, DcId, DirectoryError, DirectoryUser};
use crate::domain::error::FlowError;
use crate::domain::hooks::{Actor, HookAccount, HookAction};
use crate::domain::notify::MailKind;
use crate::domain::policy::{
    MAX_PASSWORD_CHARS, PasswordPolicy, PasswordRules, Requirement, Violation, after_write,
};
use crate::domain::throttle::PerAddress;
use crate::domain::verification::Subject;

impl Reset<'_> {
    /// The policy and the names a new password is judged by in this flow, and the verified user.
    /// The user's own only once verified: before that, and always in a decoy, the domain's policy
    /// and the login as typed, so the answer tells nobody whether the account exists or has its
    /// own policy.
    async fn password_context(
        &self,
        live: &Subject,
    ) -> Result<(PasswordPolicy, Owner, Option<DirectoryUser>), FlowError> {
        let d = self.deps;
        if self.is_verified(live) {
            let (user, _) = self.verified_user(live).await?;
            let policy = d.directory.password_policy(&user).await?;
            return Ok((policy, Owner::of(&user), Some(user)));
        }
        let login = &live.flow.login;
        let owner = Owner {
            sam_account_name: login.split('@').next().unwrap_or(login).to_owned(),
            display_name: None,
            mail: None,
        };
        Ok((d.directory.domain_password_policy().await?, owner, None))
    }

    /// The rules a new password must meet in this flow (see `password_context` for whose).
    pub async fn password_policy(&self, flow: &str) -> Result<PasswordPolicy, FlowError> {
        let live = self.live(flow).await?;
        Ok(self.password_context(&live).await?.0)
    }

    /// The rules a new password must meet in this flow, to show before one is typed.
    pub async fn requirements(&self, flow: &str) -> Result<Vec<Requirement>, FlowError> {
        let policy = self.password_policy(flow).await?;
        Ok(self.deps.settings.password_rules.requirements(&policy))
    }

    /// The rules `password` breaks in this flow, without writing anything.
    pub async fn check_password(
        &self,
        flow: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<Vec<Violation>, FlowError> {
        let d = self.deps;
        // Each check may cost a directory lookup and zxcvbn's CPU: limited like verifications.
        d.throttle
            .ip_limit(
                client,
                PerAddress::Verifications,
                d.settings.throttle.ip_max_verifications,
            )
            .await?;
        reject_overlong(password)?;
        let live = self.live(flow).await?;
        let (policy, owner, user) = self.password_context(&live).await?;
        let mut broken = self.broken_rules(password, owner, policy.clone()).await;
        // Only a verified flow has an account whose history could be asked (never a decoy).
        if let Some(user) = user {
            let checked = d.history.check_against(&user, &policy, password).await?;
            broken.extend(checked.reused);
        }
        Ok(broken)
    }

    async fn broken_rules(
        &self,
        password: &SecretString,
        owner: Owner,
        policy: PasswordPolicy,
    ) -> Vec<Violation> {
        broken_rules(&self.deps.settings.password_rules, password, owner, policy).await
    }

    async fn audit_refusal(
        &self,
        user: &DirectoryUser,
        reason: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        self.deps
            .audit
            .record(
                client,
                Audit {
                    event: AuditKind::PasswordReset,
                    outcome: Outcome::Failure,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(reason),
                },
            )
            .await?;
        Ok(())
    }

    /// Sets the verified flow's new password. Runs to its end even when the request that asked
    /// for it goes away: once the directory took the password, its records follow.
    pub async fn set_password(
        &self,
        flow: &str,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        // Bounds first, before any lookup or zxcvbn (which is superlinear in the length).
        reject_overlong(new_password)?;
        let (deps, flow) = (self.deps.clone(), flow.to_owned());
        let (new_password, client) = (new_password.clone(), client.clone());
        to_the_end(async move {
            Reset::new(&deps)
                .password_step(&flow, &new_password, &client)
                .await
        })
        .await
    }

    async fn password_step(
        &self,
        flow: &str,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let live = self.live(flow).await?;
        let result = self.write_password(&live, new_password, client).await;
        self.audit_directory_failure(&live, AuditKind::PasswordReset, &result, client)
            .await;
        result
    }

    async fn write_password(
        &self,
        live: &Subject,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let (user, protected) = self.verified_user(live).await?;
        let policy = d.directory.password_policy(&user).await?;
        // The flow stays open after a refusal: the user may try another password.
        let (mut broken, checked) = tokio::join!(
            self.broken_rules(new_password, Owner::of(&user), policy.clone()),
            d.history.check_against(&user, &policy, new_password),
        );
        let mut checked = checked?;
        broken.extend(checked.reused.take());
        if !broken.is_empty() {
            let refused = FlowError::PasswordRejected(broken);
            self.audit_refusal(&user, &refused.to_string(), client)
                .await?;
            return Err(refused);
        }
        let change = AccountChange {
            new_password: Some(new_password),
            unlock: d.settings.reset.unlock_on_reset,
            must_change: false,
        };
        match self.claim_and_write(live, &user, &change).await {
            Ok(dc) => {
                // What only a reset keeps, in the same step as its notices and audit row.
                let kept = async {
                    if let Err(e) = d.flows.set_flow_dc(&live.id_hash, &dc.0).await {
                        tracing::warn!(error = %e, "the DC that took the reset is not recorded");
                    }
                    if let Err(e) = d.history.remember_checked(checked).await {
                        tracing::warn!(error = %e, "the new password is not in the local history");
                    }
                    crate::domain::enrollment::end_sessions(d, &user).await;
                    if protected {
                        self.tell_admins(live, &user, client).await;
                    }
                };
                let (event, notice) = (AuditKind::PasswordReset, MailKind::PasswordReset);
                self.record_change(live, &user, event, notice, client, kept)
                    .await;
                d.hooks.after(
                    HookAction::Reset,
                    HookAccount::of(&user),
                    Actor::Owner,
                    d.now(),
                    Some(&live.id_hash),
                    Some(new_password),
                );
                Ok(())
            }
            // Every rule that can be checked in advance passed: what AD still refuses for is
            // history or minimum age.
            Err(FlowError::Directory(e @ DirectoryError::PolicyViolation { .. })) => {
                self.audit_refusal(&user, &e.to_string(), client).await?;
                Err(FlowError::PasswordRejected(vec![after_write(&policy)]))
            }
            Err(e) => Err(e),
        }
    }

    /// Unlocks the verified flow's account; runs to its end as [`Self::set_password`] does.
    pub async fn unlock(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let (deps, flow, client) = (self.deps.clone(), flow.to_owned(), client.clone());
        to_the_end(async move { Reset::new(&deps).unlock_step(&flow, &client).await }).await
    }

    async fn unlock_step(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let live = self.live(flow).await?;
        let result = self.write_unlock(&live, client).await;
        self.audit_directory_failure(&live, AuditKind::Unlock, &result, client)
            .await;
        result
    }

    async fn write_unlock(&self, live: &Subject, client: &Client) -> Result<(), FlowError> {
        let (user, _) = self.verified_user(live).await?;
        let change = AccountChange {
            unlock: true,
            ..AccountChange::default()
        };
        self.claim_and_write(live, &user, &change).await?;
        let d = self.deps;
        let (event, notice) = (AuditKind::Unlock, MailKind::AccountUnlocked);
        self.record_change(live, &user, event, notice, client, async {})
            .await;
        d.hooks.after(
            HookAction::Unlock,
            HookAccount::of(&user),
            Actor::Owner,
            d.now(),
            Some(&live.id_hash),
            None,
        );
        Ok(())
    }

    /// Writes `change` with the flow claimed first. The claim (the flow marked finished, which
    /// only one request can do) keeps the flow single use however many requests race for it, and
    /// proves the database takes writes before AD is touched: a database that is down or
    /// read-only stops the step before it acts, not after, when the change could no longer be
    /// recorded. A write that failed gives the flow back for another attempt.
    async fn claim_and_write(
        &self,
        live: &Subject,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, FlowError> {
        let d = self.deps;
        let claimed_at = d.now();
        if !d.flows.finish_flow(&live.id_hash, claimed_at).await? {
            // Another request of this flow got there first.
            return Err(FlowError::FlowNotFound);
        }
        match d.directory.write_account(user, change).await {
            Ok(dc) => Ok(dc),
            Err(e) => {
                if let Err(reopen) = d.flows.reopen_flow(&live.id_hash, claimed_at).await {
                    tracing::warn!(
                        error = %reopen,
                        "the flow stays finished after a failed write; the user must start again"
                    );
                }
                Err(e.into())
            }
        }
    }

    /// Puts on record a step of a verified flow that the directory failed, before or during the
    /// write, so every attempt has its audit row. An unconfirmed write is `unknown`: AD may have
    /// taken it. The user still gets the directory's error if the row cannot be written (it is
    /// logged then, see `Auditor::as_actor`).
    async fn audit_directory_failure(
        &self,
        live: &Subject,
        event: AuditKind,
        result: &Result<(), FlowError>,
        client: &Client,
    ) {
        let Err(FlowError::Directory(e)) = result else {
            return;
        };
        let outcome = match e {
            DirectoryError::WriteUnconfirmed { .. } => Outcome::Unknown,
            _ => Outcome::Failure,
        };
        let reason = e.to_string();
        let failed = Audit {
            event,
            outcome,
            user: live.flow.user,
            sam_account_name: live.flow.sam_account_name.as_deref(),
            method: None,
            reason: Some(&reason),
        };
        self.deps.audit.done(client, None, failed).await;
    }

    /// Records a change AD has made, as one step: `kept` (what only this kind of change
    /// records), the owner's notices, then the audit row. The change stands whatever happens
    /// here, so a database failure is logged rather than reported: the user hears that it worked.
    /// The audit row comes last, so a statement of the step that failed before it (which ends a
    /// PostgreSQL transaction) fails it too, and the auditor logs it; a row written but not
    /// committed is logged here.
    async fn record_change(
        &self,
        live: &Subject,
        user: &DirectoryUser,
        event: AuditKind,
        notification: MailKind,
        client: &Client,
        kept: impl Future<Output = ()> + Send,
    ) {
        let d = self.deps;
        let done = Audit {
            event,
            outcome: Outcome::Success,
            user: Some(user.guid),
            sam_account_name: Some(&user.sam_account_name),
            method: None,
            reason: None,
        };
        let mut audited = false;
        let step = async {
            kept.await;
            d.notifier
                .notify_owner(client, user, None, live.flow.locale, notification)
                .await;
            audited = d.audit.as_actor(client, None, done).await.is_ok();
            Ok(())
        };
        if let (Err(e), true) = (d.in_one_step(step).await, audited) {
            tracing::error!(
                audit.event = event.as_str(),
                audit.outcome = Outcome::Success.as_str(),
                audit.object_guid = %user.guid,
                audit.sam_account_name = user.sam_account_name,
                error = %e,
                "audit row not written: the records of a change the directory made were not \
                 committed; the event is recorded in this log line instead"
            );
        }
    }

    /// A protected account reset its own password (it is allow-listed, or it would not have got
    /// here): the administrators hear of each one, in the language of the flow.
    async fn tell_admins(&self, live: &Subject, user: &DirectoryUser, client: &Client) {
        let d = self.deps;
        for address in &d.settings.admin_addresses {
            let kind = MailKind::ProtectedAccountReset {
                account: user.sam_account_name.clone(),
            };
            d.notifier
                .notify(
                    client,
                    (user.guid, &user.sam_account_name),
                    Some(address),
                    None,
                    live.flow.locale,
                    kind,
                )
                .await;
        }
    }
}

/// The rules of `rules` and `policy` that `password` breaks, checked on a blocking thread:
/// zxcvbn takes milliseconds of CPU.
pub(in crate::domain) async fn broken_rules(
    rules: &PasswordRules,
    password: &SecretString,
    owner: Owner,
    policy: PasswordPolicy,
) -> Vec<Violation> {
    let rules = rules.clone();
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        rules.check(password.expose_secret(), owner.names(), &policy)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Refuses a password longer than AD accepts, before any other work.
pub(in crate::domain) fn reject_overlong(password: &SecretString) -> Result<(), FlowError> {
    if password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
        return Err(FlowError::PasswordRejected(vec![Violation::TooLong {
            max: MAX_PASSWORD_CHARS,
        }]));
    }
    Ok(())
}
