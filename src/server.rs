//! The service: the listener (HTTP or HTTPS), background pruning and a graceful shutdown. What
//! it serves is built in [`crate::wiring`].

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::store::{StoreError, ThrottleStore};
use crate::http::app;
use crate::startup::StartupWait;
use crate::store::Store;
use crate::tls::{self, TlsFileError};
use crate::wiring::{self, StartError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsFileError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Deletes expired sessions, flows, codes and old throttle counters every ten minutes, so the
/// tables stay the size of the current traffic.
fn spawn_pruning(store: Store, keep: std::time::Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let now = SystemClock.now();
            let result = async {
                let expired = store.prune_expired(now).await?;
                let counters = ThrottleStore::prune(&store, now - keep).await?;
                Ok::<_, StoreError>(expired + counters)
            }
            .await;
            match result {
                Ok(n) => tracing::debug!(rows = n, "pruned expired state"),
                Err(e) => tracing::warn!(error = %e, "pruning failed; will retry"),
            }
        }
    });
}

/// Deletes audit rows older than `retain_days` at start and then every hour; 0 keeps them all.
fn spawn_audit_retention(store: Store, retain_days: u32) {
    if retain_days == 0 {
        return;
    }
    let keep = std::time::Duration::from_secs(u64::from(retain_days) * 24 * 60 * 60);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
        loop {
            every.tick().await;
            let older_than = SystemClock.now() - keep;
            match store
                .prune_audit(older_than, crate::store::AUDIT_PRUNE_BATCH)
                .await
            {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, retain_days, "deleted old audit rows"),
                Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
            }
        }
    });
}

/// Serves until SIGTERM or Ctrl-C; first waits, within `wait`, for a DC to take the service
/// account's bind.
pub async fn serve(config: &Config, wait: &StartupWait) -> Result<(), ServeError> {
    let state = wiring::state(config).await?;
    crate::startup::wait_for_directory(&*state.deps.directory, wait).await;
    let t = &config.throttle;
    spawn_pruning(
        state.store.clone(),
        [
            t.user_window,
            t.user_block,
            t.ip_window,
            t.email_window,
            t.signin_window,
        ]
        .into_iter()
        .max()
        .unwrap_or_default(),
    );
    spawn_audit_retention(state.store.clone(), config.audit.retain_days);
    if let Some(addr) = config.metrics.listen {
        crate::http::metrics::spawn_listener(&config.metrics)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
    }
    let addr = config.server.listen;
    let listen_error = |source| ServeError::Listen { addr, source };
    let tls = match &config.server.tls {
        Some(files) => Some(tls::server_config(&files.cert, &files.key)?),
        None => None,
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    tracing::info!(
        %addr,
        https = tls.is_some(),
        public_url = %config.server.public_url,
        self_service = config.licence.azure_ad_premium,
        "sspr-bridge listening"
    );
    if !config.passkeys.passkeys_enabled() {
        tracing::warn!(
            public_url = %config.server.public_url,
            "passkeys are off: server.public_url names an IP address, which WebAuthn refuses"
        );
    }
    // Employees are only told to ask the helpdesk; what an administrator does goes here.
    if let Err(closed) = crate::domain::licence::LicenceGate::new(config.licence.azure_ad_premium)
        .require_self_service()
    {
        tracing::warn!("{closed}");
    }
    let limits = crate::connections::Limits {
        header_timeout: config.server.header_timeout,
        max_connections: config.server.max_connections,
        max_connections_per_client: config.server.max_connections_per_client,
        trusted_proxies: config.server.trusted_proxies.clone(),
    };
    crate::connections::serve(
        listener,
        tls.map(TlsAcceptor::from),
        app(state),
        limits,
        shutdown_signal(),
    )
    .await;
    tracing::info!("sspr-bridge stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, let requests in flight finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
