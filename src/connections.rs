//! The accept loop for plain HTTP and HTTPS: hyper's HTTP/1 server with a header-read timeout
//! (which is also the keep-alive idle timeout), a cap on connections in all and per client
//! address, and graceful shutdown. axum's own `serve` exposes none of these limits.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::domain::network::Cidr;

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain HTTP client past a cap reads before the connection closes.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 86\r\n\
\r\n\
{\"error\":\"busy\",\"message\":\"The service is busy. Please try again shortly.\",\"rules\":[]}";

/// `server.header_timeout`, `server.max_connections`, `server.max_connections_per_client`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Exempt from the per-client cap: every client behind them shares their address.
    pub trusted_proxies: Vec<Cidr>,
}

/// Connections held per client address; an entry disappears with the last connection.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its client address until dropped.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// What a served connection holds until it ends.
struct Slot {
    _total: OwnedSemaphorePermit,
    _client: Option<ClientSlot>,
}

/// Serves `router` on `listener` (HTTPS when `tls` is given) until `shutdown` completes, then
/// stops accepting and waits for the connections in flight to finish their current request.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    // Out of file descriptors, most likely: the connections in flight finish and
                    // free some; the waiting ones stay in the kernel's backlog meanwhile.
                    tracing::error!(%error, "cannot accept connections; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let client = if limits.trusted_proxies.iter().any(|c| c.contains(peer.ip())) {
            Some(None)
        } else {
            clients
                .take(peer.ip(), limits.max_connections_per_client)
                .map(Some)
        };
        let slot = match (client, total.clone().try_acquire_owned()) {
            (Some(client), Ok(total)) => Slot {
                _total: total,
                _client: client,
            },
            (client, total) => {
                let per_client = client.is_none();
                drop(total);
                crate::metrics::connection_refused(per_client);
                // Not a warning: an attacker would choose how many lines get written.
                tracing::debug!(%peer, per_client, "connection limit reached; turning a client away");
                turn_away(stream, tls.is_some());
                continue;
            }
        };
        let router = router.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                });
            let served = match tls {
                None => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let connection = http.serve_connection(TokioIo::new(tls), service);
                            watcher.watch(connection).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                // Header timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A plain HTTP client reads a 503 before the close; an HTTPS one is closed at once, since a
/// 503 would first need a full TLS handshake.
fn turn_away(mut stream: TcpStream, tls: bool) {
    if tls {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await
        })
        .await;
        // Whatever the client sent already is read and dropped, so the close is a FIN that keeps
        // the 503 readable rather than a reset that may discard it. Nothing is waited for: the
        // descriptor is given back at once.
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.try_read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
}

/// Errors that concern one incoming connection only (it was reset before it was accepted).
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answer_has_its_exact_length() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "busy");
    }

    #[test]
    fn per_client_slots_are_counted_and_given_back() {
        let clients = Arc::new(PerClient::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = clients.take(ip, 2).unwrap();
        let _b = clients.take(ip, 2).unwrap();
        assert!(clients.take(ip, 2).is_none());
        assert!(clients.take(other, 2).is_some());
        drop(a);
        assert!(clients.take(ip, 2).is_some());
    }
}
