//! Mail: the lettre SMTP transport (rustls, with `smtp.ca_file` trusted besides the system store).

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP TLS setup failed: {0}")]
    Tls(String),
    #[error("SMTP server {server} unreachable or refused: {detail}")]
    Unavailable { server: String, detail: String },
}

pub struct SmtpTransport {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl SmtpTransport {
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(config)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(config)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            server: format!("{}:{}", config.host, config.port),
        })
    }

    /// Connects, says EHLO and, as configured, upgrades to TLS and authenticates.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Unavailable {
                server: self.server.clone(),
                detail: "the server did not answer NOOP".to_owned(),
            }),
            Err(e) => Err(MailError::Unavailable {
                server: self.server.clone(),
                detail: describe(&e),
            }),
        }
    }
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

/// lettre's errors keep the useful part (e.g. the certificate problem) in their source chain.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
