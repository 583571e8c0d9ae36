//! `sspr-bridge check`: one line per dependency, OK or FAIL with the reason.

use std::fmt;
use std::time::Instant;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::directory::LdapDirectory;
use crate::domain::directory::Directory;
use crate::mail::SmtpTransport;
use crate::store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Skip,
}

#[derive(Debug)]
pub struct Line {
    pub status: Status,
    pub subject: String,
    pub detail: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "OK",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        write!(f, "{status:<5} {:<9} {}", self.subject, self.detail)
    }
}

fn line(status: Status, subject: &str, detail: impl Into<String>) -> Line {
    Line {
        status,
        subject: subject.to_owned(),
        detail: detail.into(),
    }
}

fn ms(started: Instant) -> u128 {
    started.elapsed().as_millis()
}

/// Runs every check, calling `report` as each finishes so a slow DC does not hide the rest.
pub async fn run(config: &Config, mut report: impl FnMut(&Line)) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut push = |l: Line| {
        report(&l);
        lines.push(l);
    };

    push(line(Status::Ok, "config", config.source_display()));
    push(line(
        Status::Ok,
        "licence",
        if config.licence.azure_ad_premium {
            "Azure AD Premium declared: self-service enabled".to_owned()
        } else {
            "not declared (licence.azure_ad_premium = false): self-service off, helpdesk only"
                .to_owned()
        },
    ));

    let started = Instant::now();
    let database = config.database.display_url();
    match Store::connect(config.database.url.expose_secret(), 1).await {
        Ok(store) => {
            match store.ping().await {
                Ok(()) => push(line(
                    Status::Ok,
                    "database",
                    format!("{database} ({} ms)", ms(started)),
                )),
                Err(e) => push(line(Status::Fail, "database", format!("{database}: {e}"))),
            }
            store.close().await;
        }
        Err(e) => push(line(Status::Fail, "database", format!("{database}: {e}"))),
    }

    match LdapDirectory::new(&config.directory) {
        Ok(directory) => {
            let trust = config.directory.ca_file.as_deref().map_or_else(
                || "the system store".to_owned(),
                |p| p.display().to_string(),
            );
            for dc in directory.probe().await {
                match dc.result {
                    Ok(health) => push(line(
                        Status::Ok,
                        "dc",
                        format!(
                            "{}: TLS verified against {trust}, bound as {} ({} ms); {}",
                            dc.url,
                            config.directory.bind_dn,
                            health.latency.as_millis(),
                            if health.policy_hints {
                                "password policy hints supported: history and minimum age apply to resets"
                            } else {
                                "no password policy hints on this DC: history and minimum age are not applied to resets"
                            }
                        ),
                    )),
                    Err(e) => push(line(Status::Fail, "dc", format!("{}: {e}", dc.url))),
                }
            }
        }
        Err(e) => push(line(Status::Fail, "dc", e.to_string())),
    }

    match &config.smtp {
        None => push(line(
            Status::Skip,
            "smtp",
            "smtp.host is empty: email codes and notifications are off",
        )),
        Some(smtp) => {
            let started = Instant::now();
            let server = format!("{}:{} ({:?})", smtp.host, smtp.port, smtp.tls).to_lowercase();
            let result = match SmtpTransport::new(smtp) {
                Ok(transport) => transport.test_connection().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => push(line(
                    Status::Ok,
                    "smtp",
                    format!("{server} ({} ms)", ms(started)),
                )),
                Err(e) => push(line(Status::Fail, "smtp", format!("{server}: {e}"))),
            }
        }
    }
    lines
}
