//! `sspr-bridge healthcheck`: the liveness probe a container's HEALTHCHECK runs, so the image
//! needs no shell or HTTP client of its own. One `GET /healthz` to the service's own listener, at
//! loopback; healthy means status 200. It opens nothing else (no database, directory or mail): a
//! container runs it every 30 s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, header};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use crate::config::Config;

/// Less than a HEALTHCHECK's usual timeout, so the probe reports its own reason first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the probe goes and how it speaks there.
pub struct Target {
    /// `/healthz` of the base URL, as the failure lines name it.
    url: String,
    /// The Host header.
    authority: String,
    /// `/healthz`, under the base URL's path.
    path: String,
    host: String,
    port: u16,
    /// HTTPS: the client configuration and the name sent as SNI.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("{0}: connection refused")]
    Refused(String),
    #[error("{url}: no answer within {}", humantime::format_duration(*.timeout))]
    TimedOut { url: String, timeout: Duration },
    #[error("{url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: TLS: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url}: {detail}")]
    Failed { url: String, detail: String },
}

/// The address to probe a listener at: a wildcard address means this host's loopback of the
/// same family; a specific address is itself.
pub fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

impl Target {
    /// `server.listen` at loopback, or `base` when given. HTTPS where the listener speaks it
    /// (`server.tls_cert`), trusting exactly that certificate, with the host of
    /// `server.public_url` as SNI; an https `base` without `server.tls_cert` is checked against
    /// the system's CA store.
    pub fn new(config: &Config, base: Option<&Url>) -> Result<Self, String> {
        let (https, host, port, path, sni_host) = match base {
            Some(base) => {
                let host = match base.host() {
                    Some(url::Host::Domain(d)) => d.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    None => return Err(format!("{base}: no host")),
                };
                let https = match base.scheme() {
                    "https" => true,
                    "http" => false,
                    other => return Err(format!("{base}: {other} is neither http nor https")),
                };
                let port = base
                    .port_or_known_default()
                    .ok_or_else(|| format!("{base}: no port"))?;
                let path = base.path().trim_end_matches('/').to_owned();
                (https, host.clone(), port, path, Some(host))
            }
            None => {
                let addr = loopback(config.server.listen);
                let sni = config.server.public_url.host_str().map(str::to_owned);
                let host = addr.ip().to_string();
                (
                    config.server.tls.is_some(),
                    host,
                    addr.port(),
                    String::new(),
                    sni,
                )
            }
        };
        let scheme = if https { "https" } else { "http" };
        let authority = match host.parse::<Ipv6Addr>() {
            Ok(_) => format!("[{host}]:{port}"),
            Err(_) => format!("{host}:{port}"),
        };
        let path = format!("{path}/healthz");
        let url = format!("{scheme}://{authority}{path}");
        let tls = if https {
            let client = match &config.server.tls {
                Some(files) => crate::tls::pinned(crate::tls::leaf_certificate(&files.cert)?),
                None => crate::tls::system_and_extra(None)?,
            };
            let sni = sni_host.unwrap_or_else(|| host.clone());
            let sni = sni.trim_start_matches('[').trim_end_matches(']').to_owned();
            let name = ServerName::try_from(sni.clone())
                .map_err(|e| format!("{sni} cannot be a TLS server name: {e}"))?;
            Some((client, name))
        } else {
            None
        };
        Ok(Self {
            url,
            authority,
            path,
            host,
            port,
            tls,
        })
    }

    /// One `GET /healthz`; `Ok` on status 200.
    pub async fn probe(&self, timeout: Duration) -> Result<(), Unhealthy> {
        match tokio::time::timeout(timeout, self.get()).await {
            Ok(Ok(200)) => Ok(()),
            Ok(Ok(status)) => Err(Unhealthy::Status {
                url: self.url.clone(),
                status,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Unhealthy::TimedOut {
                url: self.url.clone(),
                timeout,
            }),
        }
    }

    async fn get(&self) -> Result<u16, Unhealthy> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Unhealthy::Refused(self.url.clone()),
                _ => self.failed(format!("cannot connect: {e}")),
            })?;
        match &self.tls {
            None => self.send(tcp).await,
            Some((client, name)) => {
                let stream = tokio_rustls::TlsConnector::from(client.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Unhealthy::Tls {
                        url: self.url.clone(),
                        detail: crate::tls::tls_failure(&e).unwrap_or_else(|| e.to_string()),
                    })?;
                self.send(stream).await
            }
        }
    }

    async fn send<S>(&self, stream: S) -> Result<u16, Unhealthy>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.failed(format!("HTTP: {e}")))?;
        let connection = tokio::spawn(connection);
        let request = Request::get(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(
                header::USER_AGENT,
                concat!("sspr-bridge-healthcheck/", env!("CARGO_PKG_VERSION")),
            )
            .body(String::new())
            .map_err(|e| self.failed(format!("request: {e}")))?;
        let answer = sender.send_request(request).await;
        connection.abort();
        answer
            .map(|a| a.status().as_u16())
            .map_err(|e| self.failed(format!("no HTTP answer: {e}")))
    }

    fn failed(&self, detail: String) -> Unhealthy {
        Unhealthy::Failed {
            url: self.url.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_probed_at_loopback_and_a_specific_one_at_itself() {
        let at = |s: &str| loopback(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(at("[::]:8080"), "[::1]:8080");
        assert_eq!(at("10.1.2.3:8443"), "10.1.2.3:8443");
        assert_eq!(at("[fd00::5]:80"), "[fd00::5]:80");
    }
}
