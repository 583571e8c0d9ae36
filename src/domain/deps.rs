//! What every flow is given: the ports it talks to, the services that own the audit log, the
//! throttle and the outbox ([`Auditor`], [`Throttle`], [`Notifier`]), the clock, the keys and
//! the settings.

use std::sync::Arc;
use std::time::Duration;

use super::ObjectGuid;
use super::audit::Auditor;
use super::clock::{Clock, Timestamp};
use super::directory::{Directory, DirectoryUser};
use super::error::FlowError;
use super::history::PasswordHistory;
use super::hooks::Hooks;
use super::notifier::Notifier;
use super::notify::{Mailer, Outbox};
use super::scope::StandIn;
use super::secrets::{Keys, new_token};
use super::settings::Settings;
use super::store::{
    ApprovalStore, AuditLog, CodeStore, EnrolledMethod, FlowStore, PasskeyStore,
    PasswordHistoryStore, RecoveryCodeStore, RegistrationStore, Session, SessionKind, SessionStore,
    StoreError, ThrottleStore, Transactions,
};
use super::throttle::Throttle;

pub use super::client::Client;

/// Everything the flows talk to: ports as traits, and the services that own the audit log, the
/// throttle and the outbox.
#[derive(Clone)]
pub struct Deps {
    pub directory: Arc<dyn Directory>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub flows: Arc<dyn FlowStore>,
    pub codes: Arc<dyn CodeStore>,
    pub passkeys: Arc<dyn PasskeyStore>,
    pub throttle: Throttle,
    pub audit: Auditor,
    pub approvals: Arc<dyn ApprovalStore>,
    /// `None` when no SMTP server is configured: email methods are then unavailable. Only for
    /// what must not be stored (the helpdesk's temporary password) and the batch commands.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Codes and notifications, queued in the outbox (when `mailer` is set) and sent in the
    /// background.
    pub notifier: Notifier,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<Keys>,
    pub settings: Settings,
    /// What a reset start for an unknown login judges in its place.
    pub stand_in: Arc<StandIn>,
    /// The passwords this service wrote, where the directory keeps no history for resets.
    pub history: PasswordHistory,
    /// `hooks.after_*`; none unless the composition root sets them.
    pub hooks: Hooks,
    pub recovery_codes: Arc<dyn RecoveryCodeStore>,
    /// Makes one step's store calls one transaction (see [`Deps::in_one_step`]).
    pub transactions: Arc<dyn Transactions>,
}

/// The ports [`Deps`] is built from; the audit log, the throttle store and the outbox go to the
/// services that own them.
pub struct Ports {
    pub directory: Arc<dyn Directory>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub flows: Arc<dyn FlowStore>,
    pub codes: Arc<dyn CodeStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub audit: Arc<dyn AuditLog>,
    pub approvals: Arc<dyn ApprovalStore>,
    pub mailer: Option<Arc<dyn Mailer>>,
    pub outbox: Arc<dyn Outbox>,
    pub history: Arc<dyn PasswordHistoryStore>,
    pub recovery_codes: Arc<dyn RecoveryCodeStore>,
    pub passkeys: Arc<dyn PasskeyStore>,
    pub transactions: Arc<dyn Transactions>,
}

impl Deps {
    pub fn new(ports: Ports, clock: Arc<dyn Clock>, keys: Arc<Keys>, settings: Settings) -> Self {
        let audit = Auditor::new(ports.audit, clock.clone());
        let throttle = Throttle::new(
            ports.throttle,
            clock.clone(),
            audit.clone(),
            settings.throttle,
        );
        let notifier = Notifier::new(
            ports.outbox,
            ports.mailer.is_some(),
            ports.registrations.clone(),
            ports.codes.clone(),
            clock.clone(),
            audit.clone(),
            &settings,
        );
        let history = PasswordHistory::new(
            ports.history,
            ports.directory.clone(),
            keys.clone(),
            clock.clone(),
        );
        Self {
            directory: ports.directory,
            registrations: ports.registrations,
            sessions: ports.sessions,
            flows: ports.flows,
            codes: ports.codes,
            passkeys: ports.passkeys,
            throttle,
            audit,
            approvals: ports.approvals,
            mailer: ports.mailer,
            notifier,
            clock,
            keys,
            settings,
            stand_in: Default::default(),
            history,
            hooks: Hooks::default(),
            recovery_codes: ports.recovery_codes,
            transactions: ports.transactions,
        }
    }

    /// Runs `work` as one transaction of the store (see [`Transactions`]). Its rows are kept
    /// whatever it answers, a refusal included (a wrong code is counted and audited), except
    /// when the database failed in it: then none are. A commit that fails is that failure.
    pub async fn in_one_step<T: Send>(
        &self,
        work: impl Future<Output = Result<T, FlowError>> + Send,
    ) -> Result<T, FlowError> {
        let mut answer = None;
        let committed = self
            .transactions
            .run(Box::pin(async {
                let result = work.await;
                let keep = !matches!(result, Err(FlowError::Store(_)));
                answer = Some(result);
                keep
            }))
            .await;
        let answer = answer.unwrap_or_else(|| Err(StoreError::new("the step did not run").into()));
        committed?;
        answer
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The user's methods that count for a reset now: confirmed, and not due for
    /// re-confirmation.
    pub async fn current_methods(
        &self,
        user: &ObjectGuid,
    ) -> Result<Vec<EnrolledMethod>, StoreError> {
        let now = self.now();
        let mut methods = self.registrations.methods(user).await?;
        methods.retain(|m| m.is_current(now, self.settings.registration.reconfirm_after()));
        Ok(methods)
    }

    /// Opens a session of `kind` for `user`, ending after `lifetime`; returns the bearer token
    /// (only its hash is stored).
    pub async fn open_session(
        &self,
        kind: SessionKind,
        user: &DirectoryUser,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        let now = self.now();
        let (token, hash) = new_token();
        self.sessions
            .create_session(&Session {
                token_hash: hash,
                kind,
                user: user.guid,
                sam_account_name: user.sam_account_name.clone(),
                created_at: now,
                expires_at: now + lifetime,
                last_seen_at: now,
                pending_totp: None,
                pending_totp_name: None,
                failures: 0,
                stepped_up_at: None,
            })
            .await?;
        Ok(token)
    }

    /// How many unused recovery codes the user has; 0 when `registration.recovery_codes` is
    /// off, so they are then neither offered nor taken.
    pub async fn recovery_codes_left(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        if !self.settings.registration.recovery_codes {
            return Ok(0);
        }
        self.recovery_codes.recovery_codes_left(user).await
    }

    /// The user's confirmed email address, if any.
    pub async fn confirmed_email(&self, user: &ObjectGuid) -> Result<Option<String>, StoreError> {
        self.notifier.confirmed_email(user).await
    }
}

/// Runs `work` on a task of its own, so it ends even if the request that awaits it is dropped
/// (its client hung up, or `server.request_timeout` passed): a step that writes the directory
/// must not stop between the write and its records.
pub(in crate::domain) async fn to_the_end<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    match tokio::spawn(work).await {
        Ok(answer) => answer,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a write step did not end: {e}"),
        },
    }
}
