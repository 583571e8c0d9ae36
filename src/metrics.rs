//! Prometheus metrics, served at `/metrics` in the text format.
//!
//! One process-wide set, like the Prometheus clients of other languages: the directory pools and
//! the mailer are built in several places (service, `check`, batches, tests) and each records
//! here without being handed a registry. The domain does not know about it: its events are
//! counted from the audit rows it writes anyway ([`MeteredAudit`]), which already name every
//! flow, verification and throttle hit, and never carry a secret.

use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::ObjectGuid;
use crate::domain::audit::{AuditKind, Outcome};
use crate::domain::clock::Timestamp;
use crate::domain::directory::DirectoryError;
use crate::domain::notify::MailKind;
use crate::domain::store::{AuditEvent, AuditLog, AuditRecord, StoreError};
use crate::domain::throttle::Limit;

type Labels = Vec<(&'static str, String)>;

/// What `prometheus-client` writes: OpenMetrics text, which Prometheus negotiates and parses.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Metrics {
    registry: Registry,
    flows_started: Family<Labels, Counter>,
    flows_completed: Family<Labels, Counter>,
    verifications: Family<Labels, Counter>,
    throttle_hits: Family<Labels, Counter>,
    directory_errors: Family<Labels, Counter>,
    directory_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pool_in_use: Family<Labels, Gauge>,
    mails: Family<Labels, Counter>,
    outbox_dropped: Family<Labels, Counter>,
    outbox_pending: Gauge,
    http_requests: Family<Labels, Counter>,
    http_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    manager_approvals: Family<Labels, Counter>,
    connections_refused: Family<Labels, Counter>,
    /// Live pools by DC URL, read when scraped (several apps over one DC in tests).
    pools: Mutex<Vec<(String, Weak<dyn PoolUsage>)>>,
}

/// A connection pool that can say how many of its connections are checked out.
pub trait PoolUsage: Send + Sync {
    fn in_use(&self) -> usize;
}

fn request_histogram() -> Histogram {
    // 1 ms to ~16 s: a TOTP check answers in about a millisecond, a reset waits for the DC.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn operation_histogram() -> Histogram {
    // 5 ms to ~10 s: a password write on an open connection takes ~33 ms, a fresh TLS bind ~55 ms.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("sspr");
    let m = Metrics {
        registry: Registry::default(),
        flows_started: Family::default(),
        flows_completed: Family::default(),
        verifications: Family::default(),
        manager_approvals: Family::default(),
        throttle_hits: Family::default(),
        directory_errors: Family::default(),
        directory_seconds: Family::new_with_constructor(operation_histogram),
        pool_in_use: Family::default(),
        mails: Family::default(),
        outbox_dropped: Family::default(),
        outbox_pending: Gauge::default(),
        http_requests: Family::default(),
        http_seconds: Family::new_with_constructor(request_histogram),
        pools: Mutex::new(Vec::new()),
        connections_refused: Family::default(),
    };
    registry.register(
        "flows_started",
        "Reset and unlock flows started, real (an eligible user) or decoy",
        m.flows_started.clone(),
    );
    registry.register(
        "flows_completed",
        "Passwords reset or changed and accounts unlocked, by self-service or the helpdesk",
        m.flows_completed.clone(),
    );
    registry.register(
        "verifications",
        "Identity verifications by method and outcome",
        m.verifications.clone(),
    );
    registry.register(
        "manager_approvals",
        "Helpdesk requests for a caller's manager to approve, and the managers' answers: \
         requested, refused, approved, declined",
        m.manager_approvals.clone(),
    );
    registry.register(
        "throttle_hits",
        "Requests refused by a throttle, by reason",
        m.throttle_hits.clone(),
    );
    registry.register(
        "directory_errors",
        "Failed directory operations by kind of error",
        m.directory_errors.clone(),
    );
    registry.register(
        "directory_operation_seconds",
        "Duration of LDAP operations per domain controller",
        m.directory_seconds.clone(),
    );
    registry.register(
        "directory_pool_connections_in_use",
        "Pooled service-account connections checked out, per domain controller",
        m.pool_in_use.clone(),
    );
    registry.register(
        "mails",
        "Mails handed to the SMTP server (sent) or not (failed), by kind",
        m.mails.clone(),
    );
    registry.register(
        "outbox_dropped",
        "Queued mails never delivered, by kind and reason: expired (a code expired or a \
         notice's last try passed while the mail server failed), refused (a permanent SMTP \
         error) or unreadable (sealed under another key)",
        m.outbox_dropped.clone(),
    );
    registry.register(
        "outbox_pending",
        "Rows in the mail outbox (waiting, being retried, or a decoy's until its code expires)",
        m.outbox_pending.clone(),
    );
    registry.register(
        "http_requests",
        "HTTP requests answered, by route, method and status",
        m.http_requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by route and method",
        m.http_seconds.clone(),
    );
    registry.register(
        "connections_refused",
        "Client connections turned away at a cap, by limit: total (server.max_connections) or \
         per_client (server.max_connections_per_client)",
        m.connections_refused.clone(),
    );
    // A family shows only once it has a sample: the flows' counters start at zero, so that a
    // dashboard has a series (and a rate) from the first scrape.
    for kind in ["real", "decoy"] {
        let _ = m
            .flows_started
            .get_or_create(&vec![("kind", kind.to_owned())]);
    }
    for kind in ["reset", "unlock", "helpdesk_reset", "helpdesk_unlock"] {
        let _ = m
            .flows_completed
            .get_or_create(&vec![("kind", kind.to_owned())]);
    }
    Metrics { registry, ..m }
});

/// Everything in the Prometheus text format.
pub fn render() -> String {
    let m = &*METRICS;
    {
        let mut pools = m.pools.lock().expect("not poisoned");
        pools.retain(|(_, pool)| pool.strong_count() > 0);
        let mut totals: Vec<(&str, usize)> = Vec::new();
        for (url, pool) in pools.iter() {
            let in_use = pool.upgrade().map_or(0, |p| p.in_use());
            match totals.iter_mut().find(|(u, _)| u == url) {
                Some((_, total)) => *total += in_use,
                None => totals.push((url, in_use)),
            }
        }
        for (url, in_use) in totals {
            m.pool_in_use
                .get_or_create(&vec![("dc", url.to_owned())])
                .set(i64::try_from(in_use).unwrap_or(i64::MAX));
        }
    }
    let mut out = String::new();
    encode(&mut out, &m.registry).expect("writing to a String cannot fail");
    out
}

/// Reports a DC's pool in `directory_pool_connections_in_use` for as long as it lives.
pub fn watch_pool(dc: &str, pool: Weak<dyn PoolUsage>) {
    METRICS
        .pools
        .lock()
        .expect("not poisoned")
        .push((dc.to_owned(), pool));
}

/// The name of a [`DirectoryError`] variant, as the `kind` label.
pub fn directory_error_kind(error: &DirectoryError) -> &'static str {
    match error {
        DirectoryError::PolicyViolation { .. } => "policy_violation",
        DirectoryError::WrongOldPassword => "wrong_old_password",
        DirectoryError::InsecureChannel => "insecure_channel",
        DirectoryError::InsufficientRights { .. } => "insufficient_rights",
        DirectoryError::InsecureTransport { .. } => "insecure_transport",
        DirectoryError::PolicyHintsUnsupported { .. } => "policy_hints_unsupported",
        DirectoryError::Tls { .. } => "tls",
        DirectoryError::ServiceBind { .. } => "service_bind",
        DirectoryError::Unavailable { .. } => "unavailable",
        DirectoryError::WriteUnconfirmed { .. } => "write_unconfirmed",
        DirectoryError::Other { .. } => "other",
    }
}

/// A directory error, counted by kind.
pub fn directory_error(error: &DirectoryError) {
    METRICS
        .directory_errors
        .get_or_create(&vec![("kind", directory_error_kind(error).to_owned())])
        .inc();
}

/// One LDAP operation (`search`, `bind`, `modify`) on `dc` that began at `started`; a failure is
/// also counted by kind.
pub fn directory_operation<T>(
    dc: &str,
    operation: &'static str,
    started: Instant,
    result: &Result<T, DirectoryError>,
) {
    METRICS
        .directory_seconds
        .get_or_create(&vec![
            ("dc", dc.to_owned()),
            ("operation", operation.to_owned()),
        ])
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        directory_error(e);
    }
}

/// One HTTP request to `route` (the route's pattern, such as `/api/v1/reset/{flow}/verify`,
/// never the path itself, which may hold a token) answered with `status`.
pub fn http_request(route: &str, method: &str, status: u16, started: Instant) {
    let m = &*METRICS;
    m.http_requests
        .get_or_create(&vec![
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ])
        .inc();
    m.http_seconds
        .get_or_create(&vec![
            ("route", route.to_owned()),
            ("method", method.to_owned()),
        ])
        .observe(started.elapsed().as_secs_f64());
}

/// A mail handed to the SMTP server, or not.
pub fn mail(kind: &MailKind, sent: bool) {
    let kind = kind.label();
    let outcome = if sent { "sent" } else { "failed" };
    METRICS
        .mails
        .get_or_create(&vec![
            ("kind", kind.to_owned()),
            ("outcome", outcome.to_owned()),
        ])
        .inc();
}

/// A queued mail of `kind` (its label) was dropped undelivered, for `reason`.
pub fn outbox_dropped(kind: &str, reason: &'static str) {
    METRICS
        .outbox_dropped
        .get_or_create(&vec![
            ("kind", kind.to_owned()),
            ("reason", reason.to_owned()),
        ])
        .inc();
}

/// A client connection was turned away at `server.max_connections_per_client` (`per_client`) or
/// at `server.max_connections`.
pub fn connection_refused(per_client: bool) {
    let limit = if per_client { "per_client" } else { "total" };
    METRICS
        .connections_refused
        .get_or_create(&vec![("limit", limit.to_owned())])
        .inc();
}

/// How many rows the outbox holds, as its sender last counted.
pub fn outbox_pending(rows: i64) {
    METRICS.outbox_pending.set(rows);
}

/// Counts the flows' events from their audit rows, then writes them.
pub struct MeteredAudit(pub Arc<dyn AuditLog>);

fn count(event: &AuditEvent) {
    let (kind, outcome) = (event.event, event.outcome);
    let m = &*METRICS;
    let label = |name: &'static str, value: &str| (name, value.to_owned());
    match (kind, outcome) {
        (AuditKind::FlowStarted, outcome) => {
            let kind = if outcome == Outcome::Success {
                "real"
            } else {
                "decoy"
            };
            m.flows_started
                .get_or_create(&vec![label("kind", kind)])
                .inc();
        }
        (
            AuditKind::PasswordReset
            | AuditKind::Unlock
            | AuditKind::HelpdeskReset
            | AuditKind::HelpdeskUnlock
            | AuditKind::PasswordChanged,
            Outcome::Success,
        ) => {
            let kind = match kind {
                AuditKind::PasswordReset => "reset",
                other => other.as_str(),
            };
            m.flows_completed
                .get_or_create(&vec![label("kind", kind)])
                .inc();
        }
        (AuditKind::Verification, outcome) => {
            let method = event.method.as_deref().unwrap_or("none");
            m.verifications
                .get_or_create(&vec![
                    label("method", method),
                    label("outcome", outcome.as_str()),
                ])
                .inc();
        }
        (AuditKind::ManagerApprovalRequested | AuditKind::ManagerApproval, outcome) => {
            let outcome = match outcome {
                Outcome::Success => "requested",
                Outcome::Denied => "refused",
                other => other.as_str(),
            };
            m.manager_approvals
                .get_or_create(&vec![label("outcome", outcome)])
                .inc();
        }
        (AuditKind::Throttled, _) => {
            // Only the limit: the reason goes on with the throttled key, which may name a user.
            let limit = event.reason.as_deref().and_then(Limit::of_reason);
            m.throttle_hits
                .get_or_create(&vec![label(
                    "reason",
                    limit.map_or("unknown", Limit::as_str),
                )])
                .inc();
        }
        _ => {}
    }
}

#[async_trait]
impl AuditLog for MeteredAudit {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.0.record(event).await?;
        count(event);
        Ok(())
    }

    async fn since(&self, since: Timestamp, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.since(since, limit).await
    }

    async fn after(
        &self,
        at: Timestamp,
        id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.after(at, id, limit).await
    }

    async fn for_user(
        &self,
        user: &ObjectGuid,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.for_user(user, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: AuditKind, outcome: Outcome, reason: Option<&str>) -> AuditEvent {
        AuditEvent {
            at: Timestamp::from_millis(0),
            event,
            outcome,
            object_guid: None,
            sam_account_name: Some("jdoe".to_owned()),
            actor: None,
            client_ip: Some("192.0.2.7".to_owned()),
            method: None,
            reason: reason.map(str::to_owned),
            login_hash: None,
        }
    }

    #[test]
    fn labels_carry_no_user_key_or_address() {
        count(&event(
            AuditKind::Throttled,
            Outcome::Denied,
            Some("user_blocked user:4f1d-guid"),
        ));
        count(&event(
            AuditKind::FlowStarted,
            Outcome::Decoy,
            Some("unknown_user"),
        ));
        let text = render();
        assert!(
            text.contains("sspr_throttle_hits_total{reason=\"user_blocked\"} "),
            "{text}"
        );
        for private in ["4f1d-guid", "jdoe", "192.0.2.7"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
}
