//! Active Directory over LDAPS: the pool, user lookup, group membership, `unicodePwd` writes and
//! error mapping.
//! Implements [`crate::domain::directory::Directory`].

mod account;
pub mod cache;
mod census;
pub mod codec;
mod errors;
mod groups;
mod lookup;
mod password;
mod policy;
mod pool;
mod routing;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::config::{Balance, DirectoryConfig, PolicyHints};
use crate::domain::ObjectGuid;
use crate::domain::directory::{
    Account, AccountChange, BindGuard, DcHealth, DcId, DcStatus, Directory, DirectoryError,
    DirectoryUser, GuardedCheck, ManagerLink, PasswordCheck,
};
use crate::domain::policy::PasswordPolicy;
use crate::tls;
pub use census::DnReading;
use pool::{Connector, Dc};

pub struct LdapDirectory {
    dcs: Vec<Dc>,
    base_dn: String,
    user_filter: String,
    timeout: std::time::Duration,
    policy_hints: PolicyHints,
    balance: Balance,
    /// Turns for work that belongs to no account, spread round-robin.
    next_dc: AtomicUsize,
    write_affinity: Duration,
    /// Accounts whose last write went to a DC other than their home one (it was down), by
    /// routing key: that DC's index and when. Small: only failovers put entries here.
    written_elsewhere: Mutex<HashMap<String, (usize, Instant)>>,
    /// defaultNamingContext from the rootDSE: the domain head, where the domain's policy is.
    naming_context: tokio::sync::OnceCell<String>,
    /// Policies read in the last `directory.policy_cache`, by lower-case PSO DN or
    /// [`policy::DOMAIN_POLICY`].
    policies: cache::TtlCache<PasswordPolicy>,
}

impl LdapDirectory {
    /// Reads the CA file and prepares a pool per DC; no connection is opened until needed.
    pub fn new(config: &DirectoryConfig) -> Result<Self, DirectoryError> {
        let tls = tls::client_config(config.ca_file.as_deref()).map_err(|detail| {
            DirectoryError::Tls {
                url: "directory.ca_file".to_owned(),
                detail,
            }
        })?;
        let dcs = config
            .endpoints
            .iter()
            .map(|endpoint| {
                let connector = Connector::new(
                    endpoint.clone(),
                    tls.clone(),
                    config.connect_timeout,
                    config.timeout,
                    config.bind_dn.clone(),
                    config.bind_password.clone(),
                );
                Dc::new(connector, config.pool_size, config.retry_down_after)
            })
            .collect();
        Ok(Self {
            dcs,
            base_dn: config.base_dn.clone(),
            user_filter: config.user_filter.clone(),
            timeout: config.timeout,
            policy_hints: config.policy_hints,
            balance: config.balance,
            next_dc: AtomicUsize::new(0),
            write_affinity: config.write_affinity,
            written_elsewhere: Mutex::new(HashMap::new()),
            naming_context: tokio::sync::OnceCell::new(),
            policies: cache::TtlCache::new(config.policy_cache, cache::monotonic()),
        })
    }

    /// The same directory with its policies kept for `ttl` by the clock `now` (a test's).
    #[must_use]
    pub fn with_policy_cache(mut self, ttl: Duration, now: cache::Now) -> Self {
        self.policies = cache::TtlCache::new(ttl, now);
        self
    }

    /// The same directory with another `directory.policy_hints` setting.
    #[must_use]
    pub fn with_policy_hints(mut self, policy_hints: PolicyHints) -> Self {
        self.policy_hints = policy_hints;
        self
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        LdapDirectory::find_user_by(self, id, or_mail).await
    }

    async fn find_account(&self, login: &str) -> Result<Option<Account>, DirectoryError> {
        LdapDirectory::find_account(self, login).await
    }

    async fn account_at(&self, dn: &str) -> Result<Option<Account>, DirectoryError> {
        LdapDirectory::account_at(self, dn).await
    }

    async fn account_of(
        &self,
        guid: &ObjectGuid,
        sam_account_name: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        LdapDirectory::account_of(self, guid, sam_account_name).await
    }

    async fn users(&self, group_dn: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError> {
        LdapDirectory::users(self, group_dn).await
    }

    async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError> {
        LdapDirectory::is_member_of(self, user, group_dn).await
    }

    async fn manager(&self, user: &DirectoryUser) -> Result<Option<ManagerLink>, DirectoryError> {
        LdapDirectory::manager(self, user).await
    }

    async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        LdapDirectory::group_sids(self, user).await
    }

    async fn check_password(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<PasswordCheck, DirectoryError> {
        LdapDirectory::check_password(self, user, password).await
    }

    async fn check_password_guarded(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<GuardedCheck, DirectoryError> {
        LdapDirectory::check_password_guarded(self, user, password, may_bind).await
    }

    async fn decoy_password_check(&self, login: &str) -> Result<(), DirectoryError> {
        LdapDirectory::decoy_password_check(self, login).await
    }

    async fn write_account(
        &self,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, DirectoryError> {
        LdapDirectory::write_account(self, user, change).await
    }

    async fn change_password(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        may_change: BindGuard<'_>,
    ) -> Result<Option<DcId>, DirectoryError> {
        LdapDirectory::change_password(self, user, current, new, may_change).await
    }

    async fn password_policy(
        &self,
        user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        LdapDirectory::password_policy(self, user).await
    }

    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        LdapDirectory::domain_password_policy(self).await
    }

    async fn probe(&self) -> Vec<DcStatus> {
        let mut statuses = Vec::with_capacity(self.dcs.len());
        for dc in &self.dcs {
            let started = Instant::now();
            let result = match dc.get().await {
                Ok(mut conn) => {
                    // A rootDSE read proves the pooled connection still answers.
                    match dc.read_capabilities(&mut conn).await {
                        Ok(oid) => Ok(DcHealth {
                            latency: started.elapsed(),
                            policy_hints: oid.is_some(),
                        }),
                        Err(e) => {
                            Self::discard_if_broken(conn, &e);
                            Err(e)
                        }
                    }
                }
                Err(e) => Err(e),
            };
            statuses.push(DcStatus {
                url: dc.url().to_owned(),
                result,
            });
        }
        statuses
    }

    async fn enforces_password_history(&self) -> bool {
        LdapDirectory::enforces_password_history(self).await
    }
}
