use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::domain::clock::Timestamp;
use crate::domain::locale::Locale;
use crate::domain::notify::{About, MailKind};
use crate::domain::store::AuditRecord;
use crate::store::tests::memory_store;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Records what it is handed; fails while `failing` says so; takes `pause_ms` per mail.
#[derive(Default)]
struct FakeTransport {
    sent: Mutex<Vec<Mail>>,
    failing: Mutex<Option<SendError>>,
    pause_ms: AtomicU64,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Addresses being sent to right now.
    sending_to: Mutex<Vec<String>>,
}

#[async_trait]
impl Transport for FakeTransport {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        {
            let mut sending_to = self.sending_to.lock().unwrap();
            assert!(
                !sending_to.contains(&mail.to),
                "two mails to {} at once",
                mail.to
            );
            sending_to.push(mail.to.clone());
        }
        let pause = self.pause_ms.load(Ordering::SeqCst);
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        self.sending_to.lock().unwrap().retain(|to| *to != mail.to);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match &*self.failing.lock().unwrap() {
            Some(SendError::InvalidRecipient) => Err(SendError::InvalidRecipient),
            Some(_) => Err(SendError::Unreachable {
                server: "smtp".to_owned(),
                detail: "down".to_owned(),
            }),
            None => {
                self.sent.lock().unwrap().push(mail.clone());
                Ok(())
            }
        }
    }
}

#[derive(Default)]
struct RecordingAudit(Mutex<Vec<AuditEvent>>);

#[async_trait]
impl AuditLog for RecordingAudit {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
    async fn since(&self, _: Timestamp, _: i64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn after(&self, _: Timestamp, _: i64, _: i64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn for_user(&self, _: &ObjectGuid, _: i64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
}

struct Rig {
    store: crate::store::Store,
    clock: Arc<ManualClock>,
    transport: Arc<FakeTransport>,
    audit: Arc<RecordingAudit>,
    outbox: SealedOutbox,
    sender: OutboxSender,
}

async fn rig() -> Rig {
    let store = memory_store().await;
    let clock = Arc::new(ManualClock(AtomicI64::new(1_800_000_000_000)));
    let keys = Arc::new(Keys::new(&[9; 32]));
    let transport = Arc::new(FakeTransport::default());
    let audit = Arc::new(RecordingAudit::default());
    let wake = Arc::new(Notify::new());
    let rows: Arc<dyn OutboxStore> = Arc::new(store.clone());
    Rig {
        outbox: SealedOutbox::new(rows.clone(), keys.clone(), clock.clone(), wake.clone()),
        sender: OutboxSender::new(
            rows,
            keys,
            clock.clone(),
            transport.clone(),
            audit.clone(),
            wake,
        ),
        store,
        clock,
        transport,
        audit,
    }
}

fn code_mail(to: &str, decoy: bool) -> Queued {
    Queued {
        mail: Mail {
            to: to.to_owned(),
            display_name: None,
            locale: Locale::Nl,
            kind: MailKind::ResetCode {
                code: SecretString::from("40718263"),
            },
        },
        purpose: Purpose::Code,
        about: About::new(
            (!decoy).then(|| ObjectGuid(uuid::Uuid::from_u128(7))),
            "jdoe",
            None,
            None,
        ),
        decoy,
    }
}

impl Rig {
    fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }

    async fn rows(&self) -> Vec<OutboxRow> {
        self.store.mails().await.unwrap()
    }

    fn sent(&self) -> Vec<String> {
        let sent = self.transport.sent.lock().unwrap();
        sent.iter().map(|m| m.to.clone()).collect()
    }

    fn fail(&self, error: Option<SendError>) {
        *self.transport.failing.lock().unwrap() = error;
    }
}

#[tokio::test]
async fn a_mail_is_sealed_sent_once_and_deleted() {
    let rig = rig().await;
    let send_by = rig.now() + 600_000;
    rig.outbox
        .enqueue(&code_mail("jan@example.com", false), send_by)
        .await
        .unwrap();
    let rows = rig.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].body_sealed.len() % PAD_TO,
        40,
        "nonce and tag on padding"
    );
    let body = String::from_utf8_lossy(&rows[0].body_sealed);
    assert!(
        !body.contains("40718263") && !body.contains("jan@"),
        "sealed"
    );

    rig.sender.drain().await.unwrap();
    rig.sender.drain().await.unwrap();
    assert_eq!(rig.sent(), ["jan@example.com"]);
    let sent = rig.transport.sent.lock().unwrap()[0].clone();
    match sent.kind {
        MailKind::ResetCode { code } => assert_eq!(code.expose_secret(), "40718263"),
        other => panic!("{other:?}"),
    }
    assert!(rig.rows().await.is_empty(), "deleted once sent");
}

#[tokio::test]
async fn a_decoy_row_looks_alike_and_is_never_sent() {
    let rig = rig().await;
    let send_by = rig.now() + 600_000;
    rig.outbox
        .enqueue(&code_mail("jan.de.vries@example.com", false), send_by)
        .await
        .unwrap();
    rig.outbox
        .enqueue(&code_mail("x@example.invalid", true), send_by)
        .await
        .unwrap();
    let rows = rig.rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].body_sealed.len(), rows[1].body_sealed.len());
    assert_eq!(
        (rows[0].send_by_ms, rows[0].attempts),
        (rows[1].send_by_ms, rows[1].attempts)
    );

    rig.sender.drain().await.unwrap();
    assert_eq!(rig.sent(), ["jan.de.vries@example.com"]);
    assert_eq!(
        rig.rows().await.len(),
        1,
        "the decoy waits for its code's expiry"
    );
    rig.clock.advance(600_000);
    rig.sender.drain().await.unwrap();
    assert!(rig.rows().await.is_empty());
    assert_eq!(rig.sent().len(), 1);
    assert!(rig.audit.0.lock().unwrap().is_empty(), "nothing to audit");
}

#[tokio::test]
async fn a_failed_send_is_retried_with_backoff_until_it_goes() {
    let rig = rig().await;
    rig.outbox
        .enqueue(&code_mail("jan@example.com", false), rig.now() + 600_000)
        .await
        .unwrap();
    rig.fail(Some(SendError::Compose("down".to_owned())));
    rig.sender.drain().await.unwrap();
    rig.sender.drain().await.unwrap();
    let rows = rig.rows().await;
    assert_eq!(rows[0].attempts, 1, "one try, then a wait");
    assert_eq!(rows[0].next_attempt_at_ms, rig.now() + 1_000);
    rig.clock.advance(1_000);
    rig.sender.drain().await.unwrap();
    assert_eq!(rig.rows().await[0].next_attempt_at_ms, rig.now() + 2_000);

    rig.fail(None);
    rig.clock.advance(1_999);
    rig.sender.drain().await.unwrap();
    assert!(rig.sent().is_empty(), "not before its time");
    rig.clock.advance(1);
    rig.sender.drain().await.unwrap();
    assert_eq!(rig.sent(), ["jan@example.com"]);
    assert!(rig.rows().await.is_empty());
    assert!(rig.audit.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_code_mail_is_dropped_unsent_once_the_code_expired_and_audited() {
    let rig = rig().await;
    rig.outbox
        .enqueue(&code_mail("jan@example.com", false), rig.now() + 1_500)
        .await
        .unwrap();
    rig.fail(Some(SendError::Compose("down".to_owned())));
    rig.sender.drain().await.unwrap();
    rig.clock.advance(1_000);
    rig.sender.drain().await.unwrap();
    assert_eq!(
        rig.rows().await[0].next_attempt_at_ms,
        rig.now() + 500,
        "the next try is not after the expiry"
    );
    rig.fail(None);
    rig.clock.advance(500);
    rig.sender.drain().await.unwrap();
    assert!(rig.sent().is_empty(), "an expired code is not sent");
    assert!(rig.rows().await.is_empty());
    let audit = rig.audit.0.lock().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].event.as_str(),
            audit[0].outcome.as_str(),
            audit[0].reason.as_deref(),
            audit[0].sam_account_name.as_deref()
        ),
        (
            "code_sent",
            "failure",
            Some("mail_unavailable"),
            Some("jdoe")
        )
    );
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried_and_a_notice_audits_its_kind() {
    let rig = rig().await;
    let mut notice = code_mail("jan@example.com", false);
    notice.mail.kind = MailKind::PasswordReset;
    notice.purpose = Purpose::Notice;
    rig.outbox
        .enqueue(&notice, rig.now() + 86_400_000)
        .await
        .unwrap();
    rig.fail(Some(SendError::InvalidRecipient));
    rig.sender.drain().await.unwrap();
    assert!(rig.rows().await.is_empty());
    let audit = rig.audit.0.lock().unwrap();
    assert_eq!(
        (audit[0].event.as_str(), audit[0].reason.as_deref()),
        ("notification", Some("password_reset"))
    );
}

#[tokio::test]
async fn two_senders_over_one_table_send_each_mail_once() {
    let rig = rig().await;
    for i in 0..20 {
        rig.outbox
            .enqueue(
                &code_mail(&format!("u{i}@example.com"), false),
                rig.now() + 600_000,
            )
            .await
            .unwrap();
    }
    let other = OutboxSender::new(
        Arc::new(rig.store.clone()),
        Arc::new(Keys::new(&[9; 32])),
        rig.clock.clone(),
        rig.transport.clone(),
        rig.audit.clone(),
        Arc::new(Notify::new()),
    );
    let (a, b) = tokio::join!(rig.sender.drain(), other.drain());
    a.unwrap();
    b.unwrap();
    let mut sent = rig.sent();
    sent.sort();
    sent.dedup();
    assert_eq!((sent.len(), rig.sent().len()), (20, 20));
}

#[tokio::test]
async fn under_load_several_mails_leave_at_once_each_once_and_one_address_in_order() {
    let rig = rig().await;
    rig.transport.pause_ms.store(20, Ordering::SeqCst);
    for i in 0..24 {
        rig.outbox
            .enqueue(
                &code_mail(&format!("u{i}@example.com"), false),
                rig.now() + 600_000,
            )
            .await
            .unwrap();
    }
    let mut same = Vec::new();
    for n in 0..3 {
        let mut mail = code_mail("same@example.com", false);
        mail.mail.display_name = Some(format!("mail {n}"));
        rig.outbox
            .enqueue(&mail, rig.now() + 600_000)
            .await
            .unwrap();
        rig.clock.advance(1);
        same.push(format!("mail {n}"));
    }
    rig.sender.drain().await.unwrap();

    let mut sent = rig.sent();
    assert_eq!(sent.len(), 27);
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 25, "each mail once");
    let most = rig.transport.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=SENDING_AT_ONCE).contains(&most), "{most} at once");
    let order: Vec<_> = rig
        .transport
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.to == "same@example.com")
        .map(|m| m.display_name.clone().unwrap())
        .collect();
    assert_eq!(order, same);
    assert!(rig.rows().await.is_empty());
}

#[test]
fn every_kind_of_mail_opens_as_it_was_sealed_and_only_in_its_own_row() {
    use crate::domain::store::MethodKind;
    let keys = Keys::new(&[3; 32]);
    let code = || SecretString::from("40718263");
    let kinds = [
        MailKind::EnrollmentCode { code: code() },
        MailKind::ResetCode { code: code() },
        MailKind::HelpdeskCode { code: code() },
        MailKind::PasswordReset,
        MailKind::AccountUnlocked,
        MailKind::MethodAdded {
            method: MethodKind::Totp,
            name: None,
        },
        MailKind::MethodRemoved {
            method: MethodKind::Email,
            name: None,
        },
        MailKind::HelpdeskPasswordReset,
        MailKind::HelpdeskUnlocked,
        MailKind::HelpdeskRegistrationsCleared,
        MailKind::ProtectedAccountReset {
            account: "jdoe".to_owned(),
        },
        MailKind::RegistrationReminder {
            change_first: false,
        },
        MailKind::PasswordExpiry {
            days_left: 3,
            expires_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            page: crate::domain::notify::PasswordPage::Reset,
        },
    ];
    for kind in kinds {
        let mut queued = code_mail("jan@example.com", false);
        queued.mail.display_name = Some("Jan de Vries".to_owned());
        queued.mail.kind = kind;
        let row = OutboxRow {
            id: "row-1".to_owned(),
            body_sealed: seal(&keys, "row-1", &queued),
            created_at_ms: 0,
            send_by_ms: 0,
            next_attempt_at_ms: 0,
            attempts: 0,
        };
        let opened = open(&keys, &row).expect("opens");
        assert_eq!(format!("{:?}", opened), format!("{:?}", queued));
        if let (MailKind::ResetCode { code: a }, MailKind::ResetCode { code: b }) =
            (&opened.mail.kind, &queued.mail.kind)
        {
            assert_eq!(a.expose_secret(), b.expose_secret());
        }
        let moved = OutboxRow {
            id: "row-2".to_owned(),
            ..row
        };
        assert!(open(&keys, &moved).is_none(), "bound to its row");
    }
}

#[test]
fn backoff_doubles_up_to_a_minute() {
    let waits: Vec<i64> = (1..=8).map(backoff_ms).collect();
    assert_eq!(
        waits,
        [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
    );
    assert_eq!(backoff_ms(1_000), 60_000);
}
