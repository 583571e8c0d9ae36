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
    hashers: Hashers,
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
            hashers: Hashers::new(HASHERS),
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

    /// The keyed hash of `password` for `user`, on one of the history's own threads (tens of ms
    /// of CPU, 19 MiB of memory).
    async fn hash(&self, user: &DirectoryUser, password: &SecretString) -> Zeroizing<[u8; 32]> {
        let keys = self.keys.clone();
        let subject = user.guid.0.into_bytes();
        let password = password.clone();
        self.hashers
            .run(move || {
                MEMORY.with_borrow_mut(|memory| {
                    keys.password_history_hash_in(&subject, password.expose_secret(), memory)
                })
            })
            .await
    }
}

/// How many history hashes run at once, at most.
const HASHERS: usize = 2;

thread_local! {
    /// A hash thread's Argon2 memory: made by its first hash and kept, so no 19 MiB block is
    /// ever freed for glibc to keep in an arena (measured: ~370 MiB kept after a benchmark's
    /// resets when each hash allocated its own).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A few threads of the history's own that run its hashes one after another each. Each hash
/// takes [`super::secrets::HISTORY_KDF`]'s 19 MiB; on the runtime's blocking pool every
/// concurrent reset took its own, and each of its threads kept its 19 MiB in its own malloc
/// arena afterwards (measured: 724 MiB resident at 40 concurrent resets, 458 MiB still after).
/// Here at most [`HASHERS`] hashes hold memory, on at most as many arenas, and the rest queue:
/// two hashes at once already outrun the DC's password writes. The threads end with the last
/// handle.
#[derive(Clone)]
struct Hashers {
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Hashers {
    fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("history-hash-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every handle is gone
                        }
                    }
                })
                .expect("the OS starts a thread");
        }
        Self { jobs }
    }

    /// Runs `work` on one of the threads and waits for its result without blocking the runtime.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
        self.jobs
            .send(job)
            .expect("the history's threads run while a handle exists");
        match result.await.expect("a job always answers") {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_there_are_hashers_and_each_answers_its_caller() {
        let hashers = Hashers::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..6).map(|n| {
            let (running, most) = (running.clone(), most.clone());
            hashers.run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
                n * 10
            })
        });
        let answers = futures::future::join_all(jobs).await;
        assert_eq!(answers, [0, 10, 20, 30, 40, 50]);
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hash_that_panics_fails_its_caller_and_the_threads_go_on() {
        let hashers = Hashers::new(1);
        let caller = tokio::spawn({
            let hashers = hashers.clone();
            async move { hashers.run(|| -> u8 { panic!("broken hash") }).await }
        });
        assert!(caller.await.unwrap_err().is_panic());
        assert_eq!(hashers.run(|| 7).await, 7);
    }
}
