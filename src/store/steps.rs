//! One transaction per step: the store's side of [`Transactions`].
//!
//! A step is marked by a task-local, so the store calls inside it need no handle passed down
//! through the flows: each asks [`Store::conn`] for its connection and gets the step's
//! transaction (begun at the first call) inside a step of this store, a pooled connection
//! outside one. A store method that needs a transaction of its own begins it on that
//! connection, which inside a step is a savepoint.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex as SyncMutex};

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::{Backend, Store};
use crate::domain::store::{StoreError, Transactions};

tokio::task_local! {
    static STEP: Step;
}

type AfterCommit = Box<dyn FnOnce() + Send>;

/// The step running on this task: whose store, its transaction once begun, and what to do once
/// it committed.
#[derive(Clone)]
struct Step {
    store: usize,
    transaction: Arc<Mutex<State>>,
    after_commit: Arc<SyncMutex<Vec<AfterCommit>>>,
}

/// A step's transaction: begun at the first call; a begin that failed is not tried again, so
/// a step whose database is down waits for one acquire timeout, not one per call.
pub(crate) enum State {
    NotBegun,
    Open(Transaction<'static, Any>),
    Failed,
}

/// The connection a store call runs on: pooled, or the step's transaction (held for the call).
pub(crate) enum Conn {
    Pooled(PoolConnection<Any>),
    Step(OwnedMappedMutexGuard<State, AnyConnection>),
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Step(c) => c,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Step(c) => c,
        }
    }
}

impl Store {
    /// Tells apart the stores (with their pools) of one process; clones are the same store.
    fn step_owner(&self) -> usize {
        Arc::as_ptr(&self.identity) as usize
    }

    /// The step of this store running on this task, if any.
    fn current_step(&self) -> Option<Step> {
        STEP.try_with(|step| step.clone())
            .ok()
            .filter(|step| step.store == self.step_owner())
    }

    /// The connection for one call: the step's transaction inside a step of this store (begun
    /// here on the first call), else one from the pool.
    pub(crate) async fn conn(&self) -> Result<Conn, sqlx::Error> {
        let Some(step) = self.current_step() else {
            return Ok(Conn::Pooled(self.pool.acquire().await?));
        };
        let mut state = step.transaction.lock_owned().await;
        match &*state {
            State::Open(_) => {}
            State::Failed => return Err(sqlx::Error::PoolTimedOut),
            State::NotBegun => {
                // SQLite: the write lock at once, so a step that reads and then writes never
                // finds another process's write in between (which SQLite answers with an error,
                // not a wait).
                let begin = match self.backend {
                    Backend::Sqlite => "BEGIN IMMEDIATE",
                    Backend::Postgres => "BEGIN",
                };
                match self.pool.begin_with(begin).await {
                    Ok(transaction) => *state = State::Open(transaction),
                    Err(e) => {
                        *state = State::Failed;
                        return Err(e);
                    }
                }
            }
        }
        Ok(Conn::Step(OwnedMutexGuard::map(
            state,
            |state| match state {
                State::Open(transaction) => &mut **transaction,
                _ => unreachable!("begun above"),
            },
        )))
    }

    /// Runs `f` once what this task has written so far is committed: at once outside a step,
    /// after the step's commit inside one (never, if the step is rolled back).
    pub(crate) fn when_committed(&self, f: AfterCommit) {
        match self.current_step() {
            Some(step) => step
                .after_commit
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(f),
            None => f(),
        }
    }
}

impl Transactions for Store {
    fn run<'a>(&'a self, work: BoxFuture<'a, bool>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.current_step().is_some() {
                // Part of the step already running: it commits or rolls back the whole.
                work.await;
                return Ok(());
            }
            let step = Step {
                store: self.step_owner(),
                transaction: Arc::new(Mutex::new(State::NotBegun)),
                after_commit: Arc::default(),
            };
            let keep = STEP.scope(step.clone(), work).await;
            let state = std::mem::replace(&mut *step.transaction.lock().await, State::NotBegun);
            let after_commit = std::mem::take(
                &mut *step
                    .after_commit
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            match state {
                State::Open(transaction) if keep => transaction.commit().await?,
                State::Open(transaction) => {
                    if let Err(e) = transaction.rollback().await {
                        // The connection goes back to the pool, which rolls it back or drops it.
                        tracing::warn!(error = %e, "a step's transaction was not rolled back");
                    }
                    return Ok(());
                }
                // A begin that failed failed a call, which the step answers for.
                State::Failed | State::NotBegun if !keep => return Ok(()),
                State::Failed | State::NotBegun => {}
            }
            for f in after_commit {
                f();
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::domain::store::ThrottleStore;
    use crate::store::tests::memory_store;

    const EVENT: Timestamp = Timestamp::from_millis(1_000);
    const SINCE: Timestamp = Timestamp::from_millis(0);
    const UNTIL: Timestamp = Timestamp::from_millis(60_000);

    async fn events(store: &Store, key: &str) -> i64 {
        store.count(key, SINCE).await.unwrap()
    }

    /// Runs `work` on `store` as a step that ends with `keep`, counting the `when_committed`
    /// calls that ran.
    async fn step<'a>(
        store: &'a Store,
        keep: bool,
        work: impl Future<Output = ()> + Send + 'a,
    ) -> usize {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        store
            .run(Box::pin(async move {
                work.await;
                store.when_committed(Box::new(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                }));
                keep
            }))
            .await
            .unwrap();
        ran.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_step_keeps_all_its_rows_or_none() {
        let store = memory_store().await;
        let ran = step(&store, true, async {
            store.hit("kept", EVENT, SINCE).await.unwrap();
            store.block("kept", UNTIL).await.unwrap();
        })
        .await;
        assert_eq!(ran, 1, "after the commit");
        assert_eq!(events(&store, "kept").await, 1);
        assert!(store.blocked_until("kept", EVENT).await.unwrap().is_some());

        let ran = step(&store, false, async {
            store.hit("dropped", EVENT, SINCE).await.unwrap();
            // Seen inside the step, which reads its own writes.
            assert_eq!(events(&store, "dropped").await, 1);
            store.block("dropped", UNTIL).await.unwrap();
            // A method with a transaction of its own takes part (as a savepoint).
            assert!(store.lift_block("kept", "kept", EVENT).await.unwrap());
        })
        .await;
        assert_eq!(ran, 0, "nothing to wake after a rollback");
        assert_eq!(events(&store, "dropped").await, 0);
        assert!(
            store
                .blocked_until("dropped", EVENT)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(events(&store, "kept").await, 1, "the lifted block is back");
        assert!(store.blocked_until("kept", EVENT).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_step_that_is_dropped_half_way_leaves_nothing() {
        let store = memory_store().await;
        let work = Box::pin(async {
            store.hit("half", EVENT, SINCE).await.unwrap();
            std::future::pending::<()>().await;
            true
        });
        let ended = tokio::time::timeout(Duration::from_millis(50), store.run(work)).await;
        assert!(ended.is_err(), "the step never ends by itself");
        // The one connection is free again, and the row is gone.
        assert_eq!(events(&store, "half").await, 0);
    }

    #[tokio::test]
    async fn calls_outside_a_step_and_on_another_store_commit_on_their_own() {
        let (store, other) = (memory_store().await, memory_store().await);
        assert_eq!(
            step(&store, true, async {}).await,
            1,
            "at once without a write"
        );
        let ran = step(&store, false, async {
            other.hit("other", EVENT, SINCE).await.unwrap();
            // Nested: part of the same step, rolled back with it.
            store
                .run(Box::pin(async {
                    store.hit("nested", EVENT, SINCE).await.unwrap();
                    true
                }))
                .await
                .unwrap();
        })
        .await;
        assert_eq!(ran, 0);
        assert_eq!(events(&other, "other").await, 1);
        assert_eq!(events(&store, "nested").await, 0);

        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        store.hit("alone", EVENT, SINCE).await.unwrap();
        store.when_committed(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(woken.load(Ordering::SeqCst), 1, "outside a step: at once");
        assert_eq!(events(&store, "alone").await, 1);
    }
}
