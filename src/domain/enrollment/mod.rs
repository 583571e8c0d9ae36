//! Registration: a user signs in with their current AD password, then adds or removes an
//! authenticator app (TOTP) or an email address. A method is active only once the user has
//! typed a code that proves they hold it.

mod email;
mod passkey;
mod session;
mod step_up;
mod totp;

use super::audit::{Audit, AuditKind, Outcome};
use super::deps::{Client, Deps};
use super::directory::DirectoryUser;
use super::error::FlowError;
use super::hooks::{Actor, HookAccount, HookAction};
use super::notify::MailKind;
use super::store::{MethodKind, Session, SessionKind};

pub use passkey::PasskeySummary;
pub use step_up::{StepUpMethod, step_up_rule};

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
    /// The user's passkeys, oldest first.
    pub passkeys: Vec<PasskeySummary>,
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

pub struct Enrollment<'a> {
    deps: &'a Deps,
}

impl<'a> Enrollment<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
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
        d.audit
            .record(
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
        let remaining = d.settings.throttle.flow_max_failures - failures;
        if remaining <= 0 {
            // Too many wrong codes: the session ends; the user signs in again.
            d.sessions.delete_session(&session.token_hash).await?;
        }
        Ok(FlowError::InvalidCode {
            remaining_attempts: remaining.max(0),
        })
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
        d.audit
            .record(
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
        let account = match &owner {
            Some(owner) => HookAccount::of(owner),
            None => HookAccount::known(session.user, &session.sam_account_name),
        };
        d.hooks.after(
            HookAction::RegistrationChange,
            account,
            Actor::Owner,
            d.now(),
            None,
            None,
        );
        match owner {
            Some(owner) => {
                d.notifier
                    .notify_owner(client, &owner, also.as_deref(), client.locale, notice)
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
                    d.notifier
                        .notify(client, who, Some(&to), None, client.locale, notice.clone())
                        .await;
                }
            }
        }
        Ok(())
    }
}
