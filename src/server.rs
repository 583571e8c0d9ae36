//! Wiring: from a validated [`Config`] to a running service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::directory::LdapDirectory;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::directory::DirectoryError;
use crate::domain::licence::LicenceGate;
use crate::domain::notify::{Mailer, OutboxStore};
use crate::domain::policy::{BannedList, PasswordRules};
use crate::domain::scope::Eligibility;
use crate::domain::secrets::Keys;
use crate::domain::selfservice::ms;
use crate::domain::selfservice::{Deps, HelpdeskSettings, Settings};
use crate::domain::signin::SignInSettings;
use crate::domain::store::{StoreError, ThrottleStore};
use crate::http::{AppState, Pages, Shared, TrustedProxies, app};
use crate::mail::{MailError, NOTICE_LIFETIME, OutboxSender, SealedOutbox, SmtpMailer};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    #[error(transparent)]
    Templates(#[from] crate::i18n::OverrideError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsFileError),
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
    let overrides = crate::i18n::Overrides::new(&config.ui.templates_dir)?;
    let smtp_mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(
            SmtpMailer::new(smtp, &config.server.public_url, None, clock.clone())?
                .with_code_lifetime(config.reset.code_lifetime)
                .with_overrides(&overrides)?,
        )),
        None => None,
    };
    let mailer = smtp_mailer.clone().map(|m| m as Arc<dyn Mailer>);
    let shared_store = Arc::new(store.clone());
    let keys = Arc::new(Keys::new(config.security.secret_key.bytes()));
    let audit: Arc<dyn crate::domain::store::AuditLog> =
        Arc::new(crate::metrics::MeteredAudit(shared_store.clone()));
    // Shared by the outbox and its sender: a queued mail wakes the sender at once.
    let wake = Arc::new(tokio::sync::Notify::new());
    let outbox_rows: Arc<dyn OutboxStore> = shared_store.clone();
    let outbox = SealedOutbox::new(
        outbox_rows.clone(),
        keys.clone(),
        clock.clone(),
        wake.clone(),
    );
    let outbox_sender = smtp_mailer.map(|transport| {
        OutboxSender::new(
            outbox_rows,
            keys.clone(),
            clock.clone(),
            transport,
            audit.clone(),
            wake,
        )
        .spawn()
    });
    let deps = Deps {
        directory: Arc::new(directory),
        registrations: shared_store.clone(),
        sessions: shared_store.clone(),
        flows: shared_store.clone(),
        codes: shared_store.clone(),
        throttle: shared_store.clone(),
        audit,
        approvals: shared_store.clone(),
        mailer,
        outbox: Arc::new(outbox),
        clock,
        keys,
        settings: settings(config),
        stand_in: Default::default(),
    };
    Ok(AppState::new(Shared {
        licence,
        deps,
        store,
        pages: Pages::new(
            config.helpdesk.url.clone(),
            licence.self_service_enabled(),
            config.server.public_url.scheme() == "https",
        )
        .with_overrides(&overrides)?,
        body_limit: config.server.body_limit,
        request_timeout: config.server.request_timeout,
        metrics_token: config.metrics.token.clone(),
        trusted_proxies: Arc::new(TrustedProxies::new(config.server.trusted_proxies.clone())),
        hsts: config.server.public_url.scheme() == "https",
        outbox_sender,
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
            operator_second_factor: config.helpdesk.operator_second_factor,
            operator_max_sign_ins: i64::from(config.helpdesk.operator_max_sign_ins),
            operator_max_actions: i64::from(config.helpdesk.operator_max_actions),
            operator_window: config.helpdesk.operator_window,
            membership_recheck: config.helpdesk.membership_recheck,
            manager_min_age: config.helpdesk.manager_min_age,
            verification_methods: config.helpdesk.verification_methods.clone(),
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
            never_reset: std::iter::once(&config.directory.bind_dn)
                .chain(&config.directory.never_reset)
                .cloned()
                .collect(),
        },
        admin_addresses: config.notify.admins.clone(),
        notice_lifetime: NOTICE_LIFETIME,
        reconfirm_after: config.registration.reconfirm_after(),
        registration_code_lifetime: config.registration.code_lifetime,
        registration_networks: config.registration.allowed_networks.clone(),
        self_service_licensed: config.licence.azure_ad_premium,
        signin: SignInSettings {
            max_failures: i64::from(t.signin_max_failures),
            window: t.signin_window,
            failure_floor: t.signin_failure_floor,
            domains: SignInSettings::domains_of(&config.directory.base_dn),
        },
        ipv6_prefix: t.ipv6_prefix,
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
    if let Some(addr) = config.metrics.listen {
        crate::http::metrics::spawn_listener(&config.metrics)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
    }
    let addr = config.server.listen;
    let listen_error = |source| StartError::Listen { addr, source };
    let tls = match &config.server.tls {
        Some(files) => Some(tls_config(&files.cert, &files.key)?),
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

#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("{path}: {message}")]
    Cert { path: String, message: String },
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and the key do not belong together: {0}")]
    Mismatch(rustls::Error),
}

impl TlsFileError {
    /// The configuration key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Cert { .. } => "server.tls_cert",
            Self::Key { .. } | Self::Mismatch(_) => "server.tls_key",
        }
    }
}

/// HTTPS from `server.tls_cert` (PEM chain, leaf first) and `server.tls_key` (PEM, PKCS#8, PKCS#1
/// or SEC1): TLS 1.2 and 1.3 with the ring provider, HTTP/1.1 announced by ALPN.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let cert_error = |message: String| TlsFileError::Cert {
        path: cert.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| cert_error(format!("not a PEM certificate file ({e})")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".to_owned()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFileError::Key {
        path: key.display().to_string(),
        message: format!("not a PEM private key ({e})"),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(TlsFileError::Mismatch)?
    .with_no_client_auth()
    .with_single_cert(chain, private_key)
    .map_err(TlsFileError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
