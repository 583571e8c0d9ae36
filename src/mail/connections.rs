//! SMTP connections opened here rather than by lettre's transport, so that they carry
//! `TCP_NODELAY`. lettre (0.11.23, its newest release) leaves Nagle on and writes a message's
//! body and the terminating `\r\n.\r\n` as two writes: the terminator waited for the server's
//! ACK of the body, which the server delays by 40 ms waiting for the terminator, so every mail
//! took ~43 ms; with `TCP_NODELAY` it takes well under 1 ms on loopback (docs/benchmarks.md).
//! lettre still speaks SMTP and does TLS with the same [`TlsParameters`]; this module makes
//! the TCP connection, authenticates, and keeps idle connections for the next mail.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Idle connections kept for reuse: as many as the outbox sends at once.
pub const MAX_IDLE: usize = 8;

/// An idle connection older than this is closed rather than reused (lettre's pool default).
const IDLE_FOR: Duration = Duration::from_secs(60);

/// How a connection is secured, as `smtp.tls` says.
pub enum Security {
    None,
    Starttls(TlsParameters),
    /// TLS from the first byte (port 465).
    Implicit(TlsParameters),
}

/// Why a mail did not go out: an answer or failure lettre saw, or one of this module's own.
#[derive(Debug)]
pub enum Failure {
    Smtp(SmtpError),
    /// Connecting failed or an exchange took longer than `smtp.timeout`.
    Io(io::Error),
}

/// Opens SMTP connections and keeps the idle ones.
pub struct Connections {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Connections {
    pub fn new(
        host: String,
        port: u16,
        security: Security,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Self {
        Self {
            host,
            port,
            security,
            credentials,
            hello: ClientId::default(),
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one message over an idle connection if one still answers, else over a new one,
    /// and keeps the connection if the exchange left it usable.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Failure> {
        let mut conn = match self.reuse().await {
            Some(conn) => conn,
            None => self.open().await?,
        };
        let sent = self.within(conn.send(envelope, message)).await;
        if sent.is_ok() {
            self.park(conn);
        }
        sent.map(drop)
    }

    /// Opens a connection (greeting, EHLO, TLS and AUTH as configured) and keeps it idle.
    pub async fn check(&self) -> Result<(), Failure> {
        let mut conn = self.open().await?;
        if !self
            .within(async { Ok(conn.test_connected().await) })
            .await?
        {
            return Err(Failure::Io(io::Error::other(
                "the server did not answer NOOP",
            )));
        }
        self.park(conn);
        Ok(())
    }

    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.idle.lock().expect("not poisoned").pop()?;
            // A server closes idle connections on its own schedule; NOOP tells (RFC 5321 4.5.3.2
            // lets it wait 5 minutes, many wait less).
            if since.elapsed() >= IDLE_FOR {
                continue;
            }
            if self
                .within(async { Ok(conn.test_connected().await) })
                .await
                .unwrap_or(false)
            {
                return Some(conn);
            }
            // The server went away or stopped answering: the other idle connections went with
            // it, and trying each would keep a claimed mail waiting up to `smtp.timeout` apiece.
            self.idle.lock().expect("not poisoned").clear();
            return None;
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, Failure> {
        let tcp = connect_tcp(&self.host, self.port, self.timeout)
            .await
            .map_err(Failure::Io)?;
        self.within(async {
            let stream: Box<dyn AsyncTokioStream> = match &self.security {
                Security::Implicit(tls) => {
                    #[allow(deprecated)]
                    let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                    stream.upgrade_tls(tls.clone()).await?;
                    Box::new(ImplicitTls(stream))
                }
                Security::None | Security::Starttls(_) => Box::new(tcp),
            };
            let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
            if let Security::Starttls(tls) = &self.security {
                conn.starttls(tls.clone(), &self.hello).await?;
            }
            if let Some(credentials) = &self.credentials {
                conn.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok(conn)
        })
        .await
    }

    /// lettre's async connection has no timeout after connecting; `smtp.timeout` bounds each
    /// exchange here.
    async fn within<T>(
        &self,
        exchange: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result.map_err(Failure::Smtp),
            Err(_) => Err(Failure::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server did not answer in time",
            ))),
        }
    }
}

/// Connects to the mail server with `TCP_NODELAY` set, trying each address `host` resolves to.
pub async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// lettre's TLS stream (its own handshake and certificate checks) as a stream
/// [`AsyncSmtpConnection`] accepts: lettre reads the greeting only after the handshake of an
/// implicit-TLS connection, which it offers for its own sockets alone.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(AsyncNetworkStream);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures::AsyncRead::poll_read(Pin::new(&mut self.0), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}
