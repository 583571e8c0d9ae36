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

use crate::domain::directory::DirectoryError;
use crate::domain::network::Cidr;
use crate::domain::scope::Scope;
// `[helpdesk]`, `[registration]`, `[reset]` and `[throttle]` are the flows' own settings sections,
// defined once in the domain.
use crate::domain::settings::{
    HelpdeskSettings, RegistrationSettings, ResetSettings, ThrottleSettings,
};

mod de;
mod rules;

use rules::Checks;

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
}

/// `[ui]`: what the pages and mails look like.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Templates and `style.css` here replace the built-in ones of the same name; empty: none.
    #[serde(default)]
    pub templates_dir: PathBuf,
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
pub struct DirectoryConfig {
    /// The domain controllers as configured; [`Self::endpoints`] is what connects.
    #[serde(deserialize_with = "de::dc_urls")]
    pub urls: Vec<String>,
    pub starttls: bool,
    #[serde(skip)]
    pub endpoints: Vec<DcEndpoint>,
    #[serde(deserialize_with = "de::optional")]
    pub ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::required_dn")]
    pub base_dn: String,
    #[serde(deserialize_with = "de::required_dn")]
    pub bind_dn: String,
    #[serde(deserialize_with = "de::secret")]
    pub bind_password: SecretString,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Accounts no action may target, besides `bind_dn` itself (user DNs).
    #[serde(deserialize_with = "de::trimmed_list")]
    pub never_reset: Vec<String>,
    /// The account `check` resets to prove the service account's rights; `None` = no self-test.
    #[serde(deserialize_with = "de::optional_trimmed")]
    pub self_test_user: Option<String>,
    #[serde(deserialize_with = "de::ldap_filter")]
    pub user_filter: String,
    #[serde(deserialize_with = "de::positive_duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "de::positive_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "de::at_least_one")]
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub retry_down_after: Duration,
    pub policy_hints: PolicyHints,
    pub balance: Balance,
    #[serde(with = "humantime_serde")]
    pub write_affinity: Duration,
}

/// How work is spread over several domain controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each account has a home DC, chosen by hashing its name over the DCs that answer: every
    /// read, bind and write for it goes there, so a flow never reads a DC that has not yet
    /// received its own write. Accounts, and so the load, spread over all DCs; every instance
    /// of the service makes the same choice.
    ByUser,
    /// The first DC that answers takes everything; the others are for failover.
    InOrder,
}

/// Whether password resets carry LDAP_SERVER_POLICY_HINTS, which makes AD apply password history
/// and minimum age to an administrative reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyHints {
    /// Send it to every DC that lists it in its rootDSE `supportedControl`.
    Auto,
    /// Refuse to write a password through a DC that does not support it.
    Required,
    /// Never send it.
    Off,
}

/// A domain controller's URL, known to be encrypted: `ldaps://`, or `ldap://` upgraded with
/// StartTLS. There is no way to build one for a plaintext connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcEndpoint {
    pub url: String,
    pub starttls: bool,
}

impl DcEndpoint {
    pub fn parse(url: &str, starttls: bool) -> Result<Self, DirectoryError> {
        let parsed = Url::parse(url).map_err(|e| DirectoryError::Other {
            rc: 0,
            detail: format!("{url} is not a URL: {e}"),
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(DirectoryError::Other {
                rc: 0,
                detail: format!("{url} has no host"),
            });
        }
        match parsed.scheme() {
            "ldaps" => Ok(Self {
                url: url.to_owned(),
                starttls: false,
            }),
            "ldap" if starttls => Ok(Self {
                url: url.to_owned(),
                starttls: true,
            }),
            "ldap" => Err(DirectoryError::InsecureTransport {
                url: url.to_owned(),
            }),
            other => Err(DirectoryError::Other {
                rc: 0,
                detail: format!("{url}: scheme {other}:// is not LDAP; use ldaps:// or ldap://"),
            }),
        }
    }
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

/// Everything wrong with a configuration, each naming its key and how to fix it.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
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

impl ConfigError {
    fn single(key: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                key: key.to_owned(),
                message: message.into(),
            }],
        }
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
}

impl Config {
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        use config::{Environment, File, FileFormat};

        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = &sources.file {
            if !path.is_file() {
                return Err(ConfigError::single(
                    "--config",
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        for layer in &sources.layers {
            builder = builder.add_source(File::from_str(layer, FileFormat::Toml));
        }
        if sources.environment {
            builder = builder.add_source(
                Environment::with_prefix("SSPR")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("directory.urls")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("registration.allowed_networks")
                    .try_parsing(true),
            );
        }
        let mut checks = Checks::default();
        let raw = parse(builder, &mut checks.problems);
        match raw.and_then(|raw| checks.config(raw)) {
            Some(mut config) if checks.problems.is_empty() => {
                config.source = sources.file.clone();
                Ok(config)
            }
            _ => Err(ConfigError {
                problems: checks.problems,
            }),
        }
    }
}

/// Deserialises the layers into sections. Serde stops at the first bad value, so to report every
/// one, each is noted under its key and replaced by its default before the next attempt; the
/// rules across keys then still run on what is left. `None` when the text is no configuration at
/// all (a syntax error, an unknown key), which is noted under `config`.
fn parse(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    problems: &mut Vec<Problem>,
) -> Option<Raw> {
    use config::{File, FileFormat, Value, ValueKind};

    let defaults = config::Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .build()
        .expect("the compiled-in defaults parse");
    let mut builder = builder;
    // Each round replaces one more bad value by its default, which parses, so the rounds end;
    // a problem seen twice ends them too.
    loop {
        let error = match builder
            .build_cloned()
            .and_then(config::Config::try_deserialize)
        {
            Ok(raw) => return Some(raw),
            Err(error) => error,
        };
        let problem = Problem::from_layers(error);
        if problems.contains(&problem) {
            return None;
        }
        let default = defaults.get::<Value>(&problem.key).ok().or_else(|| {
            let key = problem.key.strip_suffix("_file")?;
            defaults.get::<Value>(key).ok()?;
            Some(Value::new(None, ValueKind::Nil))
        });
        let retry = match default {
            Some(value) if problem.key.contains('.') => {
                builder.set_override(&problem.key, value).ok()
            }
            _ => None,
        };
        problems.push(problem);
        builder = retry?;
    }
}

impl Problem {
    /// A value that failed to deserialise, under its key (`section.key`, a list's index dropped);
    /// anything else under `config`.
    fn from_layers(error: config::ConfigError) -> Self {
        let whole = error.to_string();
        let (key, message) = match error {
            config::ConfigError::At {
                error,
                key: Some(key),
                origin,
            } => (key, format!("{error}{}", in_origin(origin))),
            config::ConfigError::Type {
                unexpected,
                expected,
                key: Some(key),
                origin,
            } => (
                key,
                format!(
                    "invalid type: {unexpected}, expected {expected}{}",
                    in_origin(origin)
                ),
            ),
            _ => return Self::new("config", whole),
        };
        let key = key.split('[').next().unwrap_or_default();
        if key.matches('.').count() == 1 {
            Self::new(key, message)
        } else {
            Self::new("config", whole)
        }
    }

    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

fn in_origin(origin: Option<String>) -> String {
    origin.map(|o| format!(" in {o}")).unwrap_or_default()
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
