//! Configuration: `config/default.toml` (compiled in) ← `--config FILE` ← `SSPR__SECTION__KEY`
//! environment variables. Each section is deserialised strictly (unknown keys are errors) into
//! its real types, so a bad value is reported under its own key; `rules::Checks` then applies
//! the rules that span several keys or read files. Secrets print as `[REDACTED]` in Debug.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::network::Cidr;
use crate::domain::passkey::PasskeySettings;
use crate::domain::scope::Scope;
// `[helpdesk]`, `[registration]`, `[reset]` and `[throttle]` are the flows' own settings sections,
// defined once in the domain.
use crate::domain::settings::{
    AdminSettings, HelpdeskSettings, RegistrationSettings, ResetSettings, ThrottleSettings,
};

mod de;
mod directory;
mod hooks;
mod load;
mod rules;
mod ui;

pub use crate::when::Zone;
pub use directory::{Balance, DcEndpoint, DirectoryConfig, PolicyHints};
pub use hooks::{HookTarget, HooksConfig, SyslogTarget};
pub use ui::{Colour, Image};

pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// Where configuration comes from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `--config FILE`, layered over the defaults.
    pub file: Option<PathBuf>,
    /// TOML documents layered over the file, in order (tests use these instead of files).
    pub layers: Vec<String>,
    /// Whether `SSPR__…` environment variables are read.
    pub environment: bool,
}

#[derive(Debug)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub server: ServerConfig,
    pub licence: LicenceConfig,
    /// `[passkey]` with `server.public_url`: the WebAuthn relying party, or passkeys off.
    pub passkeys: PasskeySettings,
    pub helpdesk: HelpdeskSettings,
    pub registration: RegistrationSettings,
    pub reset: ResetSettings,
    pub throttle: ThrottleSettings,
    pub policy: PolicyConfig,
    pub notify: NotifyConfig,
    pub directory: DirectoryConfig,
    pub database: DatabaseConfig,
    /// `None` when `smtp.host` is empty.
    pub smtp: Option<SmtpConfig>,
    pub security: SecurityConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub ui: UiConfig,
    pub hooks: HooksConfig,
    pub audit: AuditConfig,
    pub admin: AdminSettings,
}

/// `[ui]`: what the pages and mails look like.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Templates and `style.css` here replace the built-in ones of the same name; empty: none.
    #[serde(default)]
    pub templates_dir: PathBuf,
    /// Shown in every page's header and every mail; empty: none.
    #[serde(default)]
    pub organisation: String,
    #[serde(default, deserialize_with = "de::optional")]
    logo: Option<PathBuf>,
    #[serde(default, deserialize_with = "ui::primary_colour")]
    pub primary_colour: Option<Colour>,
    #[serde(default, deserialize_with = "de::optional")]
    favicon: Option<PathBuf>,
    /// Where the times on pages and in mails are told; empty: the server's own zone.
    #[serde(default, deserialize_with = "ui::timezone")]
    pub timezone: Zone,
    /// `logo`, read at start by `rules::Checks`.
    #[serde(skip)]
    pub logo_image: Option<Image>,
    /// `favicon`, read at start by `rules::Checks`.
    #[serde(skip)]
    pub favicon_image: Option<Image>,
}

impl UiConfig {
    /// The name the service goes by: `organisation`, else "sspr-bridge".
    pub fn name(&self) -> &str {
        match self.organisation.trim() {
            "" => ui::DEFAULT_NAME,
            name => name,
        }
    }
}

// Each section mirrors its table in config/default.toml; `deny_unknown_fields` turns typos into
// errors. Fields marked `skip` are derived from others by `rules::Checks`.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    #[serde(deserialize_with = "de::public_url")]
    pub public_url: Url,
    #[serde(deserialize_with = "de::body_limit")]
    pub body_limit: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(deserialize_with = "de::optional")]
    tls_cert: Option<PathBuf>,
    #[serde(deserialize_with = "de::optional")]
    tls_key: Option<PathBuf>,
    /// `None`: plain HTTP (behind a reverse proxy that terminates TLS).
    #[serde(skip)]
    pub tls: Option<TlsFiles>,
    #[serde(deserialize_with = "de::networks")]
    pub trusted_proxies: Vec<Cidr>,
    #[serde(deserialize_with = "de::header_timeout")]
    pub header_timeout: Duration,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_connections: usize,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_connections_per_client: usize,
    /// How long `serve` waits at start for files that do not exist yet and for a DC.
    #[serde(with = "humantime_serde")]
    pub startup_wait: Duration,
}

/// `server.tls_cert` and `server.tls_key`, checked to exist and to parse as a matching pair.
#[derive(Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceConfig {
    pub azure_ad_premium: bool,
}

/// `[passkey]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyConfig {
    /// The relying-party id; empty: the host of `server.public_url`.
    #[serde(default)]
    pub rp_id: String,
}

/// Checks of new passwords on top of the directory's own policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(deserialize_with = "de::optional")]
    pub banned_file: Option<PathBuf>,
    /// The lines of `banned_file`, read at load so `check` reports an unreadable file.
    #[serde(skip)]
    pub banned_words: Vec<String>,
    /// Minimum zxcvbn score, 0 (off) to 4.
    #[serde(deserialize_with = "de::min_strength")]
    pub min_strength: u8,
    /// Who may use self-service; the group's DN comes from `group_dn`.
    #[serde(deserialize_with = "de::scope")]
    pub scope: Scope,
    #[serde(deserialize_with = "de::optional_trimmed")]
    group_dn: Option<String>,
    /// Protected accounts that may use self-service anyway: user or group DNs.
    #[serde(deserialize_with = "de::distinguished_names")]
    pub allow_protected: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Told of every self-service reset of a protected account.
    #[serde(deserialize_with = "de::addresses")]
    pub admins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// May hold a password; shown masked. Empty: SQLite in `data_dir`.
    #[serde(deserialize_with = "de::secret")]
    pub url: SecretString,
    #[serde(default)]
    url_file: Option<PathBuf>,
    data_dir: PathBuf,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_connections: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test sink.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(deserialize_with = "de::optional")]
    pub ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::optional")]
    pub username: Option<String>,
    #[serde(deserialize_with = "de::optional")]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub from: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct SecurityConfig {
    pub secret_key: SecretKey,
}

/// `[security]` as written: the key inline or in a file, decoded by `rules::Checks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    #[serde(deserialize_with = "de::optional")]
    secret_key: Option<SecretString>,
    #[serde(default)]
    secret_key_file: Option<PathBuf>,
}

/// The 32-byte key that encrypts secrets at rest.
pub struct SecretKey(SecretBox<[u8; 32]>);

impl SecretKey {
    pub fn bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// A fresh random key, base64-encoded, as `gen-key` prints it.
    pub fn generate_base64() -> String {
        let key: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    fn from_base64(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(key))))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    #[serde(deserialize_with = "de::log_filter")]
    pub level: String,
}

/// `/metrics`: on the main listener only with the bearer token; on `listen` (an address of its
/// own) with the token if one is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(deserialize_with = "de::optional")]
    pub token: Option<SecretString>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::optional_socket_addr")]
    pub listen: Option<SocketAddr>,
}

/// `[audit]`: how long the audit log keeps its rows, and where it is forwarded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Rows older than this many days are deleted in the background; 0 keeps them for ever.
    pub retain_days: u32,
    /// Where every row is forwarded as it is written; `None`: nowhere.
    #[serde(deserialize_with = "hooks::syslog_target")]
    pub syslog: Option<SyslogTarget>,
    /// The CA a `tls://` syslog server's certificate must chain to; empty: the system store.
    #[serde(deserialize_with = "de::optional")]
    pub syslog_ca_file: Option<PathBuf>,
}

/// Everything wrong with a configuration, each naming its key and how to fix it.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
    /// `server.startup_wait` as the layers give it, zero when it could not be read: how long
    /// `serve` may wait for the files of [`ConfigError::missing_files`] to appear.
    pub startup_wait: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    /// The file the key names, when the only trouble is that it does not exist (yet): in a
    /// container another one may still be writing it.
    pub missing_file: Option<PathBuf>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Problem {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
            missing_file: None,
        }
    }

    fn missing(key: &str, path: &Path, message: impl Into<String>) -> Self {
        Self {
            missing_file: Some(path.to_owned()),
            ..Self::new(key, message)
        }
    }
}

impl ConfigError {
    fn single(key: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem::new(key, message)],
            startup_wait: Duration::ZERO,
        }
    }

    /// The files named by the configuration that do not exist yet, with their keys, when they
    /// are all that is wrong; `None` when anything else is wrong too, which waiting cannot mend.
    pub fn missing_files(&self) -> Option<Vec<(&str, &Path)>> {
        if self.problems.is_empty() {
            return None;
        }
        self.problems
            .iter()
            .map(|p| Some((p.key.as_str(), p.missing_file.as_deref()?)))
            .collect()
    }

    pub fn mentions(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key == key)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    server: ServerConfig,
    licence: LicenceConfig,
    helpdesk: HelpdeskSettings,
    registration: RegistrationSettings,
    reset: ResetSettings,
    throttle: ThrottleSettings,
    policy: PolicyConfig,
    notify: NotifyConfig,
    directory: DirectoryConfig,
    database: DatabaseConfig,
    smtp: SmtpConfig,
    security: RawSecurity,
    log: LogConfig,
    metrics: MetricsConfig,
    #[serde(default)]
    ui: UiConfig,
    hooks: HooksConfig,
    audit: AuditConfig,
    #[serde(default)]
    admin: AdminSettings,
    #[serde(default)]
    passkey: PasskeyConfig,
}

/// A database URL with any password replaced, fit for logs and `check` output.
pub fn masked_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl DatabaseConfig {
    pub fn display_url(&self) -> String {
        masked_url(self.url.expose_secret())
    }
}

impl Config {
    pub fn source_display(&self) -> String {
        self.source.as_deref().map_or_else(
            || "defaults and environment".to_owned(),
            |p: &Path| p.display().to_string(),
        )
    }
}

#[cfg(test)]
mod tests;
