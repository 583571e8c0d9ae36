//! Webhook calls: claimed from the outbox, POSTed over HTTPS with a signature, retried with
//! growing pauses until `hooks.retry_for` has passed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, header};
use hmac::{Hmac, Mac};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::HookSettings;
use crate::domain::audit::{AuditKind, Outcome};
use crate::domain::clock::Clock;
use crate::domain::store::{AuditEvent, AuditLog};
use crate::store::{HookCall, Store};

/// `X-SSPR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." and the body>`.
pub const SIGNATURE_HEADER: &str = "x-sspr-signature";

/// How long an instance holds a claimed call at least; longer when `hooks.timeout` is, so that
/// no other instance takes a call while it is being made.
const LEASE: Duration = Duration::from_secs(60);
/// The first pause after a failure; each further failure doubles it, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(5);
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// How often the outbox is looked at when nothing wakes the sender (a retry coming due, or a
/// call queued by another instance).
const POLL: Duration = Duration::from_secs(1);

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `unix_seconds`.
pub fn signature(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix_seconds},v1={hex}")
}

/// Makes the calls waiting in the outbox, once spawned.
pub struct WebhookSender {
    settings: Arc<HookSettings>,
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
}

impl WebhookSender {
    pub(super) fn new(
        settings: Arc<HookSettings>,
        store: Store,
        clock: Arc<dyn Clock>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            settings,
            store,
            clock,
            wake,
        }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.round().await {
                    tracing::warn!(error = %e, "webhook outbox not read; will retry");
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        })
    }

    /// Makes every call that is due, claiming one at a time so each claim outlasts its call.
    async fn round(&self) -> Result<(), crate::domain::store::StoreError> {
        let lease = LEASE.max(self.settings.timeout * 2);
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        loop {
            let now = self.clock.now().as_millis();
            let claimed = self
                .store
                .claim_hook_calls(now, now.saturating_add(lease), 1)
                .await?;
            let Some(call) = claimed.into_iter().next() else {
                return Ok(());
            };
            self.attempt(call).await?;
        }
    }

    async fn attempt(&self, call: HookCall) -> Result<(), crate::domain::store::StoreError> {
        let s = &self.settings;
        let Some(url) = s.target(&call.hook).and_then(|t| t.url.as_ref()) else {
            // The hook was removed from the configuration since the event.
            tracing::info!(hook = call.hook, "webhook no longer configured; dropped");
            return self.store.delete_hook_call(&call.id).await;
        };
        let secret = s.secret.as_ref().map(|k| k.expose_secret().as_bytes());
        let signed = signature(
            secret.unwrap_or_default(),
            self.clock.now().as_unix_secs(),
            call.body.as_bytes(),
        );
        let sent = tokio::time::timeout(
            s.timeout,
            post(
                url,
                call.body.clone(),
                signed,
                TlsConnector::from(s.tls.clone()),
            ),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", s.timeout)));
        let error = match sent {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(
                    hook = call.hook,
                    status,
                    attempts = call.attempts + 1,
                    "webhook called"
                );
                return self.store.delete_hook_call(&call.id).await;
            }
            Ok(status) => format!("answered {status}"),
            Err(e) => e,
        };
        let now = self.clock.now().as_millis();
        let pause = FIRST_PAUSE
            .saturating_mul(1 << call.attempts.clamp(0, 20))
            .min(MAX_PAUSE);
        let next = now + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
        if next > call.give_up_at_ms {
            tracing::error!(
                hook = call.hook,
                url = %url,
                attempts = call.attempts + 1,
                error,
                event = call.body,
                "webhook given up after hooks.retry_for"
            );
            let given_up = AuditEvent {
                at: self.clock.now(),
                event: AuditKind::Hook,
                outcome: Outcome::Failure,
                object_guid: None,
                sam_account_name: None,
                actor: None,
                client_ip: None,
                method: None,
                reason: Some(format!(
                    "{}: given up (attempts: {}): {error}",
                    call.hook,
                    call.attempts + 1
                )),
                login_hash: None,
            };
            if let Err(e) = self.store.record(&given_up).await {
                tracing::error!(error = %e, "audit row of a given-up webhook not written");
            }
            return self.store.delete_hook_call(&call.id).await;
        }
        tracing::warn!(
            hook = call.hook,
            url = %url,
            attempts = call.attempts + 1,
            error,
            retry_in = ?pause,
            "webhook failed; will retry"
        );
        self.store.retry_hook_call(&call.id, next).await
    }
}

/// POSTs `body` to `url`; the answer's status.
async fn post(url: &Url, body: String, signed: String, tls: TlsConnector) -> Result<u16, String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| format!("bad host {name}: {e}"))?;
    let tcp = TcpStream::connect((name, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let stream =
        tls.connect(server_name, tcp)
            .await
            .map_err(|e| match crate::tls::tls_failure(&e) {
                Some(why) => format!("TLS: {why}"),
                None => format!("TLS: {e}"),
            })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("sspr-bridge/", env!("CARGO_PKG_VERSION")),
        )
        .header(SIGNATURE_HEADER, signed)
        .body(body)
        .map_err(|e| format!("request: {e}"))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    connection.abort();
    Ok(answer?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'k3y-k3y-k3y-k3y-'
        assert_eq!(
            signature(b"k3y-k3y-k3y-k3y-", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=9e181c4fd97718c163d492f84506f04bcf26cd60b553f839d667928b0180e3d9"
        );
    }
}
