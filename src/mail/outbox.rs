//! The outbox: [`SealedOutbox`] stores the flows' mails in the database, sealed, and wakes the
//! [`OutboxSender`], a background task that sends them, retries with backoff and deletes each row
//! once it is sent or given up. Several instances may share the table: a row is claimed with a
//! lease before it is sent, so each mail leaves once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::{SendError, SmtpMailer};
use crate::domain::ObjectGuid;
use crate::domain::audit::{self, AuditKind};
use crate::domain::clock::Clock;
use crate::domain::notify::{Mail, Outbox, OutboxRow, OutboxStore, Purpose, Queued};
use crate::domain::secrets::Keys;
use crate::domain::store::{AuditEvent, AuditLog, StoreError};

/// How often the sender looks for rows it was not woken for: those of other instances, and
/// retries that came due.
pub const POLL: Duration = Duration::from_secs(2);

/// How long a claim lasts: longer than one SMTP exchange may take (`smtp.timeout`, 10 s by
/// default, for each of connect and reply), so a row is only taken over from an instance that
/// died while sending it.
const LEASE_MS: i64 = 120_000;

/// The first retry waits 1 s, each next one twice as long, up to this.
const MAX_BACKOFF_MS: i64 = 60_000;

/// How long a notification is retried before it is given up (a code is retried until it
/// expires).
pub const NOTICE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Rows looked up per round.
const BATCH: i64 = 16;

/// Mails handed to the server at once: as many as the transport keeps connections for.
const SENDING_AT_ONCE: usize = super::MAX_IDLE;

/// Bodies are padded to a multiple of this, so the size of a row does not tell a decoy (or a
/// long address) from another.
const PAD_TO: usize = 1024;

/// Hands one mail to the mail server. [`SmtpMailer`] in the service; a fake in unit tests.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError>;
}

#[async_trait]
impl Transport for SmtpMailer {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        SmtpMailer::deliver(self, mail).await
    }
}

fn seal(keys: &Keys, id: &str, queued: &Queued) -> Vec<u8> {
    let json = Zeroizing::new(serde_json::to_vec(queued).expect("a mail serialises"));
    let len = u32::try_from(json.len()).expect("a mail is far below 4 GiB");
    let padded_len = (4 + json.len()).div_ceil(PAD_TO) * PAD_TO;
    let mut plain = Zeroizing::new(Vec::with_capacity(padded_len));
    plain.extend_from_slice(&len.to_be_bytes());
    plain.extend_from_slice(&json);
    plain.resize(padded_len, 0);
    keys.seal(&plain, id.as_bytes())
}

fn open(keys: &Keys, row: &OutboxRow) -> Option<Queued> {
    let plain = keys.open(&row.body_sealed, row.id.as_bytes())?;
    let len = usize::try_from(u32::from_be_bytes(plain.get(..4)?.try_into().ok()?)).ok()?;
    serde_json::from_slice(plain.get(4..4 + len)?).ok()
}

/// The [`Outbox`] the flows write to.
pub struct SealedOutbox {
    store: Arc<dyn OutboxStore>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl SealedOutbox {
    /// `wake` is shared with the [`OutboxSender`] of this process.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            wake,
        }
    }
}

#[async_trait]
impl Outbox for SealedOutbox {
    async fn enqueue(&self, queued: &Queued, send_by_ms: i64) -> Result<(), StoreError> {
        let now = self.clock.now().as_millis();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let row = OutboxRow {
            body_sealed: seal(&self.keys, &id, queued),
            id,
            created_at_ms: now,
            send_by_ms,
            next_attempt_at_ms: now,
            attempts: 0,
        };
        self.store.insert_mail(&row).await?;
        // Once the row has committed, the sender (a decoy's too, so both cost the same) finds it.
        let wake = self.wake.clone();
        self.store
            .when_committed(Box::new(move || wake.notify_one()));
        Ok(())
    }
}

/// Sends what the outbox holds.
pub struct OutboxSender {
    store: Arc<dyn OutboxStore>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    audit: Arc<dyn AuditLog>,
    wake: Arc<Notify>,
}

/// A claimed row, after [`OutboxSender::claim`].
enum Claimed {
    /// Parked or dropped without sending.
    Done,
    Send(Box<ToSend>),
}

/// A claimed mail to hand to the server.
struct ToSend {
    id: String,
    next_attempt_at_ms: i64,
    send_by_ms: i64,
    attempts: i64,
    queued: Queued,
}

impl OutboxSender {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
        audit: Arc<dyn AuditLog>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            transport,
            audit,
            wake,
        }
    }

    /// Runs the sender until the returned guard is dropped.
    pub fn spawn(self) -> SenderTask {
        SenderTask(tokio::spawn(async move { self.run().await }))
    }

    async fn run(&self) {
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(error = %e, "outbox: sending failed; will retry");
            }
            match self.store.pending_mails().await {
                Ok(rows) => crate::metrics::outbox_pending(rows),
                Err(e) => tracing::debug!(error = %e, "outbox: rows not counted"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Works on due rows, oldest first, until none is left that this instance could claim.
    /// Up to [`SENDING_AT_ONCE`] mails are handed to the server at once, never two to one
    /// address (so two mails to one address arrive in the order they were queued).
    async fn drain(&self) -> Result<(), StoreError> {
        loop {
            let ids = self
                .store
                .due_mails(self.clock.now().as_millis(), BATCH)
                .await?;
            let mut claimed_any = false;
            let mut addresses = HashSet::new();
            let mut to_send = Vec::new();
            for id in &ids {
                match self.claim(id).await? {
                    None => {}
                    Some(Claimed::Done) => claimed_any = true,
                    Some(Claimed::Send(mail)) => {
                        claimed_any = true;
                        if addresses.insert(mail.queued.mail.to.trim().to_lowercase()) {
                            to_send.push(mail);
                        } else {
                            // Due again at once, for the next round, after the earlier mail.
                            self.store
                                .retry_mail(&mail.id, mail.next_attempt_at_ms, false)
                                .await?;
                        }
                    }
                }
            }
            let sent: Vec<_> = stream::iter(to_send)
                .map(|mail| self.send(mail))
                .buffer_unordered(SENDING_AT_ONCE)
                .collect()
                .await;
            for outcome in sent {
                outcome?;
            }
            // Rows another instance claimed first are not due here any more; a round that
            // claimed nothing has nothing left to do.
            if !claimed_any {
                return Ok(());
            }
        }
    }

    /// Claims the row `id` and parks or drops it if it is not to be sent. `None`: not claimed.
    async fn claim(&self, id: &str) -> Result<Option<Claimed>, StoreError> {
        let now = self.clock.now().as_millis();
        let Some(row) = self.store.claim_mail(id, now, now + LEASE_MS).await? else {
            return Ok(None);
        };
        let Some(queued) = open(&self.keys, &row) else {
            tracing::warn!(
                id,
                "outbox: a row does not open (security.secret_key changed?); dropped"
            );
            crate::metrics::outbox_dropped("unknown", "unreadable");
            self.store.delete_mail(id).await?;
            return Ok(Some(Claimed::Done));
        };
        let kind = queued.mail.kind.label();
        if queued.decoy {
            // Kept as long as a real code's row could be, then removed without a trace.
            if now >= row.send_by_ms {
                self.store.delete_mail(id).await?;
                return Ok(Some(Claimed::Done));
            }
            self.store.retry_mail(id, row.send_by_ms, false).await?;
            return Ok(Some(Claimed::Done));
        }
        if now >= row.send_by_ms {
            tracing::warn!(
                kind,
                attempts = row.attempts,
                "outbox: mail dropped unsent; its code expired or its notice's time ran out"
            );
            crate::metrics::outbox_dropped(kind, "expired");
            self.audit_failure(&queued, "mail_unavailable").await;
            self.store.delete_mail(id).await?;
            return Ok(Some(Claimed::Done));
        }
        Ok(Some(Claimed::Send(Box::new(ToSend {
            id: row.id,
            next_attempt_at_ms: row.next_attempt_at_ms,
            send_by_ms: row.send_by_ms,
            attempts: row.attempts,
            queued,
        }))))
    }

    /// Hands a claimed mail to the server; deletes its row once sent or refused for good.
    async fn send(&self, mail: Box<ToSend>) -> Result<(), StoreError> {
        let ToSend {
            id,
            send_by_ms,
            attempts,
            queued,
            ..
        } = *mail;
        let kind = queued.mail.kind.label();
        match self.transport.deliver(&queued.mail).await {
            Ok(()) => {
                self.store.delete_mail(&id).await?;
                Ok(())
            }
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, kind, "outbox: mail refused for good; dropped");
                crate::metrics::outbox_dropped(kind, "refused");
                self.audit_failure(&queued, "mail_refused").await;
                self.store.delete_mail(&id).await?;
                Ok(())
            }
            Err(e) => {
                // The clock is read again: the send may have taken up to `smtp.timeout`.
                let now = self.clock.now().as_millis();
                let next = (now + backoff_ms(attempts + 1)).min(send_by_ms);
                tracing::warn!(error = %e, kind, attempts = attempts + 1, "outbox: mail not sent; will retry");
                self.store.retry_mail(&id, next, true).await?;
                Ok(())
            }
        }
    }

    /// The audit row of a mail that was never delivered: a failed `code_sent` (reason `why`), or
    /// a failed `notification` (reason: what it would have said).
    async fn audit_failure(&self, queued: &Queued, why: &str) {
        let about = &queued.about;
        let (event, method, reason) = match queued.purpose {
            Purpose::Code => (AuditKind::CodeSent, Some("email"), why),
            Purpose::Notice => (AuditKind::Notification, None, queued.mail.kind.label()),
        };
        let event = AuditEvent {
            at: self.clock.now(),
            event,
            outcome: audit::Outcome::Failure,
            object_guid: about.user.map(ObjectGuid),
            sam_account_name: Some(about.sam_account_name.clone()),
            actor: about.actor.clone(),
            client_ip: about.client_ip.clone(),
            method: method.map(str::to_owned),
            reason: Some(reason.to_owned()),
            login_hash: None,
        };
        if let Err(e) = self.audit.record(&event).await {
            tracing::error!(
                audit.event = event.event.as_str(),
                audit.object_guid = event.object_guid.map(|g| g.to_string()),
                audit.sam_account_name = event.sam_account_name,
                audit.reason = event.reason,
                error = %e,
                "audit row not written; the event is recorded in this log line instead"
            );
        }
    }
}

/// 1 s after the first failure, doubling, at most [`MAX_BACKOFF_MS`].
fn backoff_ms(failures: i64) -> i64 {
    let exponent = u32::try_from(failures.clamp(1, 17) - 1).unwrap_or(0);
    (1_000_i64 << exponent).min(MAX_BACKOFF_MS)
}

/// The running sender; stopped when dropped (with the service state that owns it).
pub struct SenderTask(tokio::task::JoinHandle<()>);

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
