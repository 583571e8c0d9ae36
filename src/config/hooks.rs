//! `[hooks]` (webhooks and commands after an action) and `audit.syslog` (forwarding the audit
//! log to syslog): their raw sections and the rules across their keys.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{Deserializer, Error};
use url::Url;

use super::de;

/// One `hooks.after_*`: a webhook, a command, both or neither.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookTarget {
    /// Called with a signed POST of the event.
    #[serde(default, deserialize_with = "https_url")]
    pub url: Option<Url>,
    /// Run with the event on standard input: the program (an absolute path) and its arguments,
    /// no shell.
    #[serde(default)]
    pub command: Vec<String>,
}

impl HookTarget {
    pub fn is_set(&self) -> bool {
        self.url.is_some() || !self.command.is_empty()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    pub after_reset: HookTarget,
    pub after_unlock: HookTarget,
    pub after_change: HookTarget,
    pub after_registration_change: HookTarget,
    /// The HMAC-SHA256 key webhooks are signed with.
    #[serde(deserialize_with = "de::optional")]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub(super) secret_file: Option<PathBuf>,
    /// Trusted for webhooks besides the system's CA store.
    #[serde(deserialize_with = "de::optional")]
    pub ca_file: Option<PathBuf>,
    /// Command hooks get the new password too.
    pub include_password: bool,
    /// How long one webhook call or one command may take.
    #[serde(deserialize_with = "de::positive_duration")]
    pub timeout: Duration,
    /// How long a webhook is retried before it is given up.
    #[serde(deserialize_with = "de::positive_duration")]
    pub retry_for: Duration,
}

impl HooksConfig {
    /// Every hook with its key.
    pub fn targets(&self) -> [(&'static str, &HookTarget); 4] {
        [
            ("after_reset", &self.after_reset),
            ("after_unlock", &self.after_unlock),
            ("after_change", &self.after_change),
            ("after_registration_change", &self.after_registration_change),
        ]
    }
}

/// Webhook secrets shorter than this are refused: the signature is only as strong as the key.
const MIN_SECRET_LEN: usize = 16;

impl super::rules::Checks {
    pub(super) fn hooks(&mut self, hooks: &mut HooksConfig) {
        let file = hooks.secret_file.take();
        hooks.secret = self.secret("hooks.secret", hooks.secret.take(), file.as_deref());
        self.existing_file("hooks.ca_file", hooks.ca_file.as_deref());
        let mut webhooks = false;
        for (name, target) in hooks.targets() {
            webhooks |= target.url.is_some();
            if let Some(program) = target.command.first() {
                let path = std::path::Path::new(program);
                if !path.is_absolute() || !path.is_file() {
                    self.problem(
                        &format!("hooks.{name}"),
                        format!("command: {program:?} must be the absolute path of a program"),
                    );
                }
            }
        }
        let secret_len = hooks.secret.as_ref().map_or(0, |s| s.expose_secret().len());
        if webhooks && secret_len < MIN_SECRET_LEN {
            self.problem(
                "hooks.secret",
                format!(
                    "webhooks are signed with it: set at least {MIN_SECRET_LEN} random characters \
                     (e.g. the output of `sspr-bridge gen-key`)"
                ),
            );
        }
    }

    pub(super) fn audit(&mut self, audit: &super::AuditConfig) {
        self.existing_file("audit.syslog_ca_file", audit.syslog_ca_file.as_deref());
    }
}

fn https_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    match Url::parse(text.trim()) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Ok(Some(url)),
        _ => Err(D::Error::custom(format!(
            "url: {text:?} must be an https URL, e.g. https://tickets.example.com/hook, or empty"
        ))),
    }
}

/// Where `audit.syslog` sends the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// RFC 5425: TLS, octet-counted frames.
    Tls { host: String, port: u16 },
    /// RFC 6587: plain TCP, octet-counted frames.
    Tcp { host: String, port: u16 },
    /// A local datagram socket such as /dev/log: one message per datagram.
    Unix(PathBuf),
}

pub(super) fn syslog_target<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SyslogTarget>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse_syslog_target(text)
        .map(Some)
        .map_err(D::Error::custom)
}

fn parse_syslog_target(text: &str) -> Result<SyslogTarget, String> {
    let bad = || {
        format!(
            "{text:?} must be tls://HOST:PORT, tcp://HOST:PORT or unix:///PATH (e.g. \
             tls://siem.example.com:6514, unix:///dev/log), or empty"
        )
    };
    let url = Url::parse(text).map_err(|_| bad())?;
    let endpoint = |default_port| -> Result<(String, u16), String> {
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok((host.to_owned(), url.port().unwrap_or(default_port)))
    };
    match url.scheme() {
        "tls" => endpoint(6514).map(|(host, port)| SyslogTarget::Tls { host, port }),
        "tcp" => endpoint(514).map(|(host, port)| SyslogTarget::Tcp { host, port }),
        "unix" if url.host_str().is_none_or(str::is_empty) && url.path().len() > 1 => {
            Ok(SyslogTarget::Unix(PathBuf::from(url.path())))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_targets_parse_with_their_default_ports() {
        assert_eq!(
            parse_syslog_target("tls://siem.example.com"),
            Ok(SyslogTarget::Tls {
                host: "siem.example.com".to_owned(),
                port: 6514
            })
        );
        assert_eq!(
            parse_syslog_target("tcp://10.0.0.5:1514"),
            Ok(SyslogTarget::Tcp {
                host: "10.0.0.5".to_owned(),
                port: 1514
            })
        );
        assert_eq!(
            parse_syslog_target("unix:///dev/log"),
            Ok(SyslogTarget::Unix(PathBuf::from("/dev/log")))
        );
        for bad in ["udp://host:514", "unix://host/dev/log", "tcp://", "syslog"] {
            assert!(parse_syslog_target(bad).is_err(), "{bad}");
        }
    }
}
