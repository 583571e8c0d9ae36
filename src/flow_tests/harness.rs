//! The flows' dependencies for their unit tests: the doubles of [`crate::domain::fakes`] for
//! the directory, mail and clock, and the real store on a private in-memory SQLite database.

use std::sync::Arc;

use crate::domain::clock::{Clock, Timestamp};
use crate::domain::deps::{Client, Deps, Ports};
use crate::domain::directory::DirectoryUser;
use crate::domain::fakes::{FakeDirectory, FixedClock, RecordingMailer, RecordingOutbox, settings};
use crate::domain::locale::Locale;
use crate::domain::secrets::Keys;
use crate::domain::settings::Settings;
use crate::domain::store::{
    AuditEvent, AuditLog, EnrolledMethod, MethodKind, RegistrationStore, new_method_id,
};
use crate::domain::totp;
use crate::store::Store;

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
        let ports = Ports {
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
            history: store.clone(),
            recovery_codes: store.clone(),
            passkeys: store.clone(),
            transactions: store.clone(),
        };
        let deps = Deps::new(
            ports,
            clock.clone(),
            Arc::new(Keys::new(&[7; 32])),
            settings,
        );
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
            locale: Locale::En,
        }
    }

    /// Registers a confirmed authenticator app for `user`; returns its secret, from which
    /// [`Self::totp_code`] computes codes as the app would.
    pub async fn register_totp(&self, user: &DirectoryUser) -> Vec<u8> {
        let secret = totp::new_secret();
        let now = self.clock.now();
        let method = EnrolledMethod {
            id: new_method_id(),
            kind: MethodKind::Totp,
            name: None,
            address: None,
            secret_sealed: Some(self.deps.keys.seal(&secret, user.guid.0.as_bytes())),
            last_step: None,
            confirmed_at: Some(now),
            created_at: now,
            last_used_at: None,
        };
        self.store
            .put_method(&user.guid, &user.sam_account_name, &method)
            .await
            .expect("stored");
        secret.to_vec()
    }

    /// Registers a confirmed email address for `user`.
    pub async fn register_email(&self, user: &DirectoryUser, address: &str) {
        let now = self.clock.now();
        let method = EnrolledMethod {
            id: new_method_id(),
            kind: MethodKind::Email,
            name: None,
            address: Some(address.to_owned()),
            secret_sealed: None,
            last_step: None,
            confirmed_at: Some(now),
            created_at: now,
            last_used_at: None,
        };
        self.store
            .put_method(&user.guid, &user.sam_account_name, &method)
            .await
            .expect("stored");
    }

    /// The code an authenticator app with `secret` shows now.
    pub fn totp_code(&self, secret: &[u8]) -> String {
        let secs = self.clock.now().as_unix_secs();
        totp::code_at(secret, secs)
    }

    /// Every audit row, oldest first.
    pub async fn audit(&self) -> Vec<AuditEvent> {
        AuditLog::since(self.store.as_ref(), Timestamp::from_millis(0), 10_000)
            .await
            .expect("audit readable")
            .into_iter()
            .map(|r| r.event)
            .collect()
    }
}
