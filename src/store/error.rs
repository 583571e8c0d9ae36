//! sqlx errors as messages an operator can act on. The domain sees only `StoreError`.

use sqlx::migrate::MigrateError;

use super::ACQUIRE_TIMEOUT;
use crate::domain::store::StoreError;

/// Starts every message about a database that cannot be reached, so logs and health checks can
/// tell an outage from a bug.
pub const UNAVAILABLE: &str = "the database is unavailable";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::new(describe(&error))
    }
}

impl From<MigrateError> for StoreError {
    fn from(error: MigrateError) -> Self {
        let detail = match &error {
            MigrateError::Execute(inner) => describe(inner),
            MigrateError::ExecuteMigration(inner, version) => {
                format!("migration {version}: {}", describe(inner))
            }
            MigrateError::VersionMissing(version) => format!(
                "the database has migration {version}, which this version of sspr-bridge does \
                 not know: it was migrated by a newer release"
            ),
            other => other.to_string(),
        };
        StoreError::new(format!("database migration failed: {detail}"))
    }
}

fn describe(error: &sqlx::Error) -> String {
    match error {
        // The pool retries refused connections until the acquire timeout, so an unreachable
        // server surfaces here rather than as an I/O error.
        sqlx::Error::PoolTimedOut => {
            format!("{UNAVAILABLE} (no connection within {ACQUIRE_TIMEOUT:?})")
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            format!("{UNAVAILABLE} (the connection pool is closed)")
        }
        sqlx::Error::Io(e) => format!("{UNAVAILABLE} ({e})"),
        sqlx::Error::Tls(e) => format!("{UNAVAILABLE} (TLS: {e})"),
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("the database refused the request: {} [{code}]", e.message()),
            None => format!("the database refused the request: {}", e.message()),
        },
        sqlx::Error::Configuration(e) => format!("invalid database settings: {e}"),
        other => format!("database error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_say_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
        ] {
            let message = StoreError::from(error).message;
            assert!(message.starts_with(UNAVAILABLE), "{message}");
        }
    }

    #[test]
    fn migration_errors_keep_the_cause() {
        let error = MigrateError::Execute(sqlx::Error::PoolTimedOut);
        let message = StoreError::from(error).message;
        assert!(
            message.starts_with("database migration failed: "),
            "{message}"
        );
        assert!(message.contains(UNAVAILABLE), "{message}");
    }
}
