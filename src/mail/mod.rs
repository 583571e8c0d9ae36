//! Mail: SMTP over lettre on connections of our own (`TCP_NODELAY`, kept for reuse; rustls, with
//! `smtp.ca_file` trusted besides the system store),
//! the templates (text and HTML, English and Dutch), [`SmtpMailer`], which sends a mail at once,
//! and the outbox ([`SealedOutbox`], [`OutboxSender`]) the flows queue their mails in.

mod connections;
mod mailer;
mod outbox;
mod templates;

use lettre::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::response::Severity;
use secrecy::ExposeSecret;

use connections::{Connections, Failure, Security};
pub use connections::{MAX_IDLE, connect_tcp};
pub use mailer::SmtpMailer;
pub use outbox::{NOTICE_LIFETIME, OutboxSender, POLL, SealedOutbox, SenderTask, Transport};
pub use templates::{Rendered, Templates};

use crate::config::{SmtpConfig, SmtpTls};

/// Setting up the mail transport failed, or the server did not answer a test connection.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP TLS setup failed: {0}")]
    Tls(String),
    #[error("SMTP server {server} unreachable or refused: {detail}")]
    Unavailable { server: String, detail: String },
    #[error("smtp.from is not a mail address: {0}")]
    From(String),
}

/// Why one mail was not handed to the SMTP server. Never holds the mail's body or code.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the recipient address is not a valid mail address")]
    InvalidRecipient,
    #[error("the mail could not be composed: {0}")]
    Compose(String),
    #[error("SMTP server {server} unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("TLS with SMTP server {server} failed: {detail}")]
    Tls { server: String, detail: String },
    #[error("SMTP server {server} rejected the recipient address: {detail}")]
    RecipientRejected { server: String, detail: String },
    #[error("SMTP server {server} refused the mail{}: {detail}", if *.permanent { "" } else { " for now" })]
    Refused {
        server: String,
        permanent: bool,
        detail: String,
    },
}

impl SendError {
    /// Whether sending the same mail again cannot succeed (a bad or refused address, a 5xx
    /// answer), as opposed to a server that is down, busy or misconfigured, which may recover.
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::InvalidRecipient
            | SendError::Compose(_)
            | SendError::RecipientRejected { .. } => true,
            SendError::Refused { permanent, .. } => *permanent,
            SendError::Unreachable { .. } | SendError::Tls { .. } => false,
        }
    }
}

pub struct SmtpTransport {
    connections: Connections,
    server: String,
}

impl SmtpTransport {
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        let security = match config.tls {
            SmtpTls::None => Security::None,
            SmtpTls::Starttls => Security::Starttls(tls_parameters(config)?),
            SmtpTls::Tls => Security::Implicit(tls_parameters(config)?),
        };
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            _ => None,
        };
        Ok(Self {
            connections: Connections::new(
                config.host.clone(),
                config.port,
                security,
                credentials,
                config.timeout,
            ),
            server: format!("{}:{}", config.host, config.port),
        })
    }

    /// Connects, says EHLO and, as configured, upgrades to TLS and authenticates; the
    /// connection is kept for the first mail.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        self.connections
            .check()
            .await
            .map_err(|failure| MailError::Unavailable {
                server: self.server.clone(),
                detail: match failure {
                    Failure::Smtp(e) => describe(&e),
                    Failure::Io(e) => describe(&e),
                },
            })
    }

    /// Hands `message` to the server (over a pooled connection).
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self
            .connections
            .send(message.envelope(), &message.formatted())
            .await
        {
            Ok(()) => Ok(()),
            Err(Failure::Smtp(e)) => Err(self.send_error(&e)),
            Err(Failure::Io(e)) => Err(SendError::Unreachable {
                server: self.server.clone(),
                detail: describe(&e),
            }),
        }
    }

    fn send_error(&self, error: &lettre::transport::smtp::Error) -> SendError {
        let server = self.server.clone();
        if let Some(code) = error.status() {
            let reply =
                std::error::Error::source(error).map_or_else(String::new, |s| s.to_string());
            let detail = format!("{code} {reply}");
            let permanent = code.severity == Severity::PermanentNegativeCompletion;
            // RFC 3463: an enhanced status 5.1.x is an addressing problem (5.7.x, say, is
            // policy, though also sent as 550). Without one, RFC 5321 4.2.3: 550 mailbox
            // unavailable, 551 user not local, 553 mailbox name not allowed.
            let enhanced = reply.split_whitespace().next().filter(|w| {
                w.split('.').count() == 3 && w.starts_with(|c: char| c.is_ascii_digit())
            });
            let address_problem = match enhanced {
                Some(status) => status.starts_with("5.1."),
                None => [550, 551, 553].contains(&u16::from(code)),
            };
            return if permanent && address_problem {
                SendError::RecipientRejected { server, detail }
            } else {
                SendError::Refused {
                    server,
                    permanent,
                    detail,
                }
            };
        }
        let detail = describe(error);
        if is_tls_failure(error) {
            SendError::Tls { server, detail }
        } else {
            SendError::Unreachable { server, detail }
        }
    }
}

/// lettre files a failed handshake under "connection" and a missing STARTTLS under "client";
/// the rustls error (wrapped in an io::Error) or lettre's text tells them apart.
fn is_tls_failure(error: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if e.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        source = e.source();
    }
    error.is_tls() || (error.is_client() && error.to_string().contains("STARTTLS"))
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| MailError::Tls(format!("cannot read {}: {e}", path.display())))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| MailError::Tls(format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| MailError::Tls(e.to_string()))
}

/// lettre's errors keep the useful part (e.g. the certificate problem) in their source chain,
/// which their own text already includes, sometimes twice ("Connection error: Connection error:
/// invalid peer certificate"). Says each part once, without lettre's bare category labels.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    let labels = ["Connection error", "network error", "tls error"];
    while parts.len() > 1 && labels.contains(&parts[0]) {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lettre::message::Mailbox;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection SMTP server that accepts everything but answers `rcpt_reply` to RCPT.
    async fn refusing_server(rcpt_reply: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply = match verb.as_str() {
                    "RCPT" => rcpt_reply,
                    "QUIT" => "221 bye",
                    _ => "250 ok",
                };
                write
                    .write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        port
    }

    /// Plain SMTP to a test server on this host's `port`.
    fn local(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port,
            tls: SmtpTls::None,
            ca_file: None,
            username: None,
            password: None,
            password_file: None,
            from: "no-reply@example.com".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    async fn send_to(port: u16) -> SendError {
        let config = local(port);
        let message = Message::builder()
            .from("no-reply@example.com".parse::<Mailbox>().unwrap())
            .to("jan@example.com".parse::<Mailbox>().unwrap())
            .body("secret body 40718263".to_owned())
            .unwrap();
        SmtpTransport::new(&config)
            .unwrap()
            .send(message)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_rejected_recipient_is_permanent_and_says_so() {
        let port = refusing_server("550 5.1.1 <jan@example.com>: Recipient address rejected").await;
        let err = send_to(port).await;
        assert!(
            matches!(err, SendError::RecipientRejected { .. }),
            "{err:?}"
        );
        assert!(err.is_permanent());
        assert_eq!(
            err.to_string(),
            format!(
                "SMTP server 127.0.0.1:{port} rejected the recipient address: \
                 550 5.1.1 <jan@example.com>: Recipient address rejected"
            )
        );
    }

    #[tokio::test]
    async fn a_policy_rejection_is_permanent_but_not_about_the_address() {
        let port = refusing_server("550 5.7.1 Relaying denied").await;
        let err = send_to(port).await;
        assert!(
            matches!(
                err,
                SendError::Refused {
                    permanent: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_permanent());
    }

    #[tokio::test]
    async fn a_deferral_is_temporary() {
        let port = refusing_server("451 4.7.1 Greylisted, try again later").await;
        let err = send_to(port).await;
        assert!(
            matches!(
                err,
                SendError::Refused {
                    permanent: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_permanent());
        assert!(
            err.to_string()
                .contains("refused the mail for now: 451 4.7.1 Greylisted"),
            "{err}"
        );
        assert!(!err.to_string().contains("40718263"));
    }

    /// An SMTP server that accepts every mail on every connection and stores nothing, so a
    /// client's own delays show.
    async fn accepting_server() -> u16 {
        accepting_server_closing_after(usize::MAX).await
    }

    /// [`accepting_server`] that closes each connection after `mails` mails, without a word, as
    /// a server does on its idle timeout.
    async fn accepting_server_closing_after(mails: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    let mut taken = 0;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            taken += 1;
                            "250 queued"
                        } else {
                            match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                                "DATA" => {
                                    in_data = true;
                                    "354 go ahead"
                                }
                                "QUIT" => "221 bye",
                                _ => "250 ok",
                            }
                        };
                        if write
                            .write_all(format!("{reply}\r\n").as_bytes())
                            .await
                            .is_err()
                            || taken >= mails
                        {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced() {
        let port = accepting_server_closing_after(1).await;
        let transport = SmtpTransport::new(&local(port)).unwrap();
        for _ in 0..3 {
            let message = Message::builder()
                .from("no-reply@example.com".parse::<Mailbox>().unwrap())
                .to("jan@example.com".parse::<Mailbox>().unwrap())
                .body("hello".to_owned())
                .unwrap();
            transport.send(message).await.unwrap();
        }
    }

    /// The figure in docs/benchmarks.md: ms per mail over a kept connection, lettre's own
    /// transport (Nagle on) against [`SmtpTransport`]. Run with `-- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn time_per_mail_with_and_without_nodelay() {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        const MAILS: u32 = 50;
        let port = accepting_server().await;
        let message = || {
            Message::builder()
                .from("no-reply@example.com".parse::<Mailbox>().unwrap())
                .to("jan@example.com".parse::<Mailbox>().unwrap())
                .body("x".repeat(4000))
                .unwrap()
        };
        let stock = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .build();
        let ours = SmtpTransport::new(&local(port)).unwrap();
        ours.send(message()).await.unwrap();
        stock.send(message()).await.unwrap();
        let started = std::time::Instant::now();
        for _ in 0..MAILS {
            stock.send(message()).await.unwrap();
        }
        let before = started.elapsed();
        let started = std::time::Instant::now();
        for _ in 0..MAILS {
            ours.send(message()).await.unwrap();
        }
        let after = started.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(MAILS);
        eprintln!(
            "ms per mail: lettre's transport {:.2}, SmtpTransport {:.2}",
            ms(before),
            ms(after)
        );
    }
}
