//! The rules across keys, and those that read files (secrets, TLS, the banned list).

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::ui::{Image, ImageKind};
use super::{
    Config, DatabaseConfig, DcEndpoint, DirectoryConfig, PolicyConfig, Problem, Raw, RawSecurity,
    Scope, SecretKey, SecurityConfig, ServerConfig, SmtpConfig, TlsFiles, UiConfig,
};
use crate::domain::directory::DirectoryError;
use crate::domain::passkey::PasskeySettings;

/// Collects problems instead of stopping at the first, so one run shows everything to fix.
#[derive(Default)]
pub(super) struct Checks {
    pub(super) problems: Vec<Problem>,
}

impl Checks {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn missing_file(&mut self, key: &str, path: &Path, message: impl Into<String>) {
        self.problems.push(Problem::missing(key, path, message));
    }

    fn has_problem(&self, key_prefix: &str) -> bool {
        self.problems.iter().any(|p| p.key.starts_with(key_prefix))
    }

    /// A secret given inline (`key`) or in a file (`key_file`), not both.
    pub(super) fn secret(
        &mut self,
        key: &str,
        inline: Option<SecretString>,
        file: Option<&Path>,
    ) -> Option<SecretString> {
        match (inline, file) {
            (inline, None) => inline,
            (Some(_), Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (None, Some(path)) => match std::fs::read_to_string(path) {
                // A trailing newline from `echo secret > file` is not part of the secret.
                Ok(text) => Some(text.trim_end_matches(['\r', '\n']).into()),
                Err(e) => {
                    let key = format!("{key}_file");
                    let message = format!("cannot read {}: {e}", path.display());
                    if not_there_yet(e.kind()) && !path.as_os_str().is_empty() {
                        self.missing_file(&key, path, message);
                    } else {
                        self.problem(&key, message);
                    }
                    None
                }
            },
        }
    }

    pub(super) fn existing_file(&mut self, key: &str, path: Option<&Path>) {
        if let Some(path) = path.filter(|path| !path.is_file()) {
            let message = format!("{} does not exist or is not a file", path.display());
            let absent = match path.try_exists() {
                Ok(exists) => !exists,
                Err(e) => not_there_yet(e.kind()),
            };
            if absent {
                self.missing_file(key, path, message);
            } else {
                self.problem(key, message);
            }
        }
    }

    /// The checked configuration, or `None` when a setting it needs is missing.
    pub(super) fn config(&mut self, mut raw: Raw) -> Option<Config> {
        self.server_tls(&mut raw.server);
        self.policy(&mut raw.policy);
        self.directory(&mut raw.directory);
        self.database(&mut raw.database);
        self.ui(&mut raw.ui);
        let smtp = self.smtp(raw.smtp, raw.ui.name());
        if !raw.notify.admins.is_empty() && smtp.is_none() {
            self.problem(
                "notify.admins",
                "needs a mail server: set smtp.host and smtp.from",
            );
        }
        let secret_key = self.secret_key(raw.security);
        self.hooks(&mut raw.hooks);
        self.audit(&raw.audit);
        let passkeys = match PasskeySettings::for_site(&raw.server.public_url, &raw.passkey.rp_id) {
            Ok(passkeys) => passkeys,
            Err(e) => {
                self.problem("passkey.rp_id", e.to_string());
                PasskeySettings::off()
            }
        };
        let token_file = raw.metrics.token_file.take();
        raw.metrics.token = self.secret("metrics.token", raw.metrics.token, token_file.as_deref());
        Some(Config {
            source: None,
            server: raw.server,
            licence: raw.licence,
            helpdesk: raw.helpdesk,
            registration: raw.registration,
            reset: raw.reset,
            throttle: raw.throttle,
            policy: raw.policy,
            notify: raw.notify,
            directory: raw.directory,
            database: raw.database,
            smtp,
            security: SecurityConfig {
                secret_key: secret_key?,
            },
            log: raw.log,
            metrics: raw.metrics,
            ui: raw.ui,
            hooks: raw.hooks,
            audit: raw.audit,
            admin: raw.admin,
            passkeys,
        })
    }

    /// Both TLS files or neither; they must load as a matching pair, and the public URL must then
    /// be https, since this listener speaks nothing else.
    fn server_tls(&mut self, server: &mut ServerConfig) {
        self.existing_file("server.tls_cert", server.tls_cert.as_deref());
        self.existing_file("server.tls_key", server.tls_key.as_deref());
        let (cert, key) = match (server.tls_cert.take(), server.tls_key.take()) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => return,
            (Some(_), None) => {
                return self.problem(
                    "server.tls_key",
                    "must be set together with server.tls_cert",
                );
            }
            (None, Some(_)) => {
                return self.problem(
                    "server.tls_cert",
                    "must be set together with server.tls_key",
                );
            }
        };
        if cert.is_file() && key.is_file() {
            if let Err(e) = crate::tls::server_config(&cert, &key) {
                self.problem(e.key(), e.to_string());
            }
        }
        if server.public_url.scheme() != "https" {
            self.problem(
                "server.public_url",
                "must be https when server.tls_cert and server.tls_key are set",
            );
        }
        server.tls = Some(TlsFiles { cert, key });
    }

    fn policy(&mut self, policy: &mut PolicyConfig) {
        self.existing_file("policy.banned_file", policy.banned_file.as_deref());
        if let Some(path) = policy.banned_file.as_deref().filter(|p| p.is_file()) {
            match std::fs::read_to_string(path) {
                Ok(text) => policy.banned_words = text.lines().map(str::to_owned).collect(),
                Err(e) => self.problem(
                    "policy.banned_file",
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        match (&mut policy.scope, policy.group_dn.take()) {
            (Scope::Group(dn), Some(group_dn)) if group_dn.contains('=') => *dn = group_dn,
            (Scope::Group(_), Some(_)) => self.problem(
                "policy.group_dn",
                "must be a distinguished name, e.g. \"CN=SSPR Users,OU=Groups,DC=example,DC=com\"",
            ),
            (Scope::Group(_), None) => self.problem(
                "policy.group_dn",
                "is required when policy.scope = \"group\": the DN of the group whose members \
                 (nested groups included) may use self-service, e.g. \
                 \"CN=SSPR Users,OU=Groups,DC=example,DC=com\"",
            ),
            (Scope::All | Scope::Nobody, Some(_)) => self.problem(
                "policy.group_dn",
                "is only used with policy.scope = \"group\": set that scope, or leave group_dn \
                 empty",
            ),
            (Scope::All | Scope::Nobody, None) => {}
        }
    }

    fn directory(&mut self, d: &mut DirectoryConfig) {
        for url in &d.urls {
            match DcEndpoint::parse(url, d.starttls) {
                Ok(e) => d.endpoints.push(e),
                Err(DirectoryError::InsecureTransport { url }) => self.problem(
                    "directory.urls",
                    format!(
                        "{url} is unencrypted and passwords are never sent in clear: use \
                         ldaps:// or set directory.starttls = true"
                    ),
                ),
                Err(e) => self.problem("directory.urls", e.to_string()),
            }
        }
        self.existing_file("directory.ca_file", d.ca_file.as_deref());
        let inline = Some(d.bind_password.clone()).filter(|p| !p.expose_secret().is_empty());
        let file = d.bind_password_file.take();
        match self.secret("directory.bind_password", inline, file.as_deref()) {
            Some(password) => d.bind_password = password,
            None if self.has_problem("directory.bind_password") => {}
            None => self.problem(
                "directory.bind_password",
                "is required (or directory.bind_password_file, or \
                 SSPR__DIRECTORY__BIND_PASSWORD)",
            ),
        }
    }

    fn database(&mut self, db: &mut DatabaseConfig) {
        let inline = Some(db.url.clone()).filter(|u| !u.expose_secret().is_empty());
        let file = db.url_file.take();
        db.url = self
            .secret("database.url", inline, file.as_deref())
            .unwrap_or_else(|| {
                let path = db.data_dir.join("sspr-bridge.db");
                format!("sqlite://{}", path.display()).into()
            });
        let url = db.url.expose_secret();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            self.problem(
                "database.url",
                "must start with sqlite:// or postgres:// (empty: SQLite in database.data_dir)",
            );
        }
    }

    /// The mail server, `None` when `smtp.host` is empty.
    fn smtp(&mut self, mut s: SmtpConfig, name: &str) -> Option<SmtpConfig> {
        let file = s.password_file.take();
        s.password = self.secret("smtp.password", s.password, file.as_deref());
        self.existing_file("smtp.ca_file", s.ca_file.as_deref());
        if s.host.trim().is_empty() {
            return None;
        }
        match s.from.parse::<lettre::message::Mailbox>() {
            // A bare address gets the service's name as the sender's display name.
            Ok(mut from) if from.name.as_deref().is_none_or(|n| n.trim().is_empty()) => {
                from.name = Some(name.to_owned());
                s.from = from.to_string();
            }
            Ok(_) => {}
            Err(_) => self.problem(
                "smtp.from",
                "must be a mail address such as \"IT Service Desk <no-reply@example.com>\"",
            ),
        }
        if s.username.is_none() != s.password.is_none() && !self.has_problem("smtp.password") {
            self.problem(
                "smtp.username",
                "set both smtp.username and smtp.password (or neither)",
            );
        }
        Some(s)
    }

    /// The logo and favicon, read now so a missing or oversized file stops the start.
    fn ui(&mut self, ui: &mut UiConfig) {
        if let Some(path) = ui.logo.take() {
            match Image::read(&path, ImageKind::Logo) {
                Ok(image) => ui.logo_image = Some(image),
                Err(message) => self.problem("ui.logo", message),
            }
        }
        if let Some(path) = ui.favicon.take() {
            match Image::read(&path, ImageKind::Favicon) {
                Ok(image) => ui.favicon_image = Some(image),
                Err(message) => self.problem("ui.favicon", message),
            }
        }
    }

    fn secret_key(&mut self, raw: RawSecurity) -> Option<SecretKey> {
        let file = raw.secret_key_file.as_deref();
        let text = self.secret("security.secret_key", raw.secret_key, file);
        match text.map(|text| SecretKey::from_base64(text.expose_secret())) {
            Some(Some(key)) => Some(key),
            Some(None) => {
                self.problem(
                    "security.secret_key",
                    "must be 32 random bytes in base64; make one with `sspr-bridge gen-key`",
                );
                None
            }
            None => {
                if !self.has_problem("security.") {
                    self.problem(
                        "security.secret_key",
                        "is required to encrypt secrets at rest; make one with `sspr-bridge \
                         gen-key` and set it here, in security.secret_key_file, or in \
                         SSPR__SECURITY__SECRET_KEY",
                    );
                }
                None
            }
        }
    }
}

/// Whether a file that cannot be read may still appear, so `server.startup_wait` waits for it:
/// it does not exist yet, or it is in a directory the service may not enter yet (a volume another
/// container fills, and hands over to the service's uid, as it starts). Anything else is a
/// mistake to report at once.
pub(super) fn not_there_yet(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    )
}
