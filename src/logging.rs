//! Where log lines go: `log.format` and `log.level` applied to a writer. The binary writes to
//! standard error; the integration tests write the in-process app's lines the same way to a file,
//! which `scripts/check-secrets` searches for every password, code and secret the suite used.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Installs the process-wide subscriber (and routes the `log` records of ldap3, rustls and sqlx
/// through it). An unparsable level falls back to `info`; config validation refuses one anyway.
pub fn init<W>(
    config: &LogConfig,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    }
}
