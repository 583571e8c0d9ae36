//! Active Directory over LDAPS: the pool, user lookup, group membership, `unicodePwd` writes and
//! error mapping.
//! Implements [`crate::domain::directory::Directory`].

pub mod codec;
mod errors;
mod pool;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Mod, Scope, SearchEntry, SearchOptions};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{DirectoryConfig, PolicyHints};
use crate::domain::directory::{
    AccountChange, DcHealth, DcId, DcStatus, Directory, DirectoryError, DirectoryUser,
    PasswordCheck,
};
use crate::domain::policy::PasswordPolicy;
use crate::metrics;
use errors::{from_ldap, from_result};
use pool::{Connector, Dc, PooledLdap};

pub struct LdapDirectory {
    dcs: Vec<Dc>,
    base_dn: String,
    user_filter: String,
    timeout: std::time::Duration,
    policy_hints: PolicyHints,
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

    /// DCs in the order to try them: configured order, those that recently failed last.
    fn candidates(&self) -> impl Iterator<Item = &Dc> {
        let now = Instant::now();
        let (up, down): (Vec<&Dc>, Vec<&Dc>) = self.dcs.iter().partition(|dc| !dc.is_down(now));
        up.into_iter().chain(down)
    }

    /// A pooled service connection from the first DC that gives one; each that fails is skipped.
    async fn checkout(&self) -> Result<(PooledLdap, &Dc), DirectoryError> {
        let mut failures = Vec::new();
        for dc in self.candidates() {
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
        if matches!(error, DirectoryError::Unavailable { .. }) {
            let _ = PooledLdap::take(conn);
        }
    }

    /// One search on a pooled service connection; the entries, without referrals. A connection
    /// that broke during it is not returned to the pool.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (mut conn, dc) = self.checkout().await?;
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
        // Size limit 2: enough to tell one match from several. More than two ends the search
        // with sizeLimitExceeded (rc 4), which means the same.
        let entries = match self
            .search(
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
        let (mut conn, dc) = self.checkout().await?;
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
        let entries = self
            .search(&user.dn, Scope::Base, &filter, &["1.1"], 1)
            .await?;
        Ok(entries.len() == 1)
    }

    async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        // tokenGroups is constructed per object: AD computes it only on a base-scope read.
        let entries = self
            .search(
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
        let mut failures = Vec::new();
        for dc in self.candidates() {
            let mut ldap = match dc.connector.connect().await {
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
        let (mut conn, dc) = self.checkout().await?;
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
            .map_err(|e| from_ldap(dc.url(), e))
            .and_then(|r| {
                if r.rc == 0 {
                    Ok(())
                } else {
                    Err(from_result(&r))
                }
            });
        metrics::directory_operation(dc.url(), "modify", started, &result);
        match result {
            Ok(()) => Ok(DcId(dc.url().to_owned())),
            Err(e) => {
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
