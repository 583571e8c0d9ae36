//! The floor under a verification: a bare SQLite transaction doing what the service's TOTP
//! verification does to its database, with nothing else (no HTTP, no checks, no crypto).
//!
//! The service's verify does 4 reads and 4 writes: the per-address throttle counter inserted and
//! counted, the user's block checked, the flow and the registered apps read, the code spent (the
//! app's last accepted step advanced), the flow marked verified, an audit row. Here: the same
//! reads and writes on tables of the same shape, in one
//! transaction on one connection (the service gives SQLite one connection), through sqlx as the
//! service does (each statement crosses to sqlx's SQLite thread and back), WAL and sqlx's
//! default `synchronous = FULL`, so each commit waits for its fsync as the service's do.
//! Verifications per second against these per second say what the service's own work costs on
//! top of the writes it cannot avoid.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::load::{Run, closed_loop};

const ROWS: i64 = 1000;

async fn prepare(file: &std::path::Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("baseline database: {e}"))?;
    for statement in [
        "CREATE TABLE flows (id INTEGER PRIMARY KEY, id_hash BLOB NOT NULL UNIQUE, \
         object_guid TEXT NOT NULL, verified TEXT NOT NULL DEFAULT '', \
         failures INTEGER NOT NULL DEFAULT 0, expires_at_ms INTEGER NOT NULL)",
        "CREATE TABLE throttle_events (id INTEGER PRIMARY KEY, key TEXT NOT NULL, \
         at_ms INTEGER NOT NULL)",
        "CREATE INDEX throttle_events_key ON throttle_events (key, at_ms)",
        "CREATE TABLE blocks (key TEXT PRIMARY KEY, until_ms INTEGER NOT NULL)",
        "CREATE TABLE methods (object_guid TEXT NOT NULL, kind TEXT NOT NULL, \
         secret BLOB NOT NULL, last_step INTEGER NOT NULL, PRIMARY KEY (object_guid, kind))",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, \
         event TEXT NOT NULL, outcome TEXT NOT NULL, object_guid TEXT, client TEXT, \
         detail TEXT)",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for i in 0..ROWS {
        let guid = format!("{i:08x}-0000-0000-0000-000000000000");
        sqlx::query("INSERT INTO flows (id_hash, object_guid, expires_at_ms) VALUES ($1, $2, $3)")
            .bind(i.to_be_bytes().to_vec())
            .bind(&guid)
            .bind(i64::MAX)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("INSERT INTO methods VALUES ($1, 'totp', $2, 0)")
            .bind(&guid)
            .bind(vec![0u8; 48])
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(pool)
}

/// One verification's reads and writes, in one transaction.
async fn verification(pool: &SqlitePool, i: i64, step: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let flow = sqlx::query("SELECT object_guid, verified, failures FROM flows WHERE id_hash = $1")
        .bind(i.to_be_bytes().to_vec())
        .fetch_one(&mut *tx)
        .await?;
    let guid: String = flow.get(0);
    let client = format!("10.0.{}.{}", (i >> 8) & 255, i & 255);
    sqlx::query("INSERT INTO throttle_events (key, at_ms) VALUES ($1, $2)")
        .bind(&client)
        .bind(step)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT COUNT(*) FROM throttle_events WHERE key = $1 AND at_ms > $2")
        .bind(&client)
        .bind(step - 600_000)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("SELECT until_ms FROM blocks WHERE key = $1")
        .bind(&guid)
        .fetch_optional(&mut *tx)
        .await?;
    sqlx::query("SELECT secret, last_step FROM methods WHERE object_guid = $1")
        .bind(&guid)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE methods SET last_step = $1 WHERE object_guid = $2 AND kind = 'totp' \
         AND last_step < $1",
    )
    .bind(step)
    .bind(&guid)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE flows SET verified = 'totp' WHERE id_hash = $1")
        .bind(i.to_be_bytes().to_vec())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO audit (at_ms, event, outcome, object_guid, client, detail) \
         VALUES ($1, 'verification', 'success', $2, '10.0.0.1', 'totp')",
    )
    .bind(step)
    .bind(&guid)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Bare transactions for `duration` at `concurrency`, in a database in `dir`.
pub async fn sqlite_transactions(
    dir: &std::path::Path,
    concurrency: usize,
    duration: Duration,
) -> Result<Run, String> {
    let pool = prepare(&dir.join(format!("baseline-c{concurrency}.db"))).await?;
    let next = Arc::new(AtomicI64::new(0));
    let run = closed_loop(concurrency, duration, {
        let pool = pool.clone();
        move |_| {
            let (pool, next) = (pool.clone(), next.clone());
            async move {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                Some(
                    verification(&pool, n % ROWS, n + 1)
                        .await
                        .map(|()| vec![t.elapsed()])
                        .map_err(|e| format!("baseline transaction: {e}")),
                )
            }
        }
    })
    .await;
    pool.close().await;
    Ok(run)
}
