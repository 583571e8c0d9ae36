//! The operator commands other than `serve`: each takes the validated configuration and builds
//! only what it needs.

pub mod audit_export;
pub mod check;
pub mod healthcheck;
pub mod registration_codes;
pub mod reminders;
pub mod report;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::domain::store::StoreError;
use crate::store::Store;

/// `sspr-bridge migrate`: applies pending database migrations.
pub async fn migrate(config: &Config) -> Result<(), StoreError> {
    let store = Store::connect(config.database.url.expose_secret(), 1).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}
