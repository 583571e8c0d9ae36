//! Doubles of the ports for unit tests of the flows: a directory held in memory, an outbox and a
//! mailer that record what they are given, and a clock that stands still until told to move.
//! The stores are not faked: `crate::flow_tests` wires these doubles to the real sqlx store on a
//! private in-memory SQLite database, whose single-use claims, atomic TOTP steps and throttle
//! counters are the very rules under test.

mod directory;
mod passkeys;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

pub use directory::{FakeDirectory, RecordedWrite};
pub use passkeys::MemoryPasskeys;

use super::clock::{Clock, Timestamp};
use super::notify::{Mail, MailError, Mailer, Outbox, Queued};
use super::policy::{BannedList, PasswordRules};
use super::scope::Eligibility;
use super::settings::{
    AdminSettings, HelpdeskSettings, RegistrationSettings, ResetSettings, Settings,
    ThrottleSettings,
};
use super::signin::SignInSettings;
use super::store::StoreError;

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
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
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
        registration: RegistrationSettings {
            session_lifetime: Duration::from_secs(15 * 60),
            totp_issuer: "sspr.test".to_owned(),
            reconfirm_days: 0,
            remind_interval: Duration::from_secs(30 * 24 * 60 * 60),
            code_lifetime: Duration::from_secs(24 * 60 * 60),
            allowed_networks: Vec::new(),
        },
        reset: ResetSettings {
            methods_required: 1,
            unlock_on_reset: true,
            flow_lifetime: Duration::from_secs(15 * 60),
            code_lifetime: Duration::from_secs(10 * 60),
        },
        throttle: ThrottleSettings {
            flow_max_failures: 5,
            user_max_failures: 10,
            user_window: Duration::from_secs(60 * 60),
            user_block: Duration::from_secs(60 * 60),
            ip_max_starts: 1_000,
            ip_max_verifications: 1_000,
            ip_window: Duration::from_secs(60 * 60),
            email_max_sends: 5,
            email_window: Duration::from_secs(60 * 60),
            signin_max_failures: 5,
            signin_window: Duration::from_secs(15 * 60),
            signin_failure_floor: Duration::from_millis(20),
            ipv6_prefix: 64,
        },
        helpdesk: HelpdeskSettings::default(),
        password_rules: PasswordRules {
            banned: Arc::new(BannedList::new(std::iter::empty())),
            min_strength: 0,
        },
        eligibility: Eligibility::default(),
        admin_addresses: Vec::new(),
        self_service_licensed: true,
        notice_lifetime: Duration::from_secs(24 * 60 * 60),
        signin: SignInSettings {
            // Every failed sign-in still waits for it, but a test need not wait 400 ms.
            failure_floor: Duration::from_millis(20),
            domains: SignInSettings::domains_of("DC=sspr,DC=test"),
            ..SignInSettings::default()
        },
        admin: AdminSettings::default(),
        passkeys: crate::domain::passkey::PasskeySettings::for_site(
            &url::Url::parse("https://sspr.test").expect("a URL"),
            "",
        )
        .expect("a relying party"),
    }
}
