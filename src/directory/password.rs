//! Password binds (plain, guarded against lockout, and decoy) and the `unicodePwd` write that
//! also unlocks and sets must-change.

use std::collections::HashSet;
use std::time::Instant;

use ldap3::Mod;
use secrecy::{ExposeSecret, SecretString};

use super::errors::{from_ldap, from_ldap_write, from_result};
use super::pool::{Dc, PooledLdap};
use super::routing::{Route, account_key, combine};
use super::{LdapDirectory, codec};
use crate::config::PolicyHints;
use crate::domain::directory::{
    AccountChange, BadPasswords, BindGuard, DcId, DirectoryError, DirectoryUser, GuardedCheck,
    PasswordCheck,
};
use crate::metrics;

/// The attributes a DC keeps of an account's wrong passwords.
pub(super) const BAD_PASSWORD_ATTRIBUTES: &[&str] = &["badPwdCount", "badPasswordTime"];

impl LdapDirectory {
    /// A name no account has, under the base DN, new for every decoy bind so that no entry, and
    /// no lockout counter, can ever be made to answer to it.
    pub(super) fn decoy_dn(&self) -> String {
        format!(
            "CN=sspr-decoy-{},{}",
            uuid::Uuid::new_v4().simple(),
            self.base_dn
        )
    }

    /// Binds on a fresh connection to `dc`; the password check as AD answers it.
    pub(super) async fn bind_at(
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

    pub(super) async fn check_password(
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

    pub(super) async fn check_password_guarded(
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
            let bad = match self.bad_passwords_at(dc, &user.dn).await {
                Ok(bad) => bad,
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

    /// The account's wrong passwords as `dc` counts them.
    async fn bad_passwords_at(&self, dc: &Dc, dn: &str) -> Result<BadPasswords, DirectoryError> {
        let entry = self.read_at(dc, dn, BAD_PASSWORD_ATTRIBUTES).await?;
        Ok(entry.map_or_else(BadPasswords::default, |e| BadPasswords {
            count: u32::try_from(codec::first_int(&e, "badPwdCount")).unwrap_or(0),
            last_at: codec::first_int(&e, "badPasswordTime"),
        }))
    }

    pub(super) async fn decoy_password_check(&self, login: &str) -> Result<(), DirectoryError> {
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

    pub(super) async fn write_account(
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
        self.modify_at(conn, dc, route, &user.dn, mods).await
    }

    /// A password change with the current password: delete its value, add the new one. Unlike a
    /// reset it needs no delegated right (AD grants "Change Password" to everyone) and no policy
    /// hints: AD applies history and minimum age to every change.
    pub(super) async fn change_password(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        may_change: BindGuard<'_>,
    ) -> Result<Option<DcId>, DirectoryError> {
        let policy = self.password_policy(user).await?;
        let key = account_key(&user.sam_account_name);
        let route = Route::Account(&key);
        // The DC that will take the modify, where a wrong current password would count. Its
        // connection goes back to the pool while the count is read on one of its own, so a
        // change never holds two.
        let (conn, dc) = self.checkout(route).await?;
        drop(conn);
        let bad = self
            .bad_passwords_at(dc, &user.dn)
            .await
            .inspect_err(metrics::directory_error)?;
        if !may_change(bad, &policy) {
            return Ok(None);
        }
        let conn = dc.get().await.inspect_err(metrics::directory_error)?;
        let mods = vec![
            Mod::Delete(
                b"unicodePwd".to_vec(),
                HashSet::from([codec::unicode_pwd_value(current.expose_secret())]),
            ),
            Mod::Add(
                b"unicodePwd".to_vec(),
                HashSet::from([codec::unicode_pwd_value(new.expose_secret())]),
            ),
        ];
        self.modify_at(conn, dc, route, &user.dn, mods)
            .await
            .map(Some)
    }

    /// Sends one modify on `conn` (a pooled connection to `dc`) and keeps the account's work on
    /// `dc` when it may have landed.
    async fn modify_at(
        &self,
        mut conn: PooledLdap,
        dc: &Dc,
        route: Route<'_>,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
    ) -> Result<DcId, DirectoryError> {
        let started = Instant::now();
        let result = conn
            .with_timeout(self.timeout)
            .modify(dn, mods)
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
}

impl LdapDirectory {
    /// Whether AD will hold a new password to the domain's password history, so a page may list
    /// that rule: only with policy hints, which every DC that may take the write must support
    /// (Samba 4.17 has none). A DC that cannot be asked counts as one without.
    pub async fn enforces_password_history(&self) -> bool {
        match self.policy_hints {
            PolicyHints::Off => return false,
            // Writes through a DC without them are refused, so any write that lands has them.
            PolicyHints::Required => return true,
            PolicyHints::Auto => {}
        }
        for dc in &self.dcs {
            // A page waits for this: no connect timeout for a DC known to be down.
            if dc.is_down(Instant::now()) {
                return false;
            }
            // Read once per DC; every reset asks, so no pooled connection once it is known.
            let supported = match dc.known_policy_hints() {
                Some(known) => Ok(known),
                None => match dc.get().await {
                    Ok(mut conn) => dc.policy_hints(&mut conn).await,
                    Err(e) => Err(e),
                },
            };
            if !matches!(supported, Ok(Some(_))) {
                return false;
            }
        }
        true
    }
}
