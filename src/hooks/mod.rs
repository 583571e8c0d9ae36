//! The hooks' adapter (`[hooks]`): webhooks through a durable outbox, commands run at once.
//! Nothing here can fail or slow the request that caused an event: [`Dispatcher::deliver`] only
//! spawns the work.

mod command;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{HookTarget, HooksConfig};
use crate::domain::clock::Clock;
use crate::domain::hooks::{HookAction, HookDelivery, HookEvent};
use crate::store::{HookCall, Store};

pub use webhook::{SIGNATURE_HEADER, WebhookSender, signature};

/// What `[hooks]` says, checked.
#[derive(Clone)]
pub(crate) struct HookSettings {
    targets: HashMap<&'static str, HookTarget>,
    secret: Option<SecretString>,
    include_password: bool,
    timeout: Duration,
    retry_for: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl HookSettings {
    fn target(&self, hook: &str) -> Option<&HookTarget> {
        self.targets.get(hook).filter(|t| t.is_set())
    }
}

/// Hands events to the hooks: [`HookDelivery`] for the flows.
pub struct Dispatcher {
    settings: Arc<HookSettings>,
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
}

impl Dispatcher {
    /// `None` when no hook is configured. Err: the webhook CA file does not load.
    pub fn new(
        config: &HooksConfig,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<(Self, WebhookSender)>, String> {
        if !config.targets().iter().any(|(_, t)| t.is_set()) {
            return Ok(None);
        }
        let settings = Arc::new(HookSettings {
            targets: config
                .targets()
                .into_iter()
                .map(|(name, t)| (name, t.clone()))
                .collect(),
            secret: config.secret.clone(),
            include_password: config.include_password,
            timeout: config.timeout,
            retry_for: config.retry_for,
            tls: crate::tls::system_and_extra(config.ca_file.as_deref())?,
        });
        let wake = Arc::new(tokio::sync::Notify::new());
        let sender =
            WebhookSender::new(settings.clone(), store.clone(), clock.clone(), wake.clone());
        Ok(Some((
            Self {
                settings,
                store,
                clock,
                wake,
            },
            sender,
        )))
    }
}

impl HookDelivery for Dispatcher {
    fn wants(&self, action: HookAction) -> bool {
        self.settings.target(action.hook_name()).is_some()
    }

    fn deliver(&self, event: HookEvent, password: Option<SecretString>) {
        let hook = event.action.hook_name();
        let Some(target) = self.settings.target(hook) else {
            return;
        };
        if !target.command.is_empty() {
            let password = password.filter(|_| self.settings.include_password);
            tokio::spawn(command::run(
                target.command.clone(),
                event.clone(),
                password,
                self.settings.timeout,
            ));
        }
        if target.url.is_some() {
            let body = match serde_json::to_string(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(hook, error = %e, "hook event not serialised");
                    return;
                }
            };
            let now = self.clock.now().as_millis();
            let call = HookCall {
                id: event.id.clone(),
                hook: hook.to_owned(),
                body,
                created_at_ms: now,
                give_up_at_ms: now.saturating_add(
                    i64::try_from(self.settings.retry_for.as_millis()).unwrap_or(i64::MAX),
                ),
                next_attempt_at_ms: now,
                attempts: 0,
            };
            let store = self.store.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                match store.insert_hook_call(&call).await {
                    Ok(()) => wake.notify_one(),
                    // The event (which holds no secret) is logged so it is on record somewhere.
                    Err(e) => tracing::error!(
                        hook = call.hook,
                        event = call.body,
                        error = %e,
                        "webhook not queued; it will not be called"
                    ),
                }
            });
        }
    }
}
