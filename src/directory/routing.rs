//! Which DC an operation goes to (rendezvous hashing by account, round-robin, failover and
//! write affinity), checking out a pooled connection there, and the search and read helpers
//! that run on it.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ldap3::{Scope, SearchEntry, SearchOptions};
use sha2::{Digest, Sha256};

use super::LdapDirectory;
use super::errors::from_ldap;
use super::pool::{Dc, PooledLdap};
use crate::config::Balance;
use crate::domain::directory::DirectoryError;
use crate::metrics;

/// Where an operation goes (see [`Balance`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum Route<'a> {
    /// Work for one account, by its routing key ([`account_key`]).
    Account(&'a str),
    /// Work for no account in particular.
    Any,
}

/// The key an account's work is routed by: its sAMAccountName in lower case. A lookup by
/// userPrincipalName or mail uses the part before the `@`, which in most domains is the same
/// name, so the lookup goes to the DC the rest of the flow will use.
pub(super) fn account_key(login: &str) -> String {
    let name = login.split_once('@').map_or(login, |(name, _)| name);
    name.trim().to_lowercase()
}

/// Rendezvous (highest random weight) hashing: the DC with the highest score is the account's
/// home. SHA-256 so that every instance, on every platform and version, computes the same.
pub(super) fn rendezvous_score(key: &str, url: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(url.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

pub(super) fn combine(mut failures: Vec<DirectoryError>) -> DirectoryError {
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

impl LdapDirectory {
    /// The DCs in the order `route` should try them, ignoring which are down: the account's
    /// home DC first (by rendezvous hashing, so adding or losing a DC moves only the accounts
    /// homed on it), or the next turn round-robin, or the configured order.
    pub(super) fn preference(&self, route: Route<'_>) -> Vec<usize> {
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
    pub(super) fn wrote_elsewhere(&self, key: &str) -> Option<usize> {
        let written = self.written_elsewhere.lock().expect("not poisoned");
        written
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.write_affinity)
            .map(|(dc, _)| *dc)
    }

    /// Remembers where an account's write went when that is not where its work usually goes.
    pub(super) fn remember_write(&self, route: Route<'_>, dc: &Dc) {
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
    pub(super) fn candidates(&self, route: Route<'_>) -> Vec<&Dc> {
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
    pub(super) async fn checkout(
        &self,
        route: Route<'_>,
    ) -> Result<(PooledLdap, &Dc), DirectoryError> {
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
    pub(super) fn discard_if_broken(conn: PooledLdap, error: &DirectoryError) {
        if matches!(
            error,
            DirectoryError::Unavailable { .. } | DirectoryError::WriteUnconfirmed { .. }
        ) {
            let _ = PooledLdap::take(conn);
        }
    }

    /// One search on a pooled service connection; the entries, without referrals. A connection
    /// that broke during it is not returned to the pool.
    pub(super) async fn search(
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
    pub(super) async fn read_at(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use secrecy::SecretString;

    use crate::config::{DcEndpoint, DirectoryConfig, PolicyHints};

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
            policy_cache: Duration::from_secs(5),
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
