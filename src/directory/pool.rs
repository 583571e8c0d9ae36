//! Service-account connections, pooled per domain controller (connect + TLS + bind costs ~55 ms
//! against ~33 ms for a password write on an open connection), and the choice of DC.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, RecycleResult};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};

use super::codec::supported_policy_hints;
use super::errors::{from_ldap, from_result};
use crate::config::DcEndpoint;
use crate::domain::directory::DirectoryError;
use crate::metrics::{self, PoolUsage};

/// Opens connections to one DC.
pub struct Connector {
    pub endpoint: DcEndpoint,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
    timeout: Duration,
    bind_dn: String,
    bind_password: SecretString,
}

impl Connector {
    pub fn new(
        endpoint: DcEndpoint,
        tls: Arc<ClientConfig>,
        connect_timeout: Duration,
        timeout: Duration,
        bind_dn: String,
        bind_password: SecretString,
    ) -> Self {
        Self {
            endpoint,
            tls,
            connect_timeout,
            timeout,
            bind_dn,
            bind_password,
        }
    }

    /// A new, unbound, encrypted connection. `DcEndpoint` cannot describe a plaintext one, so a
    /// password never leaves over one.
    pub async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_config(self.tls.clone())
            .set_starttls(self.endpoint.starttls);
        let url = &self.endpoint.url;
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| from_ldap(url, e))?;
        let url_for_driver = url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(dc = %url_for_driver, error = %e, "LDAP connection ended");
            }
        });
        ldap.with_timeout(self.timeout);
        Ok(ldap)
    }

    async fn connect_as_service(&self) -> Result<Ldap, DirectoryError> {
        let mut ldap = self.connect().await?;
        let url = &self.endpoint.url;
        let started = Instant::now();
        let result = ldap
            .with_timeout(self.timeout)
            .simple_bind(&self.bind_dn, self.bind_password.expose_secret())
            .await
            .map_err(|e| from_ldap(url, e));
        metrics::directory_operation(url, "bind", started, &result);
        let result = result?;
        if result.rc != 0 {
            let refusal = from_result(&result);
            // Busy or starting (rc 51, 52) says nothing about the account: a DC to try again,
            // not a refused bind.
            if let DirectoryError::Unavailable { .. } = refusal {
                return Err(refusal);
            }
            return Err(DirectoryError::ServiceBind {
                url: url.clone(),
                detail: match refusal {
                    DirectoryError::Other { rc: 49, .. } => {
                        "invalid credentials: check directory.bind_dn and directory.bind_password"
                            .to_owned()
                    }
                    other => other.to_string(),
                },
            });
        }
        Ok(ldap)
    }
}

/// One domain controller: its pool and whether it recently failed.
pub struct Dc {
    connector: Arc<Connector>,
    pool: Arc<Pool<ServiceConnections>>,
    /// The policy hints OID this DC supports, if any; read from its rootDSE once.
    policy_hints: tokio::sync::OnceCell<Option<&'static str>>,
    down_until: Mutex<Option<Instant>>,
    retry_down_after: Duration,
}

pub type PooledLdap = Object<ServiceConnections>;

impl Dc {
    pub fn new(connector: Connector, size: usize, retry_down_after: Duration) -> Self {
        let connector = Arc::new(connector);
        let create = connector.connect_timeout + connector.timeout;
        let pool = Pool::builder(ServiceConnections(connector.clone()))
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(create))
            .wait_timeout(Some(create + connector.timeout))
            .recycle_timeout(Some(connector.timeout))
            .build()
            .expect("a runtime is set, so timeouts are allowed");
        let pool = Arc::new(pool);
        let usage: Arc<dyn PoolUsage> = pool.clone();
        metrics::watch_pool(&connector.endpoint.url, Arc::downgrade(&usage));
        Self {
            connector,
            pool,
            policy_hints: tokio::sync::OnceCell::new(),
            down_until: Mutex::new(None),
            retry_down_after,
        }
    }

    pub fn url(&self) -> &str {
        &self.connector.endpoint.url
    }

    /// Reads the rootDSE's `supportedControl` and remembers which policy hints OID the DC has.
    pub async fn read_capabilities(
        &self,
        ldap: &mut Ldap,
    ) -> Result<Option<&'static str>, DirectoryError> {
        let url = self.url();
        let started = Instant::now();
        let result = ldap
            .with_timeout(self.connector.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| from_ldap(url, e));
        metrics::directory_operation(url, "search", started, &result);
        let (entries, _) = result?;
        let controls = entries
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|mut e| e.attrs.remove("supportedControl"))
            .unwrap_or_default();
        let oid = supported_policy_hints(&controls);
        if self.policy_hints.set(oid).is_ok() && oid.is_none() {
            tracing::warn!(
                dc = url,
                "this DC does not support LDAP_SERVER_POLICY_HINTS: password history and minimum \
                 age are not applied to resets written through it"
            );
        }
        Ok(oid)
    }

    /// The policy hints OID of this DC if it has been read already; `None`: not read yet.
    pub fn known_policy_hints(&self) -> Option<Option<&'static str>> {
        self.policy_hints.get().copied()
    }

    /// The policy hints OID to send with a password write on this DC, read once.
    pub async fn policy_hints(
        &self,
        ldap: &mut Ldap,
    ) -> Result<Option<&'static str>, DirectoryError> {
        if let Some(known) = self.policy_hints.get() {
            return Ok(*known);
        }
        self.read_capabilities(ldap).await
    }

    pub fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .expect("not poisoned")
            .is_some_and(|until| until > now)
    }

    pub(super) fn set_down(&self, down: bool) {
        *self.down_until.lock().expect("not poisoned") =
            down.then(|| Instant::now() + self.retry_down_after);
    }

    /// A new, unbound connection outside the pool, for a bind as a user. A failure to connect
    /// marks the DC down, as it does for the pool, so the next user's bind does not wait for it.
    pub async fn connect_unpooled(&self) -> Result<Ldap, DirectoryError> {
        let result = self.connector.connect().await;
        self.set_down(result.is_err());
        result
    }

    /// A pooled, bound connection. A failure to connect marks the DC down for a while.
    pub async fn get(&self) -> Result<PooledLdap, DirectoryError> {
        match self.pool.get().await {
            Ok(conn) => {
                self.set_down(false);
                Ok(conn)
            }
            Err(PoolError::Backend(e)) => {
                self.set_down(true);
                Err(e)
            }
            Err(PoolError::Timeout(managed::TimeoutType::Wait)) => {
                Err(DirectoryError::Unavailable {
                    detail: format!(
                        "{}: all {} connections busy",
                        self.url(),
                        self.pool.status().max_size
                    ),
                })
            }
            Err(e) => {
                self.set_down(true);
                Err(DirectoryError::Unavailable {
                    detail: format!("{}: {e}", self.url()),
                })
            }
        }
    }
}

impl PoolUsage for Pool<ServiceConnections> {
    fn in_use(&self) -> usize {
        let status = self.status();
        status.size.saturating_sub(status.available)
    }
}

/// The pool's manager: service-account connections. The connector is shared because user binds
/// need fresh connections to the same DC outside the pool.
pub struct ServiceConnections(Arc<Connector>);

impl managed::Manager for ServiceConnections {
    type Type = Ldap;
    type Error = DirectoryError;

    async fn create(&self) -> Result<Ldap, DirectoryError> {
        self.0.connect_as_service().await
    }

    async fn recycle(&self, ldap: &mut Ldap, _: &Metrics) -> RecycleResult<DirectoryError> {
        // The driver task ends when the DC closes the socket (idle timeout, restart), which closes
        // the channel: such a connection is dropped instead of handed out.
        if ldap.is_closed() {
            return Err(RecycleError::message("connection closed by the DC"));
        }
        Ok(())
    }
}
