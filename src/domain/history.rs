//! A password history kept by the service, for directories that do not hold a reset to AD's own
//! (no LDAP_SERVER_POLICY_HINTS: Samba, Windows before 2012 R2). AD applies its history to a
//! user's *change* everywhere, but to an administrative reset — what this service writes — only
//! with that control; without it a user could reset straight back to the password they had.
//!
//! Kept are the last N passwords this service wrote for an account (N = the history length of
//! the policy that applies to the user, a PSO's or the domain's), each only as a keyed Argon2id
//! hash ([`Keys::password_history_hash`]), never the password. Passwords set elsewhere (Ctrl+Alt+Del,
//! other tools) are not known here, and the history starts empty.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::clock::Clock;
use super::directory::{Directory, DirectoryUser};
use super::error::FlowError;
use super::policy::{PasswordPolicy, Violation};
use super::secrets::Keys;
use super::store::{PasswordHistoryStore, StoreError};

/// The local password history: checks a new password against the last ones and remembers each
/// password the service writes.
#[derive(Clone)]
pub struct PasswordHistory {
    store: Arc<dyn PasswordHistoryStore>,
    directory: Arc<dyn Directory>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
}

/// What [`PasswordHistory::check_against`] found, to be remembered once the password is written
/// without hashing it a second time.
pub struct Checked {
    user: super::ObjectGuid,
    keeping: Keeping,
    /// The password is one of the last ones this service wrote.
    pub reused: Option<Violation>,
}

/// What is to be kept of a password once written.
enum Keeping {
    /// The directory applies its own history: nothing.
    NotHere,
    /// The policy keeps no history: nothing, and what was kept goes.
    Nothing,
    /// Its hash, as the newest of `keep`.
    Hash {
        hash: Zeroizing<[u8; 32]>,
        keep: u32,
    },
}

impl PasswordHistory {
    pub fn new(
        store: Arc<dyn PasswordHistoryStore>,
        directory: Arc<dyn Directory>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            directory,
            keys,
            clock,
        }
    }

    /// Whether the service keeps the history itself: the directory will not apply it to a reset.
    /// Either way a reset is held to a history, so the password page may list that rule.
    pub async fn kept_here(&self) -> bool {
        !self.directory.enforces_password_history().await
    }

    /// The rule `password` breaks by being one of the user's last passwords written here, if it
    /// is.
    pub async fn check(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<Option<Violation>, FlowError> {
        let policy = self.directory.password_policy(user).await?;
        Ok(self.check_against(user, &policy, password).await?.reused)
    }

    /// [`Self::check`] under `policy`, already read; the result goes to
    /// [`Self::remember_checked`] after the write.
    pub async fn check_against(
        &self,
        user: &DirectoryUser,
        policy: &PasswordPolicy,
        password: &SecretString,
    ) -> Result<Checked, StoreError> {
        let keep = policy.history_length;
        let user_guid = user.guid;
        if !self.kept_here().await {
            return Ok(Checked {
                user: user_guid,
                keeping: Keeping::NotHere,
                reused: None,
            });
        }
        if keep == 0 {
            return Ok(Checked {
                user: user_guid,
                keeping: Keeping::Nothing,
                reused: None,
            });
        }
        let (hash, remembered) = tokio::join!(
            self.hash(user, password),
            self.store.password_hashes(&user.guid, keep)
        );
        // Every stored hash is compared, in constant time, whichever matches.
        let reused = remembered?
            .iter()
            .fold(subtle::Choice::from(0), |found, stored| {
                found | stored.as_slice().ct_eq(hash.as_slice())
            });
        Ok(Checked {
            user: user_guid,
            keeping: Keeping::Hash { hash, keep },
            reused: bool::from(reused).then_some(Violation::Reused { history: keep }),
        })
    }

    /// Remembers a password the service wrote for `user` (after a change or a helpdesk reset).
    pub async fn remember(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<(), FlowError> {
        if !self.kept_here().await {
            return Ok(());
        }
        let keep = self.directory.password_policy(user).await?.history_length;
        let keeping = match keep {
            0 => Keeping::Nothing,
            _ => Keeping::Hash {
                hash: self.hash(user, password).await,
                keep,
            },
        };
        self.save(user.guid, keeping).await?;
        Ok(())
    }

    /// Remembers the password [`Self::check_against`] hashed, now that it is written.
    pub async fn remember_checked(&self, checked: Checked) -> Result<(), StoreError> {
        self.save(checked.user, checked.keeping).await
    }

    async fn save(&self, user: super::ObjectGuid, keeping: Keeping) -> Result<(), StoreError> {
        match keeping {
            Keeping::NotHere => Ok(()),
            Keeping::Nothing => self.store.forget_passwords(&user).await,
            Keeping::Hash { hash, keep } => {
                self.store
                    .remember_password(&user, hash.as_slice(), self.clock.now(), keep)
                    .await
            }
        }
    }

    /// The keyed hash of `password` for `user`, on a blocking thread (tens of ms of CPU).
    async fn hash(&self, user: &DirectoryUser, password: &SecretString) -> Zeroizing<[u8; 32]> {
        let keys = self.keys.clone();
        let subject = user.guid.0.into_bytes();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            keys.password_history_hash(&subject, password.expose_secret())
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}
