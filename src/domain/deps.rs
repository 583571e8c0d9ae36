//! What every flow is given: the ports it talks to, the clock, the keys and the settings, and
//! who is asking. The audit, throttle and notification helpers on [`Deps`] live beside the
//! rules they serve ([`super::audit`], [`super::throttle`], [`super::notifier`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::ObjectGuid;
use super::clock::{Clock, Timestamp};
use super::directory::{Directory, DirectoryUser};
use super::locale::Locale;
use super::notify::{Mailer, Outbox};
use super::scope::StandIn;
use super::secrets::{Keys, new_token};
use super::settings::Settings;
use super::store::{
    ApprovalStore, AuditLog, CodeStore, EnrolledMethod, FlowStore, MethodKind, RegistrationStore,
    Session, SessionKind, SessionStore, StoreError, ThrottleStore,
};

/// Everything the flows talk to, as traits.
#[derive(Clone)]
pub struct Deps {
    pub directory: Arc<dyn Directory>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub flows: Arc<dyn FlowStore>,
    pub codes: Arc<dyn CodeStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub audit: Arc<dyn AuditLog>,
    pub approvals: Arc<dyn ApprovalStore>,
    /// `None` when no SMTP server is configured: email methods are then unavailable. Only for
    /// what must not be stored (the helpdesk's temporary password) and the batch commands.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Where codes and notifications go (when `mailer` is set): sent in the background.
    pub outbox: Arc<dyn Outbox>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<Keys>,
    pub settings: Settings,
    /// What a reset start for an unknown login judges in its place.
    pub stand_in: Arc<StandIn>,
}

/// Who is asking: for throttles, the audit and the language of mails.
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub locale: Locale,
}

impl Deps {
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
        methods.retain(|m| m.is_current(now, self.settings.reconfirm_after));
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
                failures: 0,
                stepped_up_at: None,
            })
            .await?;
        Ok(token)
    }

    /// The user's confirmed email address, if any.
    pub async fn confirmed_email(&self, user: &ObjectGuid) -> Result<Option<String>, StoreError> {
        Ok(self
            .registrations
            .methods(user)
            .await?
            .into_iter()
            .find(|m| m.kind == MethodKind::Email && m.confirmed_at.is_some())
            .and_then(|m| m.address))
    }
}
