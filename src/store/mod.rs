//! sqlx repositories (SQLite and PostgreSQL); the only place with SQL.
//!
//! One [`Store`] serves both databases through sqlx's `Any` driver, so every query is written
//! once: `$1`-style placeholders work on both, and only types both know are bound (`i64`,
//! `String`, `Vec<u8>` and their `Option`s). The schema lives in `migrations/{sqlite,postgres}`.

mod approvals;
mod audit;
mod codes;
mod database_url;
mod error;
mod flows;
mod history;
mod hooks;
mod notices;
mod outbox;
mod passkeys;
mod recovery_codes;
mod registrations;
mod report;
mod retention;
mod sessions;
mod steps;
mod throttle;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor};

use crate::domain::ObjectGuid;
use crate::domain::clock::{Clock, SystemClock, Timestamp};
use crate::domain::store::StoreError;
use database_url::DatabaseUrl;
pub use error::UNAVAILABLE;
pub use hooks::HookCall;
pub use retention::AUDIT_PRUNE_BATCH;

/// How long a query waits for a pooled connection, including (re)connecting to a server that
/// refuses connections, before it fails as "unavailable".
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a reset flow is kept after it expired, for the audit and helpdesk views.
pub const FLOW_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// How long SQLite waits for another connection's write lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The registrations, the audit log and the short-lived state of the flows (sessions, reset
/// flows, emailed codes, throttle counters), in SQLite or PostgreSQL. Cloning is cheap and shares
/// the connection pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Stamps `updated_at_ms`, which no domain value carries.
    clock: Arc<dyn Clock>,
    /// Shared by the clones: which store a step on this task belongs to (see `steps`).
    identity: Arc<()>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool of at most `max_connections` to `postgres://…` or `postgresql://…`, or of one
    /// connection to `sqlite://PATH` (created with its directory if missing), and checks that one
    /// connection works.
    ///
    /// `sqlite::memory:` gives a private in-memory database for tests. It lives inside a single
    /// connection, so the pool is held to one connection that is never recycled.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        if max_connections == 0 {
            return Err(StoreError::new("max_connections must be at least 1"));
        }
        sqlx::any::install_default_drivers();
        let url = DatabaseUrl::parse(url)?;
        let sqlite_dir = url.sqlite_file.as_deref().and_then(|file| file.parent());
        // A bare file name has an empty parent: the working directory, which exists.
        if let Some(dir) = sqlite_dir.filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::new(format!(
                    "cannot create the directory {} for the SQLite database: {e}",
                    dir.display()
                ))
            })?;
        }

        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if url.in_memory() {
            options = options
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if url.backend == Backend::Sqlite {
            // SQLite has one writer at a time. A second pooled connection that wants to write
            // meanwhile is refused and retries from SQLite's busy handler, which sleeps 1, 2, 5,
            // 10 ms and longer between tries; with one connection the short queries take turns
            // without sleeping (measured with benches/flows, see docs/benchmarks.md).
            options = options
                .max_connections(1)
                .after_connect(|conn, _| Box::pin(configure_sqlite(conn)));
        }
        // `connect` opens one connection before returning (unlike `connect_lazy`), so a wrong
        // URL or an unreachable server is reported at startup and the first SQLite connection
        // switches the file to WAL before any other connection exists.
        let pool = options.connect(&url.connect).await.map_err(|e| {
            let e = StoreError::from(e);
            StoreError::new(format!("cannot open {}: {}", url.redacted, e.message))
        })?;
        tracing::debug!(backend = %url.backend, url = %url.redacted, "database pool opened");
        Ok(Store {
            pool,
            backend: url.backend,
            clock: Arc::new(SystemClock),
            identity: Arc::new(()),
        })
    }

    /// Replaces the clock that stamps `updated_at_ms`, so tests can stand at any instant.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        self.clock = clock;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Brings the schema up to date; applied migrations are skipped, so it runs at every start.
    /// On PostgreSQL an advisory lock lets several instances start at once. sqlx takes no lock on
    /// SQLite, which serves a single instance.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for borrowed connections to come back, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Deletes what ended at `now`: sessions and emailed codes whose `expires_at_ms` is not
    /// after it (a session is valid only before its end), and reset flows and outbox mails that
    /// expired more than [`FLOW_RETENTION_MS`] earlier. Returns how many rows were deleted. Throttle counters are
    /// pruned separately with `ThrottleStore::prune`, whose horizon depends on the windows.
    pub async fn prune_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        let flows = sqlx::query("DELETE FROM reset_flows WHERE expires_at_ms < $1")
            .bind(now.as_millis().saturating_sub(FLOW_RETENTION_MS))
            .execute(&mut *self.conn().await?)
            .await?;
        let codes = sqlx::query("DELETE FROM pending_codes WHERE expires_at_ms <= $1")
            .bind(now.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        // The sender drops (and audits) an undelivered mail at its `send_by_ms`; a row still
        // here a day later had no sender (`[smtp]` was removed since): nobody will send it.
        let approvals = sqlx::query("DELETE FROM manager_approvals WHERE expires_at_ms <= $1")
            .bind(now.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        let ceremonies = sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at_ms <= $1")
            .bind(now.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        let mails = sqlx::query("DELETE FROM outbox WHERE send_by_ms < $1")
            .bind(now.as_millis().saturating_sub(FLOW_RETENTION_MS))
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(sessions.rows_affected()
            + flows.rows_affected()
            + codes.rows_affected()
            + approvals.rows_affected()
            + ceremonies.rows_affected()
            + mails.rows_affected())
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }
}

#[cfg(test)]
impl Store {
    /// Runs `sql` as it is, for tests that change the schema under a flow.
    pub(crate) async fn execute_sql(&self, sql: &str) {
        self.pool.execute(sql).await.expect("the test's SQL runs");
    }

    /// How many rows `table` has.
    pub(crate) async fn rows_in(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("the table is readable")
    }
}

/// Reads an `object_guid` column, which holds lowercase hyphenated text.
fn parse_guid(text: String, table: &str) -> Result<ObjectGuid, StoreError> {
    text.parse()
        .map_err(|e| StoreError::new(format!("invalid object_guid {text:?} in {table}: {e}")))
}

/// Applied to every new SQLite connection. sqlx already defaults to a 5 s busy timeout and
/// foreign keys on, but the `Any` driver cannot be given typed options, so the settings the
/// store relies on are stated here rather than left to a default that may change.
async fn configure_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // WAL lets readers proceed while one connection writes; it is stored in the file, so this is
    // a no-op after the first connection (and reports `memory` for an in-memory database).
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
        .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A migrated store in a private in-memory SQLite database.
    pub(crate) async fn memory_store() -> Store {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn in_memory_store_migrates_twice_and_pings() {
        let store = memory_store().await;
        assert_eq!(store.backend(), Backend::Sqlite);
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(applied, SQLITE_MIGRATIONS.iter().count() as i64);
        store.close().await;
        let message = store.ping().await.unwrap_err().message;
        assert!(message.starts_with(UNAVAILABLE), "{message}");
    }

    #[tokio::test]
    async fn sqlite_connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/dir/sspr.db", dir.path().display());
        let store = Store::connect(&url, 2).await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(
            (mode.as_str(), busy, foreign_keys),
            ("wal", i64::from(SQLITE_BUSY_TIMEOUT_MS), 1)
        );
        assert!(dir.path().join("nested/dir/sspr.db").is_file());
    }

    #[tokio::test]
    async fn zero_connections_is_refused() {
        let message = Store::connect("sqlite::memory:", 0)
            .await
            .unwrap_err()
            .message;
        assert!(message.contains("max_connections"), "{message}");
    }
}
