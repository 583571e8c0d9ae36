//! Active Directory over LDAPS: the pool, user lookup, group membership, `unicodePwd` writes and
//! error mapping.
//! Implements [`crate::domain::directory::Directory`].

pub mod codec;
mod errors;
mod pool;

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Mod, Scope, SearchEntry, SearchOptions};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::{Balance, DirectoryConfig, PolicyHints};
use crate::domain::directory::{
    AccountChange, BadPasswords, BindGuard, DcHealth, DcId, DcStatus, Directory, DirectoryError,
    DirectoryUser, GuardedCheck, ManagerLink, PasswordCheck,
};
use crate::domain::policy::PasswordPolicy;
use crate::metrics;
use crate::tls;
use errors::{from_ldap, from_ldap_write, from_result};
use pool::{Connector, Dc, PooledLdap};

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
    /// Policies read recently, by lower-case PSO DN or [`DOMAIN_POLICY`].
    policies: Mutex<HashMap<String, (Instant, PasswordPolicy)>>,
}

/// How long a policy read from AD is used before it is read again: long enough to spare the DC
/// a read per keystroke of a password check, short enough that a changed policy shows soon.
const POLICY_CACHE: Duration = Duration::from_secs(60);
const DOMAIN_POLICY: &str = "domain";
/// Entries per page of a paged search; AD's default MaxPageSize is 1000.
const PAGE_SIZE: i32 = 500;

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
            policies: Mutex::new(HashMap::new()),
        })
    }

    fn cached_policy(&self, key: &str) -> Option<PasswordPolicy> {
        let cache = self.policies.lock().expect("not poisoned");
        cache
            .get(key)
            .filter(|(read, _)| read.elapsed() < POLICY_CACHE)
            .map(|(_, policy)| policy.clone())
    }

    fn remember_policy(&self, key: String, policy: &PasswordPolicy) {
        let mut cache = self.policies.lock().expect("not poisoned");
        cache.retain(|_, (read, _)| read.elapsed() < POLICY_CACHE);
        cache.insert(key, (Instant::now(), policy.clone()));
    }

    /// The DN of the domain head, read from the rootDSE once.
    async fn naming_context(&self) -> Result<&str, DirectoryError> {
        self.naming_context
            .get_or_try_init(|| async {
                let entries = self
                    .search(
                        Route::Any,
                        "",
                        Scope::Base,
                        "(objectClass=*)",
                        &["defaultNamingContext"],
                        1,
                    )
                    .await?;
                entries
                    .first()
                    .and_then(|e| codec::first(e, "defaultNamingContext"))
                    .map(str::to_owned)
                    .ok_or_else(|| DirectoryError::Other {
                        rc: 0,
                        detail: "the rootDSE names no defaultNamingContext".to_owned(),
                    })
            })
            .await
            .map(String::as_str)
    }

    /// A PSO's policy; `None` if the service account cannot read it (by default only Domain
    /// Admins may read the Password Settings Container).
    async fn read_pso(&self, dn: &str) -> Result<Option<PasswordPolicy>, DirectoryError> {
        match self
            .search(
                Route::Any,
                dn,
                Scope::Base,
                "(objectClass=msDS-PasswordSettings)",
                codec::PSO_ATTRIBUTES,
                1,
            )
            .await
        {
            Ok(entries) => Ok(entries.first().and_then(codec::pso_password_policy)),
            // noSuchObject: what AD answers for an object the reader may not see.
            Err(DirectoryError::Other { rc: 32, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The same directory with another `directory.policy_hints` setting.
    #[must_use]
    pub fn with_policy_hints(mut self, policy_hints: PolicyHints) -> Self {
        self.policy_hints = policy_hints;
        self
    }

    /// The user entry at `dn`, wherever it is (also outside `base_dn`, as a service account often
    /// is); `None` if there is none or the service account may not see it.
    pub async fn find_user_at(&self, dn: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        match self
            .search(
                Route::Any,
                dn,
                Scope::Base,
                "(objectClass=user)",
                codec::USER_ATTRIBUTES,
                1,
            )
            .await
        {
            Ok(entries) => Ok(entries.first().and_then(codec::directory_user)),
            Err(DirectoryError::Other { rc: 32, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The DCs in the order `route` should try them, ignoring which are down: the account's
    /// home DC first (by rendezvous hashing, so adding or losing a DC moves only the accounts
    /// homed on it), or the next turn round-robin, or the configured order.
    fn preference(&self, route: Route<'_>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dcs.len()).collect();
        match (self.balance, route) {
            (Balance::InOrder, _) => {}
            (Balance::ByUser, Route::Account(key)) => {
                order.sort_by_cached_key(|&i| Reverse(rendezvous_score(key, self.dcs[i].url())));
            }
            (Balance::ByUser, Route::Any) => {
                let turn = self.next_dc.fetch_add(1, Ordering::Relaxed);
                order.rotate_left(turn % self.dcs.len().max(1));
            }
        }
        order
    }

    /// The DC that took this account's last write, if that was not its home DC and recently.
    fn wrote_elsewhere(&self, key: &str) -> Option<usize> {
        let written = self.written_elsewhere.lock().expect("not poisoned");
        written
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.write_affinity)
            .map(|(dc, _)| *dc)
    }

    /// Remembers where an account's write went when that is not where its work usually goes.
    fn remember_write(&self, route: Route<'_>, dc: &Dc) {
        let Route::Account(key) = route else { return };
        let Some(index) = self.dcs.iter().position(|d| std::ptr::eq(d, dc)) else {
            return;
        };
        let mut written = self.written_elsewhere.lock().expect("not poisoned");
        if self.preference(route).first() == Some(&index) {
            written.remove(key);
        } else {
            written.retain(|_, (_, at)| at.elapsed() < self.write_affinity);
            written.insert(key.to_owned(), (index, Instant::now()));
        }
    }

    /// DCs in the order to try them: the DC that took the account's last write (for
    /// `write_affinity`), then [`Self::preference`]; those that recently failed last.
    fn candidates(&self, route: Route<'_>) -> Vec<&Dc> {
        let mut order = self.preference(route);
        if let Route::Account(key) = route
            && let Some(wrote) = self.wrote_elsewhere(key)
        {
            order.retain(|&i| i != wrote);
            order.insert(0, wrote);
        }
        let now = Instant::now();
        let (up, down): (Vec<&Dc>, Vec<&Dc>) = order
            .into_iter()
            .map(|i| &self.dcs[i])
            .partition(|dc| !dc.is_down(now));
        up.into_iter().chain(down).collect()
    }

    /// A pooled service connection from the first DC that gives one; each that fails is skipped.
    async fn checkout(&self, route: Route<'_>) -> Result<(PooledLdap, &Dc), DirectoryError> {
        let mut failures = Vec::new();
        for dc in self.candidates(route) {
            match dc.get().await {
                Ok(conn) => return Ok((conn, dc)),
                Err(e) => {
                    metrics::directory_error(&e);
                    tracing::warn!(dc = dc.url(), error = %e, "domain controller failed, trying the next");
                    failures.push(e);
                }
            }
        }
        Err(combine(failures))
    }

    /// Connections that failed mid-operation are not returned to the pool.
    fn discard_if_broken(conn: PooledLdap, error: &DirectoryError) {
        if matches!(
            error,
            DirectoryError::Unavailable { .. } | DirectoryError::WriteUnconfirmed { .. }
        ) {
            let _ = PooledLdap::take(conn);
        }
    }

    /// One search on a pooled service connection; the entries, without referrals. A connection
    /// that broke during it is not returned to the pool.
    async fn search(
        &self,
        route: Route<'_>,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (mut conn, dc) = self.checkout(route).await?;
        let started = Instant::now();
        let result = conn
            .with_search_options(SearchOptions::new().sizelimit(size_limit))
            .with_timeout(self.timeout)
            .search(base, scope, filter, attributes.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| from_ldap(dc.url(), e));
        metrics::directory_operation(dc.url(), "search", started, &result);
        match result {
            Ok((entries, _)) => Ok(entries
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(SearchEntry::construct)
                .collect()),
            Err(e) => {
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
    }

    /// One base-scope read of `attributes` of `dn` on a pooled connection to `dc` itself, not
    /// to whichever DC answers first: for the attributes a DC keeps to itself.
    async fn read_at(
        &self,
        dc: &Dc,
        dn: &str,
        attributes: &[&str],
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let mut conn = dc.get().await?;
        let started = Instant::now();
        let result = conn
            .with_search_options(SearchOptions::new().sizelimit(1))
            .with_timeout(self.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attributes.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| from_ldap(dc.url(), e));
        metrics::directory_operation(dc.url(), "search", started, &result);
        match result {
            Ok((entries, _)) => Ok(entries
                .into_iter()
                .map(SearchEntry::construct)
                .find(|e| !e.dn.is_empty())),
            Err(DirectoryError::Other { rc: 32, .. }) => Ok(None),
            Err(e) => {
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
    }

    /// A name no account has, under the base DN, new for every decoy bind so that no entry, and
    /// no lockout counter, can ever be made to answer to it.
    fn decoy_dn(&self) -> String {
        format!(
            "CN=sspr-decoy-{},{}",
            uuid::Uuid::new_v4().simple(),
            self.base_dn
        )
    }

    /// Binds on a fresh connection to `dc`; the password check as AD answers it.
    async fn bind_at(
        dc: &Dc,
        dn: &str,
        password: &str,
    ) -> Result<Result<PasswordCheck, DirectoryError>, DirectoryError> {
        let mut ldap = dc
            .connect_unpooled()
            .await
            .inspect_err(metrics::directory_error)?;
        let url = dc.url();
        let started = Instant::now();
        let outcome = ldap
            .simple_bind(dn, password)
            .await
            .map_err(|e| from_ldap(url, e))
            .and_then(|result| match result.rc {
                0 => Ok(PasswordCheck::Valid),
                49 => Ok(codec::password_check(codec::bind_data_code(&result.text))),
                _ => Err(from_result(&result)),
            });
        metrics::directory_operation(url, "bind", started, &outcome);
        let _ = ldap.unbind().await;
        Ok(outcome)
    }
}

/// The attributes a DC keeps of an account's wrong passwords.
const BAD_PASSWORD_ATTRIBUTES: &[&str] = &["badPwdCount", "badPasswordTime"];

/// Where an operation goes (see [`Balance`]).
#[derive(Clone, Copy, Debug)]
enum Route<'a> {
    /// Work for one account, by its routing key ([`account_key`]).
    Account(&'a str),
    /// Work for no account in particular.
    Any,
}

/// The key an account's work is routed by: its sAMAccountName in lower case. A lookup by
/// userPrincipalName or mail uses the part before the `@`, which in most domains is the same
/// name, so the lookup goes to the DC the rest of the flow will use.
fn account_key(login: &str) -> String {
    let name = login.split_once('@').map_or(login, |(name, _)| name);
    name.trim().to_lowercase()
}

/// Rendezvous (highest random weight) hashing: the DC with the highest score is the account's
/// home. SHA-256 so that every instance, on every platform and version, computes the same.
fn rendezvous_score(key: &str, url: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(url.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn combine(mut failures: Vec<DirectoryError>) -> DirectoryError {
    match failures.len() {
        0 => DirectoryError::Unavailable {
            detail: "no domain controller is configured".to_owned(),
        },
        1 => failures.remove(0),
        _ => DirectoryError::Unavailable {
            detail: failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        if id.is_empty() {
            return Ok(None);
        }
        let filter = codec::user_filter(&self.user_filter, id, or_mail);
        let key = account_key(id);
        // Size limit 2: enough to tell one match from several. More than two ends the search
        // with sizeLimitExceeded (rc 4), which means the same.
        let entries = match self
            .search(
                Route::Account(&key),
                &self.base_dn,
                Scope::Subtree,
                &filter,
                codec::USER_ATTRIBUTES,
                2,
            )
            .await
        {
            Err(DirectoryError::Other { rc: 4, .. }) => return Ok(None),
            other => other?,
        };
        let [entry] = entries.as_slice() else {
            // Several accounts answer to this id (one's sAMAccountName is another's UPN or mail):
            // acting on either could hit the wrong person, so none is found.
            return Ok(None);
        };
        Ok(codec::directory_user(entry))
    }

    async fn users(&self, group_dn: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let filter = codec::enabled_users_filter(&self.user_filter, group_dn);
        let (mut conn, dc) = self.checkout(Route::Any).await?;
        let started = Instant::now();
        let read = async {
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(PAGE_SIZE)),
            ];
            let mut stream = conn
                .with_timeout(self.timeout)
                .streaming_search_with(
                    adapters,
                    &self.base_dn,
                    Scope::Subtree,
                    &filter,
                    codec::USER_ATTRIBUTES.to_vec(),
                )
                .await?;
            let mut users = Vec::new();
            while let Some(entry) = stream.next().await? {
                let entry = SearchEntry::construct(entry);
                match codec::directory_user(&entry) {
                    Some(user) => users.push(user),
                    None => tracing::warn!(dn = %entry.dn, "an account without objectGUID or sAMAccountName; skipped"),
                }
            }
            stream.finish().await.success()?;
            Ok(users)
        }
        .await
        .map_err(|e| from_ldap(dc.url(), e));
        metrics::directory_operation(dc.url(), "search", started, &read);
        match read {
            Ok(users) => Ok(users),
            Err(e) => {
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
    }

    async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError> {
        // The DC walks the nesting; the user's own entry comes back only if it matches.
        let filter = codec::member_of_filter(group_dn);
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(
                Route::Account(&key),
                &user.dn,
                Scope::Base,
                &filter,
                &["1.1"],
                1,
            )
            .await?;
        Ok(entries.len() == 1)
    }

    async fn manager(&self, user: &DirectoryUser) -> Result<Option<ManagerLink>, DirectoryError> {
        // msDS-ReplValueMetaData is constructed: a DC returns it only when asked by name, on a
        // base-scope read.
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(
                Route::Account(&key),
                &user.dn,
                Scope::Base,
                "(objectClass=*)",
                &["manager", "msDS-ReplValueMetaData"],
                1,
            )
            .await?;
        let Some(dn) = entries
            .first()
            .and_then(|e| codec::first(e, "manager"))
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let changed_at_ms = entries
            .first()
            .and_then(|e| codec::value_changed_at_ms(e, "manager", &dn));
        let found = self
            .search(
                Route::Account(&key),
                &dn,
                Scope::Base,
                &self.user_filter,
                codec::USER_ATTRIBUTES,
                1,
            )
            .await;
        let user = match found {
            // noSuchObject: the manager's entry is gone (or moved) since the link was set.
            Err(DirectoryError::Other { rc: 32, .. }) => None,
            other => other?.first().and_then(codec::directory_user),
        };
        Ok(Some(ManagerLink {
            dn,
            changed_at_ms,
            user,
        }))
    }

    async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        // tokenGroups is constructed per object: AD computes it only on a base-scope read.
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(
                Route::Account(&key),
                &user.dn,
                Scope::Base,
                "(objectClass=*)",
                &["tokenGroups"],
                1,
            )
            .await?;
        let Some(entry) = entries.first() else {
            return Ok(Vec::new());
        };
        Ok(codec::binary_values(entry, "tokenGroups")
            .into_iter()
            .filter_map(|bytes| {
                let sid = codec::sid_string(bytes);
                if sid.is_none() {
                    tracing::warn!(dn = %user.dn, "tokenGroups holds a malformed SID; skipped");
                }
                sid
            })
            .collect())
    }

    async fn check_password(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<PasswordCheck, DirectoryError> {
        // An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2), which
        // succeeds without proving anything.
        if password.expose_secret().is_empty() {
            return Ok(PasswordCheck::Wrong);
        }
        let key = account_key(&user.sam_account_name);
        let mut failures = Vec::new();
        for dc in self.candidates(Route::Account(&key)) {
            let mut ldap = match dc.connect_unpooled().await {
                Ok(ldap) => ldap,
                Err(e) => {
                    metrics::directory_error(&e);
                    failures.push(e);
                    continue;
                }
            };
            let url = dc.url();
            let started = Instant::now();
            let outcome = ldap
                .simple_bind(&user.dn, password.expose_secret())
                .await
                .map_err(|e| from_ldap(url, e))
                .and_then(|result| match result.rc {
                    0 => Ok(PasswordCheck::Valid),
                    49 => Ok(codec::password_check(codec::bind_data_code(&result.text))),
                    _ => Err(from_result(&result)),
                });
            metrics::directory_operation(url, "bind", started, &outcome);
            let _ = ldap.unbind().await;
            return outcome;
        }
        Err(combine(failures))
    }

    async fn check_password_guarded(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<GuardedCheck, DirectoryError> {
        let policy = self.password_policy(user).await?;
        let key = account_key(&user.sam_account_name);
        let mut failures = Vec::new();
        // The count is read, and the bind made, on the same DC: another DC's count says nothing
        // about what this bind would do.
        for dc in self.candidates(Route::Account(&key)) {
            let bad = match self.read_at(dc, &user.dn, BAD_PASSWORD_ATTRIBUTES).await {
                Ok(entry) => entry.map_or_else(BadPasswords::default, |e| BadPasswords {
                    count: u32::try_from(codec::first_int(&e, "badPwdCount")).unwrap_or(0),
                    last_at: codec::first_int(&e, "badPasswordTime"),
                }),
                Err(e) => {
                    metrics::directory_error(&e);
                    failures.push(e);
                    continue;
                }
            };
            // An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2), which
            // succeeds without proving anything: it gets the decoy's bind.
            let allowed = may_bind(bad, &policy) && !password.expose_secret().is_empty();
            let outcome = if allowed {
                Self::bind_at(dc, &user.dn, password.expose_secret()).await
            } else {
                let decoy = uuid::Uuid::new_v4().to_string();
                Self::bind_at(dc, &self.decoy_dn(), &decoy).await
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            return match (allowed, password.expose_secret().is_empty()) {
                (true, _) => outcome.map(GuardedCheck::Checked),
                (false, true) => outcome.map(|_| GuardedCheck::Checked(PasswordCheck::Wrong)),
                (false, false) => outcome.map(|_| GuardedCheck::Refused),
            };
        }
        Err(combine(failures))
    }

    async fn decoy_password_check(&self, login: &str) -> Result<(), DirectoryError> {
        let key = account_key(login);
        let mut failures = Vec::new();
        for dc in self.candidates(Route::Account(&key)) {
            // The read a real account's check makes, of an entry every domain has, so the DC
            // does comparable work.
            if let Err(e) = self
                .read_at(dc, &self.base_dn, BAD_PASSWORD_ATTRIBUTES)
                .await
            {
                metrics::directory_error(&e);
                failures.push(e);
                continue;
            }
            let decoy = uuid::Uuid::new_v4().to_string();
            return match Self::bind_at(dc, &self.decoy_dn(), &decoy).await {
                Ok(outcome) => outcome.map(|_| ()),
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
        }
        Err(combine(failures))
    }

    async fn write_account(
        &self,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, DirectoryError> {
        // One modify, so the password, the lockout and the must-change flag apply together or not
        // at all. unicodePwd goes first: writing it sets pwdLastSet, which a later pwdLastSet=0
        // then overrides.
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::with_capacity(3);
        if let Some(password) = change.new_password {
            let value = codec::unicode_pwd_value(password.expose_secret());
            mods.push(Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value])));
        }
        if change.must_change {
            mods.push(Mod::Replace(
                b"pwdLastSet".to_vec(),
                HashSet::from([b"0".to_vec()]),
            ));
        }
        if change.unlock {
            mods.push(Mod::Replace(
                b"lockoutTime".to_vec(),
                HashSet::from([b"0".to_vec()]),
            ));
        }
        let key = account_key(&user.sam_account_name);
        let route = Route::Account(&key);
        let (mut conn, dc) = self.checkout(route).await?;
        if mods.is_empty() {
            return Ok(DcId(dc.url().to_owned()));
        }
        if change.new_password.is_some() && self.policy_hints != PolicyHints::Off {
            match dc.policy_hints(&mut conn).await? {
                Some(oid) => {
                    conn.with_controls(codec::policy_hints_control(oid));
                }
                None if self.policy_hints == PolicyHints::Required => {
                    return Err(DirectoryError::PolicyHintsUnsupported {
                        url: dc.url().to_owned(),
                    });
                }
                None => {}
            }
        }
        let started = Instant::now();
        let result = conn
            .with_timeout(self.timeout)
            .modify(&user.dn, mods)
            .await
            .map_err(|e| from_ldap_write(dc.url(), e))
            .and_then(|r| {
                if r.rc == 0 {
                    Ok(())
                } else {
                    Err(from_result(&r))
                }
            });
        metrics::directory_operation(dc.url(), "modify", started, &result);
        match result {
            Ok(()) => {
                self.remember_write(route, dc);
                Ok(DcId(dc.url().to_owned()))
            }
            Err(e) => {
                if matches!(e, DirectoryError::WriteUnconfirmed { .. }) {
                    // It may be there: the account's work stays with this DC, as after a write.
                    self.remember_write(route, dc);
                }
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
    }

    async fn password_policy(
        &self,
        user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        let Some(pso) = &user.resultant_pso else {
            return self.domain_password_policy().await;
        };
        let key = pso.to_lowercase();
        if let Some(policy) = self.cached_policy(&key) {
            return Ok(policy);
        }
        let policy = match self.read_pso(pso).await? {
            Some(policy) => policy,
            None => {
                // The DC still enforces the PSO; only the checks in advance are less exact.
                tracing::warn!(
                    pso = %pso,
                    "cannot read this fine-grained password policy; checking new passwords \
                     against the domain policy instead (give the service account read access \
                     to the Password Settings Container)"
                );
                self.domain_password_policy().await?
            }
        };
        self.remember_policy(key, &policy);
        Ok(policy)
    }

    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        if let Some(policy) = self.cached_policy(DOMAIN_POLICY) {
            return Ok(policy);
        }
        let head = self.naming_context().await?;
        let entries = self
            .search(
                Route::Any,
                head,
                Scope::Base,
                "(objectClass=*)",
                codec::DOMAIN_POLICY_ATTRIBUTES,
                1,
            )
            .await?;
        let policy = entries
            .first()
            .and_then(codec::domain_password_policy)
            .ok_or_else(|| DirectoryError::InsufficientRights {
                detail: format!("cannot read the password policy (minPwdLength …) of {head}"),
            })?;
        self.remember_policy(DOMAIN_POLICY.to_owned(), &policy);
        Ok(policy)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DcEndpoint;

    fn directory(urls: &[&str], balance: Balance) -> LdapDirectory {
        let config = DirectoryConfig {
            urls: Vec::new(),
            starttls: false,
            endpoints: urls
                .iter()
                .map(|u| DcEndpoint::parse(u, false).expect("ldaps URL"))
                .collect(),
            ca_file: None,
            base_dn: "DC=example,DC=test".to_owned(),
            bind_dn: "CN=svc,DC=example,DC=test".to_owned(),
            bind_password: SecretString::from("unused"),
            bind_password_file: None,
            never_reset: Vec::new(),
            self_test_user: None,
            user_filter: "(objectClass=user)".to_owned(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            pool_size: 1,
            retry_down_after: Duration::from_secs(30),
            policy_hints: PolicyHints::Auto,
            balance,
            write_affinity: Duration::from_secs(900),
        };
        LdapDirectory::new(&config).expect("no CA file to read")
    }

    const THREE: [&str; 3] = [
        "ldaps://dc1.example.test",
        "ldaps://dc2.example.test",
        "ldaps://dc3.example.test",
    ];

    fn first(d: &LdapDirectory, route: Route<'_>) -> String {
        d.candidates(route)[0].url().to_owned()
    }

    fn home_counts(d: &LdapDirectory) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for n in 0..3000 {
            let key = format!("user{n}");
            *counts.entry(first(d, Route::Account(&key))).or_default() += 1;
        }
        counts
    }

    #[test]
    fn an_account_always_goes_to_the_same_dc_and_accounts_spread_evenly() {
        let d = directory(&THREE, Balance::ByUser);
        let home = first(&d, Route::Account("alice"));
        for _ in 0..10 {
            assert_eq!(first(&d, Route::Account("alice")), home);
        }
        // Another instance with the DCs listed in another order agrees.
        let mut reversed = THREE;
        reversed.reverse();
        assert_eq!(
            first(
                &directory(&reversed, Balance::ByUser),
                Route::Account("alice")
            ),
            home
        );
        let counts = home_counts(&d);
        assert_eq!(counts.len(), 3, "{counts:?}");
        for (dc, n) in counts {
            assert!((800..1200).contains(&n), "{dc} is home to {n} of 3000");
        }
    }

    #[test]
    fn a_login_by_upn_or_mail_routes_like_the_account_name() {
        assert_eq!(account_key("Alice@Example.test"), account_key("alice"));
        assert_eq!(account_key(" ALICE "), "alice");
        let d = directory(&THREE, Balance::ByUser);
        for n in 0..50 {
            let name = format!("user{n}");
            assert_eq!(
                first(
                    &d,
                    Route::Account(&account_key(&format!("{name}@example.test")))
                ),
                first(&d, Route::Account(&account_key(&name)))
            );
        }
    }

    #[test]
    fn losing_a_dc_moves_only_the_accounts_homed_on_it() {
        let d = directory(&THREE, Balance::ByUser);
        let before: Vec<String> = (0..300)
            .map(|n| first(&d, Route::Account(&format!("user{n}"))))
            .collect();
        d.dcs[1].set_down(true);
        for (n, was) in before.iter().enumerate() {
            let now = first(&d, Route::Account(&format!("user{n}")));
            if was == THREE[1] {
                assert_ne!(now, THREE[1], "user{n} still sent to the DC that is down");
            } else {
                assert_eq!(&now, was, "user{n} moved although its DC is up");
            }
        }
        // The DC that is down is still tried, last, in case it is the only one left.
        assert_eq!(d.candidates(Route::Account("user1")).len(), 3);
        assert_eq!(d.candidates(Route::Account("user1"))[2].url(), THREE[1]);
        d.dcs[1].set_down(false);
        let back: Vec<String> = (0..300)
            .map(|n| first(&d, Route::Account(&format!("user{n}"))))
            .collect();
        assert_eq!(
            back, before,
            "accounts return to their home DC when it is back"
        );
    }

    #[test]
    fn work_for_no_account_takes_turns() {
        let d = directory(&THREE, Balance::ByUser);
        let turns: HashSet<String> = (0..3).map(|_| first(&d, Route::Any)).collect();
        assert_eq!(turns.len(), 3);
    }

    #[test]
    fn in_order_sends_everything_to_the_first_dc_that_answers() {
        let d = directory(&THREE, Balance::InOrder);
        for n in 0..20 {
            assert_eq!(first(&d, Route::Account(&format!("user{n}"))), THREE[0]);
            assert_eq!(first(&d, Route::Any), THREE[0]);
        }
        d.dcs[0].set_down(true);
        assert_eq!(first(&d, Route::Any), THREE[1]);
    }

    #[test]
    fn after_a_failover_write_the_account_stays_on_the_dc_that_took_it() {
        let d = directory(&THREE, Balance::ByUser);
        let key = "bob";
        let home = d.preference(Route::Account(key))[0];
        let other = (home + 1) % 3;
        // The home DC was down, so the write went elsewhere; the home DC is back now.
        d.remember_write(Route::Account(key), &d.dcs[other]);
        assert_eq!(first(&d, Route::Account(key)), d.dcs[other].url());
        // Unless that DC is down now.
        d.dcs[other].set_down(true);
        assert_eq!(first(&d, Route::Account(key)), d.dcs[home].url());
        d.dcs[other].set_down(false);
        // A later write at home ends the exception.
        d.remember_write(Route::Account(key), &d.dcs[home]);
        assert_eq!(first(&d, Route::Account(key)), d.dcs[home].url());
        assert!(d.written_elsewhere.lock().unwrap().is_empty());
    }
}
