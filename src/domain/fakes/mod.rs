//! Doubles of the ports for unit tests of the flows: a directory held in memory, an outbox and a
//! mailer that record what they are given, and a clock that stands still until told to move.
//! The stores are the real sqlx store on a private in-memory SQLite database (one connection,
//! migrated at start): its single-use claims, atomic TOTP steps and throttle counters are the
//! very rules under test, so a second, hand-written implementation of them would prove less.

mod directory;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub use directory::{FakeDirectory, RecordedWrite};

use super::clock::Clock;
use super::deps::{Client, Deps};
use super::directory::DirectoryUser;
use super::notify::{Mail, MailError, Mailer, Outbox, Queued};
use super::policy::{BannedList, PasswordRules};
use super::scope::Eligibility;
use super::secrets::Keys;
use super::settings::{HelpdeskSettings, Settings};
use super::signin::SignInSettings;
use super::store::{
    AuditEvent, AuditLog, EnrolledMethod, MethodKind, RegistrationStore, StoreError,
};
use super::totp;
use crate::store::Store;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A clock that shows the instant it was set to, until a test moves it.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// 2026-01-01T00:00:00Z, so stored millis are realistic.
    pub const START_MS: i64 = 1_767_225_600_000;

    pub fn new(at_ms: i64) -> Self {
        Self(AtomicI64::new(at_ms))
    }

    pub fn set_ms(&self, at_ms: i64) {
        self.0.store(at_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).expect("a test moves the clock by less than ages");
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        let ms = u64::try_from(self.0.load(Ordering::SeqCst)).expect("after 1970");
        UNIX_EPOCH + Duration::from_millis(ms)
    }
}

/// The outbox, recording each queued mail with its deadline instead of sealing it into a table.
#[derive(Default)]
pub struct RecordingOutbox {
    queued: Mutex<Vec<(Queued, i64)>>,
}

impl RecordingOutbox {
    pub fn queued(&self) -> Vec<(Queued, i64)> {
        lock(&self.queued).clone()
    }
}

#[async_trait]
impl Outbox for RecordingOutbox {
    async fn enqueue(&self, queued: &Queued, send_by_ms: i64) -> Result<(), StoreError> {
        lock(&self.queued).push((queued.clone(), send_by_ms));
        Ok(())
    }
}

/// A mail server that keeps what it is handed. Its presence is what turns email methods on.
#[derive(Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<Mail>>,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<Mail> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        lock(&self.sent).push(mail.clone());
        Ok(())
    }
}

/// Settings as `config/default.toml` gives them, shortened where a test would otherwise wait.
pub fn settings() -> Settings {
    Settings {
        session_lifetime: Duration::from_secs(15 * 60),
        totp_issuer: "sspr.test".to_owned(),
        methods_required: 1,
        unlock_on_reset: true,
        flow_lifetime: Duration::from_secs(15 * 60),
        code_lifetime: Duration::from_secs(10 * 60),
        flow_max_failures: 5,
        user_max_failures: 10,
        user_window: Duration::from_secs(60 * 60),
        user_block: Duration::from_secs(60 * 60),
        ip_max_starts: 1_000,
        ip_max_verifications: 1_000,
        ip_window: Duration::from_secs(60 * 60),
        email_max_sends: 5,
        email_window: Duration::from_secs(60 * 60),
        helpdesk: HelpdeskSettings::default(),
        password_rules: PasswordRules {
            banned: Arc::new(BannedList::new(std::iter::empty())),
            min_strength: 0,
        },
        reconfirm_after: None,
        eligibility: Eligibility::default(),
        admin_addresses: Vec::new(),
        registration_code_lifetime: Duration::from_secs(24 * 60 * 60),
        registration_networks: Vec::new(),
        self_service_licensed: true,
        notice_lifetime: Duration::from_secs(24 * 60 * 60),
        signin: SignInSettings {
            // Every failed sign-in still waits for it, but a test need not wait 400 ms.
            failure_floor: Duration::from_millis(20),
            domains: SignInSettings::domains_of("DC=sspr,DC=test"),
            ..SignInSettings::default()
        },
        ipv6_prefix: 64,
    }
}

/// The flows' dependencies wired to the doubles above, with handles on each.
pub struct Fakes {
    pub deps: Deps,
    pub directory: Arc<FakeDirectory>,
    pub outbox: Arc<RecordingOutbox>,
    pub mailer: Arc<RecordingMailer>,
    pub clock: Arc<FixedClock>,
    pub store: Arc<Store>,
}

impl Fakes {
    pub async fn new() -> Self {
        Self::with(settings()).await
    }

    pub async fn with(settings: Settings) -> Self {
        let clock = Arc::new(FixedClock::new(FixedClock::START_MS));
        let store = Arc::new(
            crate::store::tests::memory_store()
                .await
                .with_clock(clock.clone()),
        );
        let directory = Arc::new(FakeDirectory::default());
        let outbox = Arc::new(RecordingOutbox::default());
        let mailer = Arc::new(RecordingMailer::default());
        let deps = Deps {
            directory: directory.clone(),
            registrations: store.clone(),
            sessions: store.clone(),
            flows: store.clone(),
            codes: store.clone(),
            throttle: store.clone(),
            audit: store.clone(),
            approvals: store.clone(),
            mailer: Some(mailer.clone()),
            outbox: outbox.clone(),
            clock: clock.clone(),
            keys: Arc::new(Keys::new(&[7; 32])),
            settings,
            stand_in: Default::default(),
        };
        Self {
            deps,
            directory,
            outbox,
            mailer,
            clock,
            store,
        }
    }

    pub fn client(&self) -> Client {
        Client {
            ip: Some("192.0.2.10".parse().expect("an address")),
            locale: "en".to_owned(),
        }
    }

    /// Registers a confirmed authenticator app for `user`; returns its secret, from which
    /// [`Self::totp_code`] computes codes as the app would.
    pub async fn register_totp(&self, user: &DirectoryUser) -> Vec<u8> {
        let secret = totp::new_secret();
        let now = self.clock.now_ms();
        let method = EnrolledMethod {
            kind: MethodKind::Totp,
            address: None,
            secret_sealed: Some(self.deps.keys.seal(&secret, user.guid.0.as_bytes())),
            last_step: None,
            confirmed_at_ms: Some(now),
            created_at_ms: now,
        };
        self.store
            .put_method(&user.guid, &user.sam_account_name, &method)
            .await
            .expect("stored");
        secret.to_vec()
    }

    /// Registers a confirmed email address for `user`.
    pub async fn register_email(&self, user: &DirectoryUser, address: &str) {
        let now = self.clock.now_ms();
        let method = EnrolledMethod {
            kind: MethodKind::Email,
            address: Some(address.to_owned()),
            secret_sealed: None,
            last_step: None,
            confirmed_at_ms: Some(now),
            created_at_ms: now,
        };
        self.store
            .put_method(&user.guid, &user.sam_account_name, &method)
            .await
            .expect("stored");
    }

    /// The code an authenticator app with `secret` shows now.
    pub fn totp_code(&self, secret: &[u8]) -> String {
        let secs = u64::try_from(self.clock.now_ms() / 1000).expect("after 1970");
        totp::code_at(secret, secs)
    }

    /// Every audit row, oldest first.
    pub async fn audit(&self) -> Vec<AuditEvent> {
        AuditLog::since(self.store.as_ref(), 0, 10_000)
            .await
            .expect("audit readable")
            .into_iter()
            .map(|r| r.event)
            .collect()
    }
}
