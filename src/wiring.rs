//! The composition root: from a validated [`Config`] to the domain's [`Deps`], which every
//! command that reaches the domain uses, and for `serve` on to the HTTP [`AppState`]. Only `serve`
//! starts the outbox's sender: a batch command sends its mails itself and must not deliver the
//! service's queue on the side.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::directory::LdapDirectory;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::deps::{Deps, Ports};
use crate::domain::directory::DirectoryError;
use crate::domain::licence::LicenceGate;
use crate::domain::notify::{Mailer, OutboxStore};
use crate::domain::policy::{BannedList, PasswordRules};
use crate::domain::scope::Eligibility;
use crate::domain::secrets::Keys;
use crate::domain::settings::Settings;
use crate::domain::signin::SignInSettings;
use crate::domain::store::{AuditLog, StoreError};
use crate::http::{AppState, Branding, Pages, Shared, TrustedProxies};
use crate::mail::{MailError, NOTICE_LIFETIME, OutboxSender, SealedOutbox, SmtpMailer};
use crate::metrics::MeteredAudit;
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
    #[error("hooks.ca_file: {0}")]
    Hooks(String),
    #[error("audit.syslog: {0}")]
    Syslog(String),
}

/// The domain's dependencies, and the store behind most of them (for what only the store does,
/// and to close it).
pub struct Wired {
    pub deps: Deps,
    pub store: Store,
    /// Delivers the outbox's mails once spawned; `None` without `[smtp]`.
    outbox_sender: Option<OutboxSender>,
    /// The templates of `ui.templates_dir` that replace built-in ones.
    overrides: crate::i18n::Overrides,
}

/// Connects the store (applying pending migrations) and prepares the directory pools; DCs are
/// contacted on first use, so the service starts (and reports not-ready) while they are down.
pub async fn wire(config: &Config) -> Result<Wired, StartError> {
    let store = Store::connect(
        config.database.url.expose_secret(),
        config.database.max_connections,
    )
    .await?;
    store.migrate().await?;
    let directory = Arc::new(LdapDirectory::new(&config.directory)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let overrides = crate::i18n::Overrides::new(&config.ui.templates_dir)?;
    let smtp_mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(
            SmtpMailer::new(
                smtp,
                &config.server.public_url,
                Some(config.ui.organisation.clone()),
                clock.clone(),
            )?
            .with_code_lifetime(config.reset.code_lifetime)
            .with_zone(&config.ui.timezone)
            .with_overrides(&overrides)?,
        )),
        None => None,
    };
    let mailer = smtp_mailer.clone().map(|m| m as Arc<dyn Mailer>);
    let shared_store = Arc::new(store.clone());
    let keys = Arc::new(Keys::new(config.security.secret_key.bytes()));
    let audit: Arc<dyn AuditLog> = Arc::new(MeteredAudit(shared_store.clone()));
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
    });
    let ports = Ports {
        directory: directory.clone(),
        registrations: shared_store.clone(),
        sessions: shared_store.clone(),
        flows: shared_store.clone(),
        codes: shared_store.clone(),
        throttle: shared_store.clone(),
        audit,
        approvals: shared_store.clone(),
        mailer,
        outbox: Arc::new(outbox),
        history: shared_store.clone(),
        recovery_codes: shared_store.clone(),
        passkeys: shared_store.clone(),
        transactions: shared_store.clone(),
    };
    let deps = Deps::new(ports, clock, keys, settings(config));
    Ok(Wired {
        deps,
        store,
        outbox_sender,
        overrides,
    })
}

/// [`wire`], the outbox's sender started, and what the HTTP layer adds.
pub async fn state(config: &Config) -> Result<AppState, StartError> {
    let Wired {
        mut deps,
        store,
        outbox_sender,
        overrides,
    } = wire(config).await?;
    let licence = LicenceGate::new(config.licence.azure_ad_premium);
    let outbox_sender = outbox_sender.map(OutboxSender::spawn);
    let history = Arc::new(deps.history.clone());
    spawn_hooks_and_forwarding(config, &mut deps, &store).await?;
    Ok(AppState::new(Shared {
        licence,
        deps,
        store,
        pages: Pages::new(
            config.helpdesk.url.clone(),
            licence.self_service_enabled(),
            config.server.public_url.scheme() == "https",
        )
        .with_branding(Branding::from_config(&config.ui))
        .with_zone(config.ui.timezone.clone())
        .with_history_rule(history)
        .with_overrides(&overrides)?,
        body_limit: config.server.body_limit,
        request_timeout: config.server.request_timeout,
        metrics_token: config.metrics.token.clone(),
        trusted_proxies: Arc::new(TrustedProxies::new(config.server.trusted_proxies.clone())),
        hsts: config.server.public_url.scheme() == "https",
        outbox_sender,
    }))
}

/// `[hooks]` given to the flows with their webhook sender started, and `audit.syslog`'s
/// forwarder started: only `serve` runs them, like the outbox's sender.
async fn spawn_hooks_and_forwarding(
    config: &Config,
    deps: &mut Deps,
    store: &Store,
) -> Result<(), StartError> {
    let hooks = crate::hooks::Dispatcher::new(&config.hooks, store.clone(), deps.clock.clone())
        .map_err(StartError::Hooks)?;
    if let Some((dispatcher, sender)) = hooks {
        sender.spawn();
        deps.hooks = crate::domain::hooks::Hooks::new(Arc::new(dispatcher));
    }
    if let Some(forwarder) = crate::forward::SyslogForwarder::new(&config.audit, store.clone())
        .map_err(StartError::Syslog)?
    {
        forwarder.spawn().await;
    }
    Ok(())
}

/// The flows' settings: the sections they take as they are, whole, and what is derived from
/// several keys (the password rules from the banned list `rules::Checks` read, who is eligible
/// from `[policy]` with the service account and `directory.never_reset`, the sign-in rules from
/// `[throttle]` with the domain's names), which is built here.
fn settings(config: &Config) -> Settings {
    let t = &config.throttle;
    Settings {
        registration: config.registration.clone(),
        reset: config.reset,
        throttle: *t,
        helpdesk: config.helpdesk.clone(),
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
        self_service_licensed: config.licence.azure_ad_premium,
        signin: SignInSettings {
            max_failures: t.signin_max_failures,
            window: t.signin_window,
            failure_floor: t.signin_failure_floor,
            domains: SignInSettings::domains_of(&config.directory.base_dn),
        },
        admin: config.admin.clone(),
        passkeys: config.passkeys.clone(),
    }
}
