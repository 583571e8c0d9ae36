//! Active Directory over LDAPS: the pool, user lookup, `unicodePwd` writes and error mapping.
//! Implements [`crate::domain::directory::Directory`].

pub mod codec;
mod errors;
mod pool;
pub mod tls;

use std::collections::HashSet;
use std::time::Instant;

use async_trait::async_trait;
use ldap3::{Mod, Scope, SearchEntry, SearchOptions};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{DirectoryConfig, PolicyHints};
use crate::domain::directory::{
    AccountChange, DcHealth, DcId, DcStatus, Directory, DirectoryError, DirectoryUser,
    PasswordCheck,
};
use errors::{from_ldap, from_result};
use pool::{Connector, Dc, PooledLdap};

pub struct LdapDirectory {
    dcs: Vec<Dc>,
    base_dn: String,
    user_filter: String,
    timeout: std::time::Duration,
    policy_hints: PolicyHints,
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
        })
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

    async fn search_user(
        &self,
        conn: &mut PooledLdap,
        url: &str,
        login: &str,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        let filter = codec::user_filter(&self.user_filter, login);
        let (entries, _) = conn
            .with_search_options(SearchOptions::new().sizelimit(2))
            .with_timeout(self.timeout)
            .search(
                &self.base_dn,
                Scope::Subtree,
                &filter,
                codec::USER_ATTRIBUTES,
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| from_ldap(url, e))?;
        let mut users = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct);
        let (Some(entry), None) = (users.next(), users.next()) else {
            // Two accounts answer to this login (one's sAMAccountName is another's UPN): acting on
            // either could hit the wrong person, so neither is found.
            return Ok(None);
        };
        Ok(codec::directory_user(&entry))
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
    async fn find_user(&self, login: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        if login.is_empty() {
            return Ok(None);
        }
        let (mut conn, dc) = self.checkout().await?;
        let result = self.search_user(&mut conn, dc.url(), login).await;
        if let Err(e) = &result {
            Self::discard_if_broken(conn, e);
        }
        result
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
                    failures.push(e);
                    continue;
                }
            };
            let url = dc.url();
            let outcome = ldap
                .simple_bind(&user.dn, password.expose_secret())
                .await
                .map_err(|e| from_ldap(url, e))
                .and_then(|result| match result.rc {
                    0 => Ok(PasswordCheck::Valid),
                    49 => Ok(codec::password_check(codec::bind_data_code(&result.text))),
                    _ => Err(from_result(&result)),
                });
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
        match result {
            Ok(()) => Ok(DcId(dc.url().to_owned())),
            Err(e) => {
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
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
