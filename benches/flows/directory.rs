//! The DC as the bench sees it, with ldap3 alone: creating and deleting the test users as
//! Administrator, and the raw limit, `unicodePwd` replaces on pooled connections bound as the
//! service account (the account and the rights the service itself uses).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod};
use rustls::ClientConfig;
use sspr_bridge::directory::codec::unicode_pwd_value;
use sspr_bridge::tls::client_config;

use crate::load::{Run, closed_loop};

#[derive(Clone)]
pub struct Dc {
    pub url: String,
    tls: Arc<ClientConfig>,
    /// Where the users go: the container the service account's delegation covers.
    pub users_dn: String,
    realm: String,
    admin: (String, String),
    service: (String, String),
}

impl Dc {
    pub fn new(
        url: &str,
        ca_file: &std::path::Path,
        base_dn: &str,
        users_dn: &str,
        admin: (String, String),
        service: (String, String),
    ) -> Result<Self, String> {
        let tls = client_config(Some(ca_file))?;
        let realm = base_dn
            .split(',')
            .filter_map(|rdn| rdn.trim().strip_prefix("DC="))
            .collect::<Vec<_>>()
            .join(".");
        Ok(Self {
            url: url.to_owned(),
            tls,
            users_dn: users_dn.to_owned(),
            realm,
            admin,
            service,
        })
    }

    pub fn user_dn(&self, sam: &str) -> String {
        format!("CN={sam},{}", self.users_dn)
    }

    async fn bound(&self, (dn, password): &(String, String)) -> Result<Ldap, String> {
        let settings = LdapConnSettings::new().set_config(Arc::clone(&self.tls));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| format!("LDAPS connection to {}: {e}", self.url))?;
        ldap3::drive!(conn);
        ldap.simple_bind(dn, password)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| format!("bind as {dn}: {e}"))?;
        Ok(ldap)
    }

    /// Creates enabled users with the given password, `concurrency` adds at a time (each a DC
    /// write: the DC hashes the password into its Kerberos keys); `ad_mail[i]`: the user gets a
    /// `mail` ([`crate::client::mail_of`]).
    pub async fn create_users(
        &self,
        names: &[String],
        ad_mail: &[bool],
        password: &str,
        concurrency: usize,
    ) -> Result<(), String> {
        let names = Arc::new(names.to_vec());
        let ad_mail = Arc::new(ad_mail.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (dc, names, next) = (self.clone(), names.clone(), next.clone());
            let ad_mail = ad_mail.clone();
            let password = password.to_owned();
            workers.spawn(async move {
                let mut ldap = dc.bound(&dc.admin).await?;
                let set = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(sam) = names.get(i) else { break };
                    let mut attrs = vec![
                        (b"objectClass".to_vec(), set("user")),
                        (b"sAMAccountName".to_vec(), set(sam)),
                        (
                            b"userPrincipalName".to_vec(),
                            set(&format!("{sam}@{}", dc.realm)),
                        ),
                        (
                            b"unicodePwd".to_vec(),
                            HashSet::from([unicode_pwd_value(&password)]),
                        ),
                        // NORMAL_ACCOUNT, enabled.
                        (b"userAccountControl".to_vec(), set("512")),
                    ];
                    if ad_mail.get(i).copied().unwrap_or(false) {
                        attrs.push((b"mail".to_vec(), set(&crate::client::mail_of(sam))));
                    }
                    ldap.add(&dc.user_dn(sam), attrs)
                        .await
                        .and_then(LdapResult::success)
                        .map_err(|e| format!("create {sam}: {e}"))?;
                }
                let _ = ldap.unbind().await;
                Ok::<_, String>(())
            });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    /// Deletes the users; ones already gone are fine.
    pub async fn delete_users(&self, names: &[String], concurrency: usize) -> Result<(), String> {
        let names = Arc::new(names.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (dc, names, next) = (self.clone(), names.clone(), next.clone());
            workers.spawn(async move {
                let mut ldap = dc.bound(&dc.admin).await?;
                while let Some(sam) = names.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = ldap
                        .delete(&dc.user_dn(sam))
                        .await
                        .map_err(|e| e.to_string())?;
                    if result.rc != 0 && result.rc != 32 {
                        return Err(format!("delete {sam}: {result}"));
                    }
                }
                let _ = ldap.unbind().await;
                Ok::<_, String>(())
            });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    /// The raw limit: `concurrency` connections bound as the service account, each writing a
    /// reset of the next user (round robin) for `duration`: `unicodePwd` replaced with a new
    /// password and, with `unlock`, `lockoutTime = 0` in the same modify, which is what the
    /// service writes by default (`reset.unlock_on_reset = true`).
    pub async fn raw_replaces(
        &self,
        names: &[String],
        concurrency: usize,
        duration: Duration,
        unlock: bool,
    ) -> Result<Run, String> {
        let mut pool = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            pool.push(self.bound(&self.service).await?);
        }
        let dns: Arc<Vec<String>> = Arc::new(names.iter().map(|n| self.user_dn(n)).collect());
        let next = Arc::new(AtomicUsize::new(rand::random::<u16>() as usize));
        let pool = Arc::new(pool);
        let run = closed_loop(concurrency, duration, {
            let pool = pool.clone();
            move |worker| {
                let mut ldap = pool[worker].clone();
                let i = next.fetch_add(1, Ordering::Relaxed);
                let dn = dns[i % dns.len()].clone();
                async move {
                    let value = unicode_pwd_value(&crate::new_password());
                    let mut mods =
                        vec![Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value]))];
                    if unlock {
                        mods.push(Mod::Replace(
                            b"lockoutTime".to_vec(),
                            HashSet::from([b"0".to_vec()]),
                        ));
                    }
                    let t = Instant::now();
                    let result = ldap
                        .modify(&dn, mods)
                        .await
                        .and_then(LdapResult::success)
                        .map_err(|e| format!("replace unicodePwd of {dn}: {e}"));
                    Some(result.map(|_| vec![t.elapsed()]))
                }
            }
        })
        .await;
        for ldap in pool.iter() {
            let _ = ldap.clone().unbind().await;
        }
        Ok(run)
    }
}
