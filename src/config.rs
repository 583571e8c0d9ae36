//! Configuration: `config/default.toml` (compiled in) ← `--config FILE` ← `SSPR__SECTION__KEY`
//! environment variables. The raw layer is deserialised strictly (unknown keys are errors), then
//! validated into [`Config`], whose secrets print as `[REDACTED]` in Debug.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::directory::DirectoryError;
use crate::domain::helpdesk::CallerCheck;
use crate::domain::network::Cidr;
use crate::domain::scope::Scope;

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
    pub helpdesk: HelpdeskConfig,
    pub registration: RegistrationConfig,
    pub reset: ResetConfig,
    pub throttle: ThrottleConfig,
    pub policy: PolicyConfig,
    pub notify: NotifyConfig,
    pub directory: DirectoryConfig,
    pub database: DatabaseConfig,
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

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// `None`: plain HTTP (behind a reverse proxy that terminates TLS).
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<Cidr>,
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

/// `server.tls_cert` and `server.tls_key`, checked to exist and to parse as a matching pair.
#[derive(Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
pub struct LicenceConfig {
    pub azure_ad_premium: bool,
}

#[derive(Debug)]
pub struct HelpdeskConfig {
    pub url: Option<String>,
    /// `None`: the helpdesk is off.
    pub group_dn: Option<String>,
    pub require_verification: bool,
    pub allow_protected: Vec<String>,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub verification_lifetime: Duration,
    pub temporary_password_length: usize,
    pub operator_second_factor: bool,
    pub operator_max_sign_ins: u32,
    pub operator_max_actions: u32,
    pub operator_window: Duration,
    pub membership_recheck: Duration,
    pub verification_methods: Vec<CallerCheck>,
    pub manager_min_age: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    pub totp_issuer: String,
    /// A method confirmed longer ago than this many days no longer counts for a reset until the
    /// user confirms it again; 0 = never.
    pub reconfirm_days: u16,
    /// `remind` mails an unregistered user at most once per this interval.
    #[serde(with = "humantime_serde")]
    pub remind_interval: Duration,
    /// How long a one-time registration code from the helpdesk stays valid.
    #[serde(with = "humantime_serde")]
    pub code_lifetime: Duration,
    /// Where a user may register their first method with the AD password alone; from anywhere
    /// else the first one takes a registration code. Empty: anywhere.
    #[serde(deserialize_with = "cidr_list")]
    pub allowed_networks: Vec<Cidr>,
}

fn cidr_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|entry| entry.parse::<Cidr>().map_err(serde::de::Error::custom))
        .collect()
}

impl RegistrationConfig {
    /// `reconfirm_days` as a duration; `None` when confirmations never go stale.
    pub fn reconfirm_after(&self) -> Option<Duration> {
        (self.reconfirm_days > 0)
            .then(|| Duration::from_secs(u64::from(self.reconfirm_days) * 86_400))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfig {
    pub methods_required: u8,
    pub unlock_on_reset: bool,
    #[serde(with = "humantime_serde")]
    pub flow_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub code_lifetime: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    pub flow_max_failures: u32,
    pub user_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub user_window: Duration,
    #[serde(with = "humantime_serde")]
    pub user_block: Duration,
    pub ip_max_starts: u32,
    pub ip_max_verifications: u32,
    #[serde(with = "humantime_serde")]
    pub ip_window: Duration,
    pub email_max_sends: u32,
    #[serde(with = "humantime_serde")]
    pub email_window: Duration,
    pub signin_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub signin_window: Duration,
    #[serde(with = "humantime_serde")]
    pub signin_failure_floor: Duration,
    /// Per-address throttles count an IPv6 client by this many leading bits, 1 to 128.
    pub ipv6_prefix: u8,
}

/// Checks of new passwords on top of the directory's own policy.
#[derive(Debug)]
pub struct PolicyConfig {
    pub banned_file: Option<PathBuf>,
    /// The lines of `banned_file`, read at load so `check` reports an unreadable file.
    pub banned_words: Vec<String>,
    /// Minimum zxcvbn score, 0 (off) to 4.
    pub min_strength: u8,
    /// Who may use self-service.
    pub scope: Scope,
    /// Protected accounts that may use self-service anyway: user or group DNs.
    pub allow_protected: Vec<String>,
}

#[derive(Debug)]
pub struct NotifyConfig {
    /// Told of every self-service reset of a protected account.
    pub admins: Vec<String>,
}

#[derive(Debug)]
pub struct DirectoryConfig {
    pub endpoints: Vec<DcEndpoint>,
    pub ca_file: Option<PathBuf>,
    pub base_dn: String,
    pub bind_dn: String,
    pub bind_password: SecretString,
    /// Accounts no action may target, besides `bind_dn` itself (user DNs).
    pub never_reset: Vec<String>,
    /// The account `check` resets to prove the service account's rights; `None` = no self-test.
    pub self_test_user: Option<String>,
    pub user_filter: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_size: usize,
    pub retry_down_after: Duration,
    pub policy_hints: PolicyHints,
    pub balance: Balance,
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

#[derive(Debug)]
pub struct DatabaseConfig {
    /// May hold a password; shown masked.
    pub url: SecretString,
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

#[derive(Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct SecurityConfig {
    pub secret_key: SecretKey,
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

#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// `/metrics`: on the main listener only with the bearer token; on `listen` (an address of its
/// own) with the token if one is set.
#[derive(Debug)]
pub struct MetricsConfig {
    pub token: Option<SecretString>,
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

// The raw layer mirrors config/default.toml exactly; `deny_unknown_fields` turns typos into errors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    server: RawServer,
    licence: RawLicence,
    helpdesk: RawHelpdesk,
    registration: RegistrationConfig,
    reset: ResetConfig,
    throttle: ThrottleConfig,
    policy: RawPolicy,
    notify: RawNotify,
    directory: RawDirectory,
    database: RawDatabase,
    smtp: RawSmtp,
    security: RawSecurity,
    log: RawLog,
    metrics: RawMetrics,
    #[serde(default)]
    ui: UiConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    public_url: String,
    body_limit: usize,
    #[serde(with = "humantime_serde")]
    request_timeout: Duration,
    tls_cert: String,
    tls_key: String,
    trusted_proxies: Vec<String>,
    #[serde(with = "humantime_serde")]
    header_timeout: Duration,
    max_connections: usize,
    max_connections_per_client: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicence {
    azure_ad_premium: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHelpdesk {
    url: String,
    group_dn: String,
    require_verification: bool,
    allow_protected: Vec<String>,
    #[serde(with = "humantime_serde")]
    session_idle: Duration,
    #[serde(with = "humantime_serde")]
    session_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    verification_lifetime: Duration,
    temporary_password_length: usize,
    operator_second_factor: bool,
    operator_max_sign_ins: NonZeroU32,
    operator_max_actions: NonZeroU32,
    #[serde(with = "humantime_serde")]
    operator_window: Duration,
    #[serde(with = "humantime_serde")]
    membership_recheck: Duration,
    verification_methods: Vec<String>,
    #[serde(with = "humantime_serde")]
    manager_min_age: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    banned_file: String,
    min_strength: u8,
    scope: String,
    group_dn: String,
    allow_protected: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    admins: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    urls: Vec<String>,
    starttls: bool,
    ca_file: String,
    base_dn: String,
    bind_dn: String,
    bind_password: String,
    #[serde(default)]
    bind_password_file: Option<PathBuf>,
    never_reset: Vec<String>,
    self_test_user: String,
    user_filter: String,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
    #[serde(with = "humantime_serde")]
    connect_timeout: Duration,
    pool_size: usize,
    #[serde(with = "humantime_serde")]
    retry_down_after: Duration,
    policy_hints: PolicyHints,
    balance: Balance,
    #[serde(with = "humantime_serde")]
    write_affinity: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    #[serde(default)]
    url_file: Option<PathBuf>,
    data_dir: PathBuf,
    max_connections: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: u16,
    tls: SmtpTls,
    ca_file: String,
    username: String,
    password: String,
    #[serde(default)]
    password_file: Option<PathBuf>,
    from: String,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    secret_key: String,
    #[serde(default)]
    secret_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: String,
    #[serde(default)]
    token_file: Option<PathBuf>,
    listen: String,
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
        let raw: Raw = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::single("config", e.to_string()))?;
        let mut config = validate(raw)?;
        config.source = sources.file.clone();
        Ok(config)
    }
}

/// Collects problems instead of stopping at the first, so one run shows everything to fix.
#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// A secret given inline (`key`) or in a file (`key_file`), not both.
    fn secret(&mut self, key: &str, inline: String, file: Option<PathBuf>) -> Option<String> {
        match (inline.is_empty(), file) {
            (true, None) => None,
            (false, None) => Some(inline),
            (false, Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (true, Some(path)) => match std::fs::read_to_string(&path) {
                // A trailing newline from `echo secret > file` is not part of the secret.
                Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) => {
                    self.problem(
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
        }
    }

    fn existing_file(&mut self, key: &str, value: &str) -> Option<PathBuf> {
        if value.is_empty() {
            return None;
        }
        let path = PathBuf::from(value);
        if !path.is_file() {
            self.problem(key, format!("{value} does not exist or is not a file"));
        }
        Some(path)
    }
}

/// Both TLS files or neither; they must load as a matching pair, and the public URL must then be
/// https, since this listener speaks nothing else.
fn server_tls(v: &mut Validator, raw: &RawServer, public_url: &Url) -> Option<TlsFiles> {
    let cert = v.existing_file("server.tls_cert", &raw.tls_cert);
    let key = v.existing_file("server.tls_key", &raw.tls_key);
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => return None,
        (Some(_), None) => {
            v.problem(
                "server.tls_key",
                "must be set together with server.tls_cert",
            );
            return None;
        }
        (None, Some(_)) => {
            v.problem(
                "server.tls_cert",
                "must be set together with server.tls_key",
            );
            return None;
        }
    };
    if cert.is_file() && key.is_file() {
        if let Err(e) = crate::server::tls_config(&cert, &key) {
            v.problem(e.key(), e.to_string());
        }
    }
    if public_url.scheme() != "https" {
        v.problem(
            "server.public_url",
            "must be https when server.tls_cert and server.tls_key are set",
        );
    }
    Some(TlsFiles { cert, key })
}

fn validate(raw: Raw) -> Result<Config, ConfigError> {
    let mut v = Validator::default();

    let listen = raw.server.listen.parse().unwrap_or_else(|_| {
        v.problem(
            "server.listen",
            format!(
                "{:?} is not an address:port such as 0.0.0.0:8080",
                raw.server.listen
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_url = match Url::parse(&raw.server.public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            v.problem(
                "server.public_url",
                "must be the http(s) URL users reach the service at, e.g. https://sspr.example.com",
            );
            Url::parse("http://localhost").expect("static URL")
        }
    };
    if raw.server.body_limit < 1024 {
        v.problem("server.body_limit", "must be at least 1024 bytes");
    }
    if raw.server.header_timeout < Duration::from_secs(1) {
        v.problem("server.header_timeout", "must be at least 1s");
    }
    if raw.server.max_connections == 0 {
        v.problem("server.max_connections", "must be at least 1");
    }
    if raw.server.max_connections_per_client == 0 {
        v.problem("server.max_connections_per_client", "must be at least 1");
    }
    let tls = server_tls(&mut v, &raw.server, &public_url);
    let trusted_proxies = raw
        .server
        .trusted_proxies
        .iter()
        .filter_map(|entry| {
            entry
                .parse::<Cidr>()
                .map_err(|message| v.problem("server.trusted_proxies", message))
                .ok()
        })
        .collect();

    let helpdesk_url = (!raw.helpdesk.url.trim().is_empty()).then(|| raw.helpdesk.url.clone());
    if let Some(url) = &helpdesk_url {
        if !matches!(
            Url::parse(url).map(|u| u.scheme().to_owned()).as_deref(),
            Ok("https" | "http" | "mailto" | "tel")
        ) {
            v.problem(
                "helpdesk.url",
                "must be an https:, http:, mailto: or tel: link",
            );
        }
    }

    let mut verification_methods = Vec::new();
    for name in &raw.helpdesk.verification_methods {
        match CallerCheck::parse(name.trim()) {
            Some(check) if !verification_methods.contains(&check) => {
                verification_methods.push(check);
            }
            Some(_) => {}
            None => v.problem(
                "helpdesk.verification_methods",
                format!("{name:?} is not one of \"registered\", \"ad_mail\", \"manager\""),
            ),
        }
    }
    if !(12..=128).contains(&raw.helpdesk.temporary_password_length) {
        v.problem(
            "helpdesk.temporary_password_length",
            "must be between 12 and 128 characters",
        );
    }
    for (key, value) in [
        ("helpdesk.session_idle", raw.helpdesk.session_idle),
        ("helpdesk.session_lifetime", raw.helpdesk.session_lifetime),
        (
            "helpdesk.verification_lifetime",
            raw.helpdesk.verification_lifetime,
        ),
        ("helpdesk.operator_window", raw.helpdesk.operator_window),
    ] {
        if value.is_zero() {
            v.problem(key, "must be more than 0, e.g. \"15m\"");
        }
    }
    if raw
        .helpdesk
        .allow_protected
        .iter()
        .any(|dn| !dn.contains('='))
    {
        v.problem(
            "helpdesk.allow_protected",
            "must list distinguished names, e.g. [\"CN=IT Staff,OU=Groups,DC=example,DC=com\"]",
        );
    }

    if !matches!(raw.reset.methods_required, 1 | 2) {
        v.problem(
            "reset.methods_required",
            "must be 1 or 2 (2 means two different methods)",
        );
    }
    for (key, value) in [
        (
            "registration.session_lifetime",
            raw.registration.session_lifetime,
        ),
        (
            "registration.remind_interval",
            raw.registration.remind_interval,
        ),
        ("registration.code_lifetime", raw.registration.code_lifetime),
        ("reset.flow_lifetime", raw.reset.flow_lifetime),
        ("reset.code_lifetime", raw.reset.code_lifetime),
        ("throttle.user_window", raw.throttle.user_window),
        ("throttle.ip_window", raw.throttle.ip_window),
        ("throttle.email_window", raw.throttle.email_window),
        ("throttle.signin_window", raw.throttle.signin_window),
    ] {
        if value.is_zero() {
            v.problem(key, "must be more than 0, e.g. \"15m\"");
        }
    }
    for (key, value) in [
        ("throttle.flow_max_failures", raw.throttle.flow_max_failures),
        ("throttle.user_max_failures", raw.throttle.user_max_failures),
        ("throttle.ip_max_starts", raw.throttle.ip_max_starts),
        (
            "throttle.ip_max_verifications",
            raw.throttle.ip_max_verifications,
        ),
        ("throttle.email_max_sends", raw.throttle.email_max_sends),
        (
            "throttle.signin_max_failures",
            raw.throttle.signin_max_failures,
        ),
    ] {
        if value == 0 {
            v.problem(key, "must be at least 1");
        }
    }
    if !(1..=128).contains(&raw.throttle.ipv6_prefix) {
        v.problem(
            "throttle.ipv6_prefix",
            "must be a prefix length from 1 to 128; 64 (one subnet) is a good default",
        );
    }
    if raw.registration.reconfirm_days > 730 {
        v.problem(
            "registration.reconfirm_days",
            "must be 0 (never) or a number of days from 1 to 730",
        );
    }
    if raw.registration.totp_issuer.trim().is_empty() {
        v.problem(
            "registration.totp_issuer",
            "must name the service, e.g. \"Contoso IT\"",
        );
    }

    if raw.policy.min_strength > 4 {
        v.problem(
            "policy.min_strength",
            "must be a zxcvbn score from 0 (off) to 4; 3 is a good default",
        );
    }
    let banned_file = v.existing_file("policy.banned_file", &raw.policy.banned_file);
    let banned_words = match &banned_file {
        Some(path) if path.is_file() => match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) => {
                v.problem(
                    "policy.banned_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                Vec::new()
            }
        },
        _ => Vec::new(),
    };

    let group_dn = raw.policy.group_dn.trim();
    let scope = match raw.policy.scope.as_str() {
        "all" => Some(Scope::All),
        "group" => Some(Scope::Group(group_dn.to_owned())),
        "none" => Some(Scope::Nobody),
        _ => {
            v.problem(
                "policy.scope",
                "must be \"all\", \"group\" (the members of policy.group_dn) or \"none\"",
            );
            None
        }
    };
    match &scope {
        Some(Scope::Group(_)) if group_dn.is_empty() => v.problem(
            "policy.group_dn",
            "is required when policy.scope = \"group\": the DN of the group whose members \
             (nested groups included) may use self-service, e.g. \
             \"CN=SSPR Users,OU=Groups,DC=example,DC=com\"",
        ),
        Some(Scope::Group(_)) if !group_dn.contains('=') => v.problem(
            "policy.group_dn",
            "must be a distinguished name, e.g. \"CN=SSPR Users,OU=Groups,DC=example,DC=com\"",
        ),
        Some(Scope::All | Scope::Nobody) if !group_dn.is_empty() => v.problem(
            "policy.group_dn",
            "is only used with policy.scope = \"group\": set that scope, or leave group_dn empty",
        ),
        _ => {}
    }
    if raw
        .policy
        .allow_protected
        .iter()
        .any(|dn| !dn.contains('='))
    {
        v.problem(
            "policy.allow_protected",
            "must list distinguished names of users or groups, e.g. \
             [\"CN=Jane Admin,OU=Admins,DC=example,DC=com\"]",
        );
    }

    let d = raw.directory;
    if d.urls.is_empty() {
        v.problem(
            "directory.urls",
            "list at least one domain controller, e.g. [\"ldaps://dc1.example.com:636\"]",
        );
    }
    let mut endpoints = Vec::new();
    for url in &d.urls {
        match DcEndpoint::parse(url, d.starttls) {
            Ok(e) => endpoints.push(e),
            Err(DirectoryError::InsecureTransport { url }) => v.problem(
                "directory.urls",
                format!(
                    "{url} is unencrypted and passwords are never sent in clear: use ldaps:// \
                     or set directory.starttls = true"
                ),
            ),
            Err(e) => v.problem("directory.urls", e.to_string()),
        }
    }
    let ca_file = v.existing_file("directory.ca_file", &d.ca_file);
    for (key, value) in [
        ("directory.base_dn", &d.base_dn),
        ("directory.bind_dn", &d.bind_dn),
    ] {
        if value.trim().is_empty() {
            v.problem(key, "is required, e.g. DC=example,DC=com");
        }
    }
    let bind_password = v
        .secret(
            "directory.bind_password",
            d.bind_password,
            d.bind_password_file,
        )
        .unwrap_or_else(|| {
            if !v
                .problems
                .iter()
                .any(|p| p.key.starts_with("directory.bind_password"))
            {
                v.problem(
                    "directory.bind_password",
                    "is required (or directory.bind_password_file, or \
                     SSPR__DIRECTORY__BIND_PASSWORD)",
                );
            }
            String::new()
        });
    let filter = d.user_filter.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        v.problem(
            "directory.user_filter",
            "must be an LDAP filter in parentheses, e.g. (objectClass=user)",
        );
    }
    if d.pool_size == 0 {
        v.problem("directory.pool_size", "must be at least 1");
    }
    for (key, value) in [
        ("directory.timeout", d.timeout),
        ("directory.connect_timeout", d.connect_timeout),
    ] {
        if value.is_zero() {
            v.problem(key, "must be more than 0, e.g. \"5s\"");
        }
    }

    let db = raw.database;
    let db_url = v
        .secret("database.url", db.url, db.url_file)
        .unwrap_or_else(|| format!("sqlite://{}", db.data_dir.join("sspr-bridge.db").display()));
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| db_url.starts_with(p))
    {
        v.problem(
            "database.url",
            "must start with sqlite:// or postgres:// (empty: SQLite in database.data_dir)",
        );
    }
    if db.max_connections == 0 {
        v.problem("database.max_connections", "must be at least 1");
    }

    let s = raw.smtp;
    let smtp_password = v.secret("smtp.password", s.password, s.password_file);
    let smtp_ca = v.existing_file("smtp.ca_file", &s.ca_file);
    let smtp = if s.host.trim().is_empty() {
        None
    } else {
        if s.from.parse::<lettre::message::Mailbox>().is_err() {
            v.problem(
                "smtp.from",
                "must be a mail address such as \"IT Service Desk <no-reply@example.com>\"",
            );
        }
        if s.username.is_empty() != smtp_password.is_none() {
            v.problem(
                "smtp.username",
                "set both smtp.username and smtp.password (or neither)",
            );
        }
        Some(SmtpConfig {
            host: s.host,
            port: s.port,
            tls: s.tls,
            ca_file: smtp_ca,
            username: (!s.username.is_empty()).then_some(s.username),
            password: smtp_password.map(SecretString::from),
            from: s.from,
            timeout: s.timeout,
        })
    };

    for address in &raw.notify.admins {
        if address.trim().parse::<lettre::Address>().is_err() {
            v.problem(
                "notify.admins",
                format!("{address:?} is not a mail address; list addresses such as \"it-security@example.com\""),
            );
        }
    }
    if !raw.notify.admins.is_empty() && smtp.is_none() {
        v.problem(
            "notify.admins",
            "needs a mail server: set smtp.host and smtp.from",
        );
    }

    let key_text = v.secret(
        "security.secret_key",
        raw.security.secret_key,
        raw.security.secret_key_file,
    );
    let secret_key = match key_text.as_deref().map(SecretKey::from_base64) {
        Some(Some(key)) => Some(key),
        Some(None) => {
            v.problem(
                "security.secret_key",
                "must be 32 random bytes in base64; make one with `sspr-bridge gen-key`",
            );
            None
        }
        None => {
            if !v.problems.iter().any(|p| p.key.starts_with("security.")) {
                v.problem(
                    "security.secret_key",
                    "is required to encrypt secrets at rest; make one with `sspr-bridge gen-key` \
                     and set it here, in security.secret_key_file, or in SSPR__SECURITY__SECRET_KEY",
                );
            }
            None
        }
    };

    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        v.problem(
            "log.level",
            "must be a level (error, warn, info, debug, trace) or a filter such as \
             \"info,sspr_bridge=debug\"",
        );
    }

    let metrics_token = v.secret("metrics.token", raw.metrics.token, raw.metrics.token_file);
    let metrics_listen = match raw.metrics.listen.trim() {
        "" => None,
        text => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                v.problem(
                    "metrics.listen",
                    "must be an address and port such as \"127.0.0.1:9090\", or empty",
                );
                None
            }
        },
    };

    match secret_key {
        Some(secret_key) if v.problems.is_empty() => Ok(Config {
            source: None,
            server: ServerConfig {
                listen,
                public_url,
                body_limit: raw.server.body_limit,
                request_timeout: raw.server.request_timeout,
                tls,
                trusted_proxies,
                header_timeout: raw.server.header_timeout,
                max_connections: raw.server.max_connections,
                max_connections_per_client: raw.server.max_connections_per_client,
            },
            licence: LicenceConfig {
                azure_ad_premium: raw.licence.azure_ad_premium,
            },
            helpdesk: HelpdeskConfig {
                url: helpdesk_url,
                group_dn: (!raw.helpdesk.group_dn.trim().is_empty())
                    .then(|| raw.helpdesk.group_dn.trim().to_owned()),
                require_verification: raw.helpdesk.require_verification,
                allow_protected: raw.helpdesk.allow_protected,
                session_idle: raw.helpdesk.session_idle,
                session_lifetime: raw.helpdesk.session_lifetime,
                verification_lifetime: raw.helpdesk.verification_lifetime,
                temporary_password_length: raw.helpdesk.temporary_password_length,
                operator_second_factor: raw.helpdesk.operator_second_factor,
                operator_max_sign_ins: raw.helpdesk.operator_max_sign_ins.get(),
                operator_max_actions: raw.helpdesk.operator_max_actions.get(),
                operator_window: raw.helpdesk.operator_window,
                membership_recheck: raw.helpdesk.membership_recheck,
                verification_methods,
                manager_min_age: raw.helpdesk.manager_min_age,
            },
            registration: raw.registration,
            reset: raw.reset,
            throttle: raw.throttle,
            policy: PolicyConfig {
                banned_file,
                banned_words,
                min_strength: raw.policy.min_strength,
                scope: scope.unwrap_or_default(),
                allow_protected: raw.policy.allow_protected,
            },
            notify: NotifyConfig {
                admins: raw
                    .notify
                    .admins
                    .iter()
                    .map(|a| a.trim().to_owned())
                    .collect(),
            },
            directory: DirectoryConfig {
                endpoints,
                ca_file,
                base_dn: d.base_dn,
                bind_dn: d.bind_dn,
                bind_password: SecretString::from(bind_password),
                never_reset: d
                    .never_reset
                    .iter()
                    .map(|dn| dn.trim().to_owned())
                    .filter(|dn| !dn.is_empty())
                    .collect(),
                self_test_user: Some(d.self_test_user.trim().to_owned()).filter(|u| !u.is_empty()),
                user_filter: filter.to_owned(),
                timeout: d.timeout,
                connect_timeout: d.connect_timeout,
                pool_size: d.pool_size,
                retry_down_after: d.retry_down_after,
                policy_hints: d.policy_hints,
                balance: d.balance,
                write_affinity: d.write_affinity,
            },
            database: DatabaseConfig {
                url: SecretString::from(db_url),
                max_connections: db.max_connections,
            },
            smtp,
            security: SecurityConfig { secret_key },
            log: LogConfig {
                format: raw.log.format,
                level: raw.log.level,
            },
            metrics: MetricsConfig {
                token: metrics_token.map(SecretString::from),
                listen: metrics_listen,
            },
            ui: raw.ui,
        }),
        _ => Err(ConfigError {
            problems: v.problems,
        }),
    }
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
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [directory]
        urls = ["ldaps://dc1.example.com:636"]
        base_dn = "DC=example,DC=com"
        bind_dn = "CN=svc-sspr,OU=Service,DC=example,DC=com"
        bind_password = "service-password"
        [security]
        secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    "#;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::load(&Sources {
            file: None,
            layers: vec![MINIMAL.to_owned(), extra.to_owned()],
            environment: false,
        })
    }

    #[test]
    fn defaults_plus_minimal_settings_are_valid() {
        let config = load("").unwrap();
        assert!(!config.licence.azure_ad_premium);
        assert_eq!(config.directory.endpoints.len(), 1);
        assert_eq!(config.directory.timeout, Duration::from_secs(5));
        assert!(config.smtp.is_none());
        assert_eq!(
            config.database.url.expose_secret(),
            "sqlite:///var/lib/sspr-bridge/sspr-bridge.db"
        );
        assert_eq!(config.security.secret_key.bytes()[31], 31);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = load("").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("service-password"), "{debug}");
        assert!(!debug.contains("AAECAwQF"), "{debug}");
    }

    #[test]
    fn tls_files_come_in_pairs_that_parse_and_need_an_https_url() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not PEM").unwrap();
        let junk = junk.display();
        let err = load(&format!("[server]\ntls_cert = \"{junk}\"")).unwrap_err();
        assert!(err.mentions("server.tls_key"), "{err}");
        let err = load(&format!(
            "[server]\ntls_cert = \"{junk}\"\ntls_key = \"{junk}\"\n\
             public_url = \"https://sspr.example.com\""
        ))
        .unwrap_err();
        assert!(err.mentions("server.tls_cert"), "{err}");
        assert!(!err.mentions("server.public_url"), "{err}");
        let err = load("[server]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"")
            .unwrap_err();
        assert!(
            err.mentions("server.tls_cert") && err.mentions("server.tls_key"),
            "{err}"
        );
        assert!(
            err.mentions("server.public_url"),
            "http with TLS here: {err}"
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidrs() {
        let config = load("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]").unwrap();
        assert_eq!(config.server.trusted_proxies.len(), 2);
        let err = load("[server]\ntrusted_proxies = [\"proxy.example.com\"]").unwrap_err();
        assert!(err.mentions("server.trusted_proxies"), "{err}");
    }

    #[test]
    fn registration_networks_are_addresses_or_cidrs_and_default_to_anywhere() {
        assert!(load("").unwrap().registration.allowed_networks.is_empty());
        let config =
            load("[registration]\nallowed_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]").unwrap();
        assert_eq!(config.registration.allowed_networks.len(), 2);
        let err = load("[registration]\nallowed_networks = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(err.to_string().contains("allowed_networks"), "{err}");
        assert!(err.to_string().contains("prefix length"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = load("[server]\nlisten_port = 1").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = load("[servr]\nlisten = \"x\"").unwrap_err();
        assert!(err.to_string().contains("servr"), "{err}");
    }

    #[test]
    fn plaintext_ldap_is_refused_unless_starttls() {
        let err = load("[directory]\nurls = [\"ldap://dc1.example.com\"]").unwrap_err();
        assert!(err.mentions("directory.urls"), "{err}");
        assert!(err.to_string().contains("starttls"), "{err}");

        let config =
            load("[directory]\nurls = [\"ldap://dc1.example.com\"]\nstarttls = true").unwrap();
        assert!(config.directory.endpoints[0].starttls);
    }

    #[test]
    fn secret_key_missing_or_malformed_says_how_to_make_one() {
        let err = load("[security]\nsecret_key = \"\"").unwrap_err();
        assert!(err.mentions("security.secret_key"));
        assert!(err.to_string().contains("sspr-bridge gen-key"), "{err}");
        let err = load("[security]\nsecret_key = \"c2hvcnQ=\"").unwrap_err();
        assert!(err.to_string().contains("gen-key"), "{err}");
    }

    #[test]
    fn generated_key_is_accepted() {
        let key = SecretKey::generate_base64();
        let config = load(&format!("[security]\nsecret_key = \"{key}\"")).unwrap();
        assert_ne!(config.security.secret_key.bytes(), &[0u8; 32]);
    }

    #[test]
    fn metrics_are_off_by_default_and_take_a_token_file_and_an_address() {
        let config = load("").unwrap();
        assert!(config.metrics.token.is_none() && config.metrics.listen.is_none());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "scrape\n").unwrap();
        let config = load(&format!(
            "[metrics]\ntoken_file = {file:?}\nlisten = \"127.0.0.1:9090\""
        ))
        .unwrap();
        assert_eq!(config.metrics.token.unwrap().expose_secret(), "scrape");
        assert_eq!(config.metrics.listen, Some(([127, 0, 0, 1], 9090).into()));

        let err = load("[metrics]\nlisten = \"localhost\"").unwrap_err();
        assert!(err.mentions("metrics.listen"), "{err}");
    }

    #[test]
    fn secrets_can_come_from_files_but_not_twice() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bind");
        std::fs::write(&file, "from-file\n").unwrap();
        let config = load(&format!(
            "[directory]\nbind_password = \"\"\nbind_password_file = {:?}",
            file
        ))
        .unwrap();
        assert_eq!(config.directory.bind_password.expose_secret(), "from-file");

        let err = load(&format!("[directory]\nbind_password_file = {:?}", file)).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");

        let err = load("[directory]\nbind_password = \"\"\nbind_password_file = \"/nonexistent\"")
            .unwrap_err();
        assert!(err.mentions("directory.bind_password_file"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load(
            "[server]\nlisten = \"nope\"\npublic_url = \"ftp://x\"\n[smtp]\nhost = \"mail\"\nfrom = \"not an address\"",
        )
        .unwrap_err();
        for key in ["server.listen", "server.public_url", "smtp.from"] {
            assert!(err.mentions(key), "{key} missing from {err}");
        }
    }

    #[test]
    fn policy_defaults_and_bounds() {
        let config = load("").unwrap();
        assert_eq!(config.policy.min_strength, 3);
        assert!(config.policy.banned_file.is_none() && config.policy.banned_words.is_empty());
        let err = load("[policy]\nmin_strength = 5").unwrap_err();
        assert!(err.mentions("policy.min_strength"), "{err}");
        let err = load("[policy]\nbanned_file = \"/nonexistent/banned.txt\"").unwrap_err();
        assert!(err.mentions("policy.banned_file"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("banned.txt");
        std::fs::write(&file, "contoso\n# ours\nfabrikam\n").unwrap();
        let config = load(&format!(
            "[policy]\nbanned_file = {file:?}\nmin_strength = 0"
        ))
        .unwrap();
        assert_eq!(
            config.policy.banned_words,
            ["contoso", "# ours", "fabrikam"]
        );
        assert_eq!(config.policy.min_strength, 0);
    }

    #[test]
    fn reconfirmation_and_reminder_settings() {
        let config = load("").unwrap();
        assert_eq!(config.registration.reconfirm_after(), None);
        assert_eq!(
            config.registration.remind_interval,
            Duration::from_secs(30 * 86_400)
        );
        let config =
            load("[registration]\nreconfirm_days = 730\nremind_interval = \"7d\"").unwrap();
        assert_eq!(
            config.registration.reconfirm_after(),
            Some(Duration::from_secs(730 * 86_400))
        );
        let err = load("[registration]\nreconfirm_days = 731").unwrap_err();
        assert!(err.mentions("registration.reconfirm_days"), "{err}");
        let err = load("[registration]\nreconfirm_days = -1").unwrap_err();
        assert!(err.to_string().contains("reconfirm_days"), "{err}");
        let err = load("[registration]\nremind_interval = \"0s\"").unwrap_err();
        assert!(err.mentions("registration.remind_interval"), "{err}");
    }

    #[test]
    fn the_ipv6_throttle_prefix_is_a_prefix_length() {
        assert_eq!(load("").unwrap().throttle.ipv6_prefix, 64);
        for ok in [1, 48, 128] {
            let config = load(&format!("[throttle]\nipv6_prefix = {ok}")).unwrap();
            assert_eq!(config.throttle.ipv6_prefix, ok);
        }
        for bad in ["0", "129"] {
            let err = load(&format!("[throttle]\nipv6_prefix = {bad}")).unwrap_err();
            assert!(err.mentions("throttle.ipv6_prefix"), "{bad}: {err}");
        }
        let err = load("[throttle]\nipv6_prefix = -1").unwrap_err();
        assert!(err.to_string().contains("ipv6_prefix"), "{err}");
    }

    #[test]
    fn scope_and_protected_accounts() {
        let config = load("").unwrap();
        assert_eq!(config.policy.scope, Scope::All);
        assert!(config.policy.allow_protected.is_empty() && config.notify.admins.is_empty());
        let group = "CN=SSPR Users,OU=Groups,DC=example,DC=com";
        let config = load(&format!(
            "[policy]\nscope = \"group\"\ngroup_dn = {group:?}\n\
             allow_protected = [\"CN=Jane,DC=example,DC=com\"]"
        ))
        .unwrap();
        assert_eq!(config.policy.scope, Scope::Group(group.to_owned()));
        assert_eq!(config.policy.allow_protected, ["CN=Jane,DC=example,DC=com"]);
        assert_eq!(
            load("[policy]\nscope = \"none\"").unwrap().policy.scope,
            Scope::Nobody
        );

        for (bad, key, says) in [
            ("scope = \"some\"", "policy.scope", "\"group\""),
            ("scope = \"group\"", "policy.group_dn", "is required"),
            (
                "scope = \"group\"\ngroup_dn = \"SSPR Users\"",
                "policy.group_dn",
                "distinguished",
            ),
            (
                "group_dn = \"CN=x,DC=y\"",
                "policy.group_dn",
                "only used with",
            ),
            (
                "allow_protected = [\"jdoe\"]",
                "policy.allow_protected",
                "distinguished",
            ),
        ] {
            let err = load(&format!("[policy]\n{bad}")).unwrap_err();
            assert!(err.mentions(key), "{bad}: {err}");
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn admins_to_notify_are_mail_addresses_and_need_a_mail_server() {
        let smtp = "[smtp]\nhost = \"mail\"\nfrom = \"sspr@example.com\"\n";
        let config = load(&format!(
            "{smtp}[notify]\nadmins = [\" sec@example.com\", \"it@example.com\"]"
        ))
        .unwrap();
        assert_eq!(config.notify.admins, ["sec@example.com", "it@example.com"]);
        let err = load(&format!("{smtp}[notify]\nadmins = [\"Security Team\"]")).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"Security Team\" is not a mail address"),
            "{err}"
        );
        let err = load("[notify]\nadmins = [\"sec@example.com\"]").unwrap_err();
        assert!(err.mentions("notify.admins"), "{err}");
        assert!(err.to_string().contains("smtp.host"), "{err}");
    }

    #[test]
    fn database_password_is_masked_for_display() {
        assert_eq!(
            masked_url("postgres://sspr:hunter2@db:5432/sspr"),
            "postgres://sspr:***@db:5432/sspr"
        );
        assert_eq!(masked_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
