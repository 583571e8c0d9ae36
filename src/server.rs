//! Wiring: from a validated [`Config`] to a running service.

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::directory::LdapDirectory;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::directory::DirectoryError;
use crate::domain::licence::LicenceGate;
use crate::domain::notify::Mailer;
use crate::domain::policy::{BannedList, PasswordRules};
use crate::domain::scope::Eligibility;
use crate::domain::secrets::Keys;
use crate::domain::selfservice::ms;
use crate::domain::selfservice::{Deps, HelpdeskSettings, Settings};
use crate::domain::store::{StoreError, ThrottleStore};
use crate::http::{AppState, Pages, Shared, app};
use crate::mail::{MailError, SmtpMailer};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Connects the store (applying pending migrations) and prepares the directory pools; DCs are
/// contacted on first use, so the service starts (and reports not-ready) while they are down.
pub async fn state(config: &Config) -> Result<AppState, StartError> {
    let store = Store::connect(
        config.database.url.expose_secret(),
        config.database.max_connections,
    )
    .await?;
    store.migrate().await?;
    let directory = LdapDirectory::new(&config.directory)?;
    let licence = LicenceGate::new(config.licence.azure_ad_premium);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(
            SmtpMailer::new(smtp, &config.server.public_url, None, clock.clone())?
                .with_code_lifetime(config.reset.code_lifetime),
        ) as Arc<dyn Mailer>),
        None => None,
    };
    let shared_store = Arc::new(store.clone());
    let deps = Deps {
        directory: Arc::new(directory),
        registrations: shared_store.clone(),
        sessions: shared_store.clone(),
        flows: shared_store.clone(),
        codes: shared_store.clone(),
        throttle: shared_store.clone(),
        audit: shared_store,
        mailer,
        clock,
        keys: Arc::new(Keys::new(config.security.secret_key.bytes())),
        settings: settings(config),
    };
    Ok(AppState::new(Shared {
        licence,
        deps,
        store,
        pages: Pages::new(
            config.helpdesk.url.clone(),
            licence.self_service_enabled(),
            config.server.public_url.scheme() == "https",
        ),
        body_limit: config.server.body_limit,
        request_timeout: config.server.request_timeout,
    }))
}

fn settings(config: &Config) -> Settings {
    let t = &config.throttle;
    Settings {
        session_lifetime: config.registration.session_lifetime,
        totp_issuer: config.registration.totp_issuer.clone(),
        methods_required: usize::from(config.reset.methods_required),
        unlock_on_reset: config.reset.unlock_on_reset,
        flow_lifetime: config.reset.flow_lifetime,
        code_lifetime: config.reset.code_lifetime,
        flow_max_failures: i64::from(t.flow_max_failures),
        user_max_failures: i64::from(t.user_max_failures),
        user_window: t.user_window,
        user_block: t.user_block,
        ip_max_starts: i64::from(t.ip_max_starts),
        ip_max_verifications: i64::from(t.ip_max_verifications),
        ip_window: t.ip_window,
        email_max_sends: i64::from(t.email_max_sends),
        email_window: t.email_window,
        helpdesk: HelpdeskSettings {
            group_dn: config.helpdesk.group_dn.clone(),
            require_verification: config.helpdesk.require_verification,
            allow_protected: config.helpdesk.allow_protected.clone(),
            session_idle: config.helpdesk.session_idle,
            session_lifetime: config.helpdesk.session_lifetime,
            verification_lifetime: config.helpdesk.verification_lifetime,
            temporary_password_length: config.helpdesk.temporary_password_length,
        },
        password_rules: PasswordRules {
            banned: Arc::new(BannedList::new(
                config.policy.banned_words.iter().map(String::as_str),
            )),
            min_strength: config.policy.min_strength,
        },
        eligibility: Eligibility {
            scope: config.policy.scope.clone(),
            allow_protected: config.policy.allow_protected.clone(),
        },
        admin_addresses: config.notify.admins.clone(),
        reconfirm_after: config.registration.reconfirm_after(),
    }
}

/// Deletes expired sessions, flows, codes and old throttle counters every ten minutes, so the
/// tables stay the size of the current traffic.
fn spawn_pruning(store: Store, keep: std::time::Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let now = SystemClock.now_ms();
            let result = async {
                let expired = store.prune_expired(now).await?;
                let counters = ThrottleStore::prune(&store, now - ms(keep)).await?;
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

pub async fn serve(config: &Config) -> Result<(), StartError> {
    let state = state(config).await?;
    let t = &config.throttle;
    spawn_pruning(
        state.store.clone(),
        [t.user_window, t.user_block, t.ip_window, t.email_window]
            .into_iter()
            .max()
            .unwrap_or_default(),
    );
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(
        %addr,
        public_url = %config.server.public_url,
        self_service = config.licence.azure_ad_premium,
        "sspr-bridge listening"
    );
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|source| StartError::Listen { addr, source })?;
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
