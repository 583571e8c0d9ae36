//! Telling people: codes and notifications queued in the outbox (the ports and the mails
//! themselves are in [`super::notify`]), and what is done when that fails.

use std::sync::Arc;
use std::time::Duration;

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Auditor, Outcome};
use super::client::Client;
use super::clock::{Clock, Timestamp};
use super::directory::DirectoryUser;
use super::locale::Locale;
use super::notify::{About, Mail, MailKind, Outbox, Purpose, Queued};
use super::settings::Settings;
use super::store::{CodeStore, MethodKind, PendingCode, RegistrationStore, StoreError};

/// Tells people: owns the outbox, and what it reads to know where to write and what it does
/// when a mail cannot go.
#[derive(Clone)]
pub struct Notifier {
    outbox: Arc<dyn Outbox>,
    /// Whether a mail server is configured: without one, notices are not queued.
    mail_configured: bool,
    registrations: Arc<dyn RegistrationStore>,
    codes: Arc<dyn CodeStore>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    /// How long a notification is retried before it is given up.
    notice_lifetime: Duration,
}

impl Notifier {
    /// `mail_configured`: whether a mail server is configured.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        mail_configured: bool,
        registrations: Arc<dyn RegistrationStore>,
        codes: Arc<dyn CodeStore>,
        clock: Arc<dyn Clock>,
        audit: Auditor,
        settings: &Settings,
    ) -> Self {
        Self {
            outbox,
            mail_configured,
            registrations,
            codes,
            clock,
            audit,
            notice_lifetime: settings.notice_lifetime,
        }
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

    /// Queues a notification about `user` (its objectGUID and sAMAccountName) if a mail server
    /// is configured. A failure is not fatal (the change itself already happened and was
    /// audited) but is logged and audited as a failed `notification`, so an owner who was never
    /// told of a change to their account shows up in the audit; the outbox's sender does the
    /// same for a notice it could not deliver within `mail::NOTICE_LIFETIME`.
    pub async fn notify(
        &self,
        client: &Client,
        user: (ObjectGuid, &str),
        to: Option<&str>,
        display_name: Option<&str>,
        locale: Locale,
        kind: MailKind,
    ) {
        let (true, Some(to)) = (self.mail_configured, to) else {
            return;
        };
        let label = kind.label();
        let queued = Queued {
            mail: Mail {
                to: to.to_owned(),
                display_name: display_name.map(str::to_owned),
                locale,
                kind,
            },
            purpose: Purpose::Notice,
            about: About::new(Some(user.0), user.1, None, client.ip),
            decoy: false,
        };
        let send_by = (self.clock.now() + self.notice_lifetime).as_millis();
        if let Err(e) = self.outbox.enqueue(&queued, send_by).await {
            tracing::warn!(error = %e, kind = label, "notification not queued");
            let failed = Audit {
                event: AuditKind::Notification,
                outcome: Outcome::Failure,
                user: Some(user.0),
                sam_account_name: Some(user.1),
                method: None,
                reason: Some(label),
            };
            self.audit.done(client, None, failed).await;
        }
    }

    /// Tells the owner of `user` about a change to their account: at their confirmed address and
    /// at AD's `mail` (so a user who registered only an authenticator app hears of it too), and at
    /// `also` (an address that was just replaced or removed, so its owner learns of it). Each
    /// address once, whatever its case. A failure to read the confirmed address still lets the
    /// others be told.
    pub async fn notify_owner(
        &self,
        client: &Client,
        user: &DirectoryUser,
        also: Option<&str>,
        locale: Locale,
        kind: MailKind,
    ) {
        let confirmed = self.confirmed_email(&user.guid).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the confirmed address cannot be read; told elsewhere");
            None
        });
        let candidates = [confirmed.as_deref(), user.mail.as_deref(), also];
        for to in owner_addresses(&candidates) {
            self.notify(
                client,
                (user.guid, &user.sam_account_name),
                Some(to),
                user.display_name.as_deref(),
                locale,
                kind.clone(),
            )
            .await;
        }
    }

    /// Queues the mail of `code` to `to`, or, with no address (an unknown login, or a user
    /// without a confirmed address), an equal row that is never sent, so both cost the same.
    /// The mail is dropped unsent once the code expired. `who` is the user's objectGUID (of a
    /// real user) and name, for the audit row of a mail that never left.
    pub async fn queue_code(
        &self,
        code: &PendingCode,
        to: Option<String>,
        mail: Mail,
        who: (Option<ObjectGuid>, &str),
        client: &Client,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        let decoy = to.is_none();
        let queued = Queued {
            mail: Mail {
                // As long as a typical address, so the sealed row is the same size.
                to: to.unwrap_or_else(|| "no-one.at.all@example.invalid".to_owned()),
                ..mail
            },
            purpose: Purpose::Code,
            about: About::new(who.0, who.1, actor, client.ip),
            decoy,
        };
        self.outbox
            .enqueue(&queued, code.expires_at.as_millis())
            .await
    }

    /// Queues `queued` (a mail that is neither a code nor a plain notice) to be given up at
    /// `send_by`.
    pub async fn queue_until(&self, queued: &Queued, send_by: Timestamp) -> Result<(), StoreError> {
        self.outbox.enqueue(queued, send_by.as_millis()).await
    }

    /// After a code's mail failed to be sent directly (the outbox has its own audit, see
    /// [`Self::queue_code`]): withdraws the code, so none is left that nobody received (it
    /// replaced the previous one, as every resend does, and the user is told to ask again), and
    /// audits the failed `code_sent` for `who` (objectGUID, if a real user, and name).
    pub async fn code_not_sent(
        &self,
        code: &PendingCode,
        who: (Option<ObjectGuid>, &str),
        client: &Client,
        actor: Option<&str>,
    ) {
        let withdrawn = self
            .codes
            .take_code(code.purpose, &code.subject, &code.code_hash)
            .await;
        if let Err(e) = withdrawn {
            tracing::warn!(error = %e, "an unsent code could not be withdrawn");
        }
        let failed = Audit {
            event: AuditKind::CodeSent,
            outcome: Outcome::Failure,
            user: who.0,
            sam_account_name: Some(who.1),
            method: Some(MethodKind::Email),
            reason: Some("mail_unavailable"),
        };
        self.audit.done(client, actor, failed).await;
    }
}

/// The distinct non-empty addresses among `candidates`, in order, compared without case.
fn owner_addresses<'a>(candidates: &[Option<&'a str>]) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for address in candidates.iter().flatten().map(|a| a.trim()) {
        if !address.is_empty() && !seen.iter().any(|s| s.eq_ignore_ascii_case(address)) {
            seen.push(address);
        }
    }
    seen
}

/// `a***@example.com`: enough for the user to recognise, too little to harvest.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_told_once_at_each_address() {
        let candidates = [
            Some("alice@example.com"),
            Some("Alice@Example.com"),
            None,
            Some(" "),
            Some("old@example.com"),
        ];
        assert_eq!(
            owner_addresses(&candidates),
            ["alice@example.com", "old@example.com"]
        );
    }

    #[test]
    fn masked_addresses_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("ä@x.nl"), "ä***@x.nl");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
