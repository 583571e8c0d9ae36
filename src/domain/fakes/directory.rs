//! Active Directory in memory, for the flows' unit tests.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::lock;
use crate::domain::ObjectGuid;
use crate::domain::directory::{
    Account as AccountRead, AccountChange, BadPasswords, BindGuard, DcId, DcStatus, Directory,
    DirectoryError, DirectoryUser, GuardedCheck, ManagerLink, PasswordCheck, uac,
};
use crate::domain::policy::PasswordPolicy;
use crate::domain::scope::same_dn;

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
    /// The policy's password history length (0 unless a test sets one).
    history_length: u32,
    /// Whether the directory holds resets to that history itself (policy hints).
    enforces_history: bool,
    /// The policies' maximum password age; `None`: passwords do not expire.
    max_age: Option<Duration>,
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

    /// The account must change its password at next logon (pwdLastSet = 0): a bind answers 773.
    pub fn require_change(&self, user: &DirectoryUser) {
        self.with_account(user.guid, |a| a.entry.pwd_last_set = 0);
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

    /// Passwords expire this long after they were set.
    pub fn set_max_password_age(&self, age: Duration) {
        lock(&self.state).max_age = Some(age);
    }

    /// Sets pwdLastSet (FILETIME).
    pub fn set_password_last_set(&self, user: &DirectoryUser, filetime: i64) {
        self.with_account(user.guid, |a| a.entry.pwd_last_set = filetime);
    }

    /// The writes the directory applied, in order (a failed one is not among them).
    /// The history length of the policy, the user's and the domain's.
    pub fn set_history_length(&self, n: u32) {
        lock(&self.state).history_length = n;
    }

    /// Makes the directory hold resets to the history itself, as a DC with policy hints does.
    pub fn set_enforces_history(&self, enforces: bool) {
        lock(&self.state).enforces_history = enforces;
    }

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

    /// As AD does it: the search by login, and a read of the account with its groups only
    /// when one was found.
    async fn find_account(&self, login: &str) -> Result<Option<AccountRead>, DirectoryError> {
        let Some(user) = self.find_user(login).await? else {
            return Ok(None);
        };
        self.account_at(&user.dn).await
    }

    async fn account_at(&self, dn: &str) -> Result<Option<AccountRead>, DirectoryError> {
        self.call("read_account");
        let state = lock(&self.state);
        Ok(state
            .accounts
            .iter()
            .find(|a| !dn.is_empty() && same_dn(&a.entry.dn, dn))
            .map(|a| AccountRead {
                user: a.entry.clone(),
                group_sids: vec!["S-1-5-21-1-2-3-513".to_owned()],
            }))
    }

    async fn account_of(
        &self,
        guid: &ObjectGuid,
        sam_account_name: &str,
    ) -> Result<Option<AccountRead>, DirectoryError> {
        self.call("read_account");
        let state = lock(&self.state);
        Ok(state
            .accounts
            .iter()
            .find(|a| {
                a.entry.guid == *guid
                    && a.entry
                        .sam_account_name
                        .eq_ignore_ascii_case(sam_account_name)
            })
            .map(|a| AccountRead {
                user: a.entry.clone(),
                group_sids: vec!["S-1-5-21-1-2-3-513".to_owned()],
            }))
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
        } else if account.entry.must_change_password() {
            PasswordCheck::MustChange
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

    async fn change_password(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        may_change: BindGuard<'_>,
    ) -> Result<Option<DcId>, DirectoryError> {
        let mut state = lock(&self.state);
        state.calls.push("change_password");
        if !may_change(BadPasswords::default(), &Self::policy()) {
            return Ok(None);
        }
        if let Some(error) = state.fail_next_write.take() {
            return Err(error);
        }
        let Some(account) = state
            .accounts
            .iter_mut()
            .find(|a| a.entry.guid == user.guid)
        else {
            return Err(DirectoryError::WrongOldPassword);
        };
        if account.password != current.expose_secret() {
            return Err(DirectoryError::WrongOldPassword);
        }
        account.password = new.expose_secret().to_owned();
        // AD sets pwdLastSet to the time of the change, which ends "must change".
        account.entry.pwd_last_set = 134_000_000_000_000_000;
        account.entry.computed_account_control &= !uac::PASSWORD_EXPIRED;
        state.writes.push(RecordedWrite {
            user: user.guid,
            new_password: Some(new.expose_secret().to_owned()),
            unlock: false,
            must_change: false,
        });
        Ok(Some(DcId("dc1.sspr.test".to_owned())))
    }

    async fn password_policy(
        &self,
        _user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        self.call("password_policy");
        let max_age = lock(&self.state).max_age;
        Ok(PasswordPolicy {
            max_age,
            history_length: lock(&self.state).history_length,
            ..Self::policy()
        })
    }

    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        self.call("domain_password_policy");
        let max_age = lock(&self.state).max_age;
        Ok(PasswordPolicy {
            max_age,
            history_length: lock(&self.state).history_length,
            ..Self::policy()
        })
    }

    async fn probe(&self) -> Vec<DcStatus> {
        Vec::new()
    }

    async fn enforces_password_history(&self) -> bool {
        lock(&self.state).enforces_history
    }
}
