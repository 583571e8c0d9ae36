//! Doubles of the ports for unit tests of the flows: a directory held in memory, an outbox and a
//! mailer that record what they are given, and a clock that stands still until told to move.
//! The stores are the real sqlx store on a private in-memory SQLite database (one connection,
//! migrated at start): its single-use claims, atomic TOTP steps and throttle counters are the
//! very rules under test, so a second, hand-written implementation of them would prove less.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::ObjectGuid;
use super::clock::Clock;
use super::directory::{
    AccountChange, BadPasswords, BindGuard, DcId, DcStatus, Directory, DirectoryError,
    DirectoryUser, GuardedCheck, ManagerLink, PasswordCheck, uac,
};
use super::notify::{Mail, MailError, Mailer, Outbox, Queued};
use super::policy::{BannedList, PasswordPolicy, PasswordRules};
use super::scope::{Eligibility, same_dn};
use super::secrets::Keys;
use super::selfservice::{Client, Deps, HelpdeskSettings, Settings};
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

/// One account of the fake directory, with its password in clear (test data only).
#[derive(Clone, Debug)]
struct Account {
    entry: DirectoryUser,
    password: String,
}

/// What a flow asked the directory to change, as the directory received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedWrite {
    pub user: ObjectGuid,
    pub new_password: Option<String>,
    pub unlock: bool,
    pub must_change: bool,
}

#[derive(Default)]
struct DirectoryState {
    accounts: Vec<Account>,
    /// The answer of the next `write_account`, instead of applying it.
    fail_next_write: Option<DirectoryError>,
    writes: Vec<RecordedWrite>,
    /// Every call, by method name, in order: what work a flow made the directory do.
    calls: Vec<&'static str>,
    /// How long a write takes, so that racing requests overlap inside it.
    write_delay: Duration,
}

/// Active Directory in memory: accounts found by sAMAccountName or UPN (any case), binds that
/// compare the password, writes that apply atomically and are recorded, and knobs to fail the
/// next write or rename or disable an account between two steps of a flow.
#[derive(Default)]
pub struct FakeDirectory {
    state: Mutex<DirectoryState>,
}

impl FakeDirectory {
    /// Adds an enabled account `sam`@sspr.test with `password`, and returns it as AD would.
    pub fn add_user(&self, sam: &str, password: &str) -> DirectoryUser {
        let entry = DirectoryUser {
            guid: ObjectGuid(uuid::Uuid::new_v4()),
            dn: format!("CN={sam},OU=Staff,DC=sspr,DC=test"),
            sam_account_name: sam.to_owned(),
            user_principal_name: Some(format!("{sam}@sspr.test")),
            display_name: Some(format!("User {sam}")),
            mail: Some(format!("{sam}@mail.sspr.test")),
            user_account_control: 0x0200,
            computed_account_control: 0,
            lockout_time: 0,
            // Some FILETIME in 2025: the password was set, no change required.
            pwd_last_set: 133_800_000_000_000_000,
            account_expires: 0,
            admin_count: false,
            member_of: Vec::new(),
            resultant_pso: None,
        };
        lock(&self.state).accounts.push(Account {
            entry: entry.clone(),
            password: password.to_owned(),
        });
        entry
    }

    fn with_account<R>(&self, guid: ObjectGuid, f: impl FnOnce(&mut Account) -> R) -> R {
        let mut state = lock(&self.state);
        let account = state
            .accounts
            .iter_mut()
            .find(|a| a.entry.guid == guid)
            .expect("the test added this account");
        f(account)
    }

    /// Renames the account (a new sAMAccountName and UPN, the same objectGUID).
    pub fn rename(&self, user: &DirectoryUser, new_sam: &str) {
        self.with_account(user.guid, |a| {
            a.entry.sam_account_name = new_sam.to_owned();
            a.entry.user_principal_name = Some(format!("{new_sam}@sspr.test"));
            a.entry.dn = format!("CN={new_sam},OU=Staff,DC=sspr,DC=test");
        });
    }

    /// Makes the account a direct member of `group_dn`.
    pub fn add_to_group(&self, user: &DirectoryUser, group_dn: &str) {
        self.with_account(user.guid, |a| a.entry.member_of.push(group_dn.to_owned()));
    }

    pub fn remove_from_group(&self, user: &DirectoryUser, group_dn: &str) {
        self.with_account(user.guid, |a| {
            a.entry.member_of.retain(|m| !same_dn(m, group_dn))
        });
    }

    pub fn disable(&self, user: &DirectoryUser) {
        self.with_account(user.guid, |a| {
            a.entry.user_account_control |= uac::ACCOUNTDISABLE;
        });
    }

    pub fn lock_out(&self, user: &DirectoryUser) {
        self.with_account(user.guid, |a| {
            a.entry.lockout_time = 134_000_000_000_000_000;
            a.entry.computed_account_control |= uac::LOCKOUT;
        });
    }

    /// The account as the directory holds it now.
    pub fn user(&self, user: &DirectoryUser) -> DirectoryUser {
        self.with_account(user.guid, |a| a.entry.clone())
    }

    /// Whether `password` is the account's password now.
    pub fn has_password(&self, user: &DirectoryUser, password: &str) -> bool {
        self.with_account(user.guid, |a| a.password == password)
    }

    /// The next write fails with `error` and changes nothing.
    pub fn fail_next_write(&self, error: DirectoryError) {
        lock(&self.state).fail_next_write = Some(error);
    }

    pub fn set_write_delay(&self, delay: Duration) {
        lock(&self.state).write_delay = delay;
    }

    /// The writes the directory applied, in order (a failed one is not among them).
    pub fn writes(&self) -> Vec<RecordedWrite> {
        lock(&self.state).writes.clone()
    }

    /// The calls made so far, by method name, and forgets them.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut lock(&self.state).calls)
    }

    fn call(&self, name: &'static str) {
        lock(&self.state).calls.push(name);
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 7,
            complexity: true,
            history_length: 0,
            min_age: Duration::ZERO,
            max_age: None,
            lockout_threshold: 5,
            lockout_duration: Some(Duration::from_secs(30 * 60)),
            lockout_window: Some(Duration::from_secs(30 * 60)),
            pso: None,
        }
    }
}

#[async_trait]
impl Directory for FakeDirectory {
    async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.call("find_user");
        let state = lock(&self.state);
        let matches = |a: &&Account| {
            let e = &a.entry;
            e.sam_account_name.eq_ignore_ascii_case(id)
                || e.user_principal_name
                    .as_deref()
                    .is_some_and(|upn| upn.eq_ignore_ascii_case(id))
                || (or_mail
                    && e.mail
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(id)))
        };
        let mut found = state.accounts.iter().filter(matches);
        Ok(match (found.next(), found.next()) {
            (Some(one), None) => Some(one.entry.clone()),
            _ => None,
        })
    }

    async fn users(&self, group_dn: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError> {
        self.call("users");
        let state = lock(&self.state);
        Ok(state
            .accounts
            .iter()
            .map(|a| &a.entry)
            .filter(|e| !e.is_disabled())
            .filter(|e| group_dn.is_none_or(|g| e.member_of.iter().any(|m| same_dn(m, g))))
            .cloned()
            .collect())
    }

    async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError> {
        self.call("is_member_of");
        // Asked of the directory as it is now, not of the entry a flow read earlier.
        let state = lock(&self.state);
        let member_of = state
            .accounts
            .iter()
            .find(|a| a.entry.guid == user.guid)
            .map_or(&user.member_of, |a| &a.entry.member_of);
        Ok(member_of.iter().any(|m| same_dn(m, group_dn)))
    }

    async fn manager(&self, _user: &DirectoryUser) -> Result<Option<ManagerLink>, DirectoryError> {
        self.call("manager");
        Ok(None)
    }

    async fn group_sids(&self, _user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        self.call("group_sids");
        Ok(vec!["S-1-5-21-1-2-3-513".to_owned()])
    }

    async fn check_password(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<PasswordCheck, DirectoryError> {
        self.call("bind");
        let state = lock(&self.state);
        let Some(account) = state.accounts.iter().find(|a| a.entry.guid == user.guid) else {
            return Ok(PasswordCheck::Wrong);
        };
        Ok(if account.password != password.expose_secret() {
            PasswordCheck::Wrong
        } else if account.entry.is_disabled() {
            PasswordCheck::Disabled
        } else if account.entry.is_locked() {
            PasswordCheck::Locked
        } else {
            PasswordCheck::Valid
        })
    }

    async fn check_password_guarded(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<GuardedCheck, DirectoryError> {
        if !may_bind(BadPasswords::default(), &Self::policy()) {
            self.call("bind");
            return Ok(GuardedCheck::Refused);
        }
        Ok(GuardedCheck::Checked(
            self.check_password(user, password).await?,
        ))
    }

    async fn decoy_password_check(&self, _login: &str) -> Result<(), DirectoryError> {
        self.call("bind");
        Ok(())
    }

    async fn write_account(
        &self,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, DirectoryError> {
        let delay = {
            let mut state = lock(&self.state);
            state.calls.push("write_account");
            if let Some(error) = state.fail_next_write.take() {
                return Err(error);
            }
            state.write_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = lock(&self.state);
        let Some(account) = state
            .accounts
            .iter_mut()
            .find(|a| a.entry.guid == user.guid)
        else {
            return Err(DirectoryError::Other {
                rc: 32,
                detail: "noSuchObject".to_owned(),
            });
        };
        if let Some(password) = change.new_password {
            account.password = password.expose_secret().to_owned();
        }
        if change.unlock {
            account.entry.lockout_time = 0;
            account.entry.computed_account_control &= !uac::LOCKOUT;
        }
        if change.must_change {
            account.entry.pwd_last_set = 0;
        }
        state.writes.push(RecordedWrite {
            user: user.guid,
            new_password: change.new_password.map(|p| p.expose_secret().to_owned()),
            unlock: change.unlock,
            must_change: change.must_change,
        });
        Ok(DcId("dc1.sspr.test".to_owned()))
    }

    async fn password_policy(
        &self,
        _user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        self.call("password_policy");
        Ok(Self::policy())
    }

    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        self.call("domain_password_policy");
        Ok(Self::policy())
    }

    async fn probe(&self) -> Vec<DcStatus> {
        Vec::new()
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
