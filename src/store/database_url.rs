//! Which database a URL names, how sqlx must be given it, and how it may be shown to a human.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use url::Url;

use super::Backend;
use crate::domain::store::StoreError;

/// A database URL checked and rewritten into the form the sqlx `Any` driver is given.
pub(super) struct DatabaseUrl {
    pub backend: Backend,
    /// What sqlx connects to; may hold a password, so it is never logged.
    pub connect: String,
    /// For messages and logs: `connect` with any password replaced.
    pub redacted: String,
    /// The SQLite database file, `None` for PostgreSQL and in-memory SQLite.
    pub sqlite_file: Option<PathBuf>,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("backend", &self.backend)
            .field("redacted", &self.redacted)
            .field("sqlite_file", &self.sqlite_file)
            .finish_non_exhaustive()
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let (scheme, rest) = url.split_once(':').ok_or_else(unsupported)?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Self::sqlite(rest.strip_prefix("//").unwrap_or(rest)),
            "postgres" | "postgresql" => Ok(Self {
                backend: Backend::Postgres,
                connect: url.to_owned(),
                redacted: redact(url),
                sqlite_file: None,
            }),
            _ => Err(unsupported()),
        }
    }

    /// `rest` is what follows `sqlite://` (or `sqlite:`): a path and optional parameters.
    fn sqlite(rest: &str) -> Result<Self, StoreError> {
        let (path, params) = match rest.split_once('?') {
            Some((path, params)) => (path, Some(params)),
            None => (rest, None),
        };
        let param = |name: &str| {
            let pairs = url::form_urlencoded::parse(params.unwrap_or_default().as_bytes());
            pairs
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let in_memory = path == ":memory:" || param("mode").as_deref() == Some("memory");
        if path.is_empty() && !in_memory {
            // SQLite would open a private temporary file, which no one asking for a store wants.
            return Err(StoreError::new(
                "the SQLite URL has no PATH: use sqlite://PATH",
            ));
        }

        // Not `sqlite://`: after it `:memory:` would parse as an empty host and a port.
        let mut connect = format!("sqlite:{rest}");
        let sqlite_file = if in_memory {
            None
        } else {
            // The driver's own parser, so the file we create a directory for is the file it opens.
            let options = SqliteConnectOptions::from_str(&connect).map_err(|e| {
                StoreError::new(format!("invalid SQLite URL {}: {e}", redact(&connect)))
            })?;
            if param("mode").is_none() {
                connect.push(if params.is_some() { '&' } else { '?' });
                connect.push_str("mode=rwc");
            }
            Some(options.get_filename().to_path_buf())
        };
        Ok(Self {
            backend: Backend::Sqlite,
            redacted: redact(&connect),
            connect,
            sqlite_file,
        })
    }

    pub fn in_memory(&self) -> bool {
        self.backend == Backend::Sqlite && self.sqlite_file.is_none()
    }
}

fn unsupported() -> StoreError {
    StoreError::new(
        "unsupported database URL: expected sqlite://PATH, postgres://… or postgresql://…",
    )
}

const MASK: &str = "****";

/// The URL with the password replaced, both in the user-info and in a `password=` parameter
/// (which sqlx's PostgreSQL driver accepts too).
pub(crate) fn redact(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        // Cannot tell where a password would be, so show nothing of it.
        return "<unparseable URL>".to_owned();
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have a user-info part, which then has no password.
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { MASK.into() } else { v };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_file_urls_are_opened_read_write_create() {
        let url = DatabaseUrl::parse("sqlite:///var/lib/sspr/sspr.db").unwrap();
        assert_eq!(url.backend, Backend::Sqlite);
        assert_eq!(url.connect, "sqlite:/var/lib/sspr/sspr.db?mode=rwc");
        assert_eq!(
            url.sqlite_file,
            Some(PathBuf::from("/var/lib/sspr/sspr.db"))
        );

        let url = DatabaseUrl::parse("sqlite://data/sspr.db?mode=rw").unwrap();
        assert_eq!(url.connect, "sqlite:data/sspr.db?mode=rw");
        assert_eq!(url.sqlite_file, Some(PathBuf::from("data/sspr.db")));

        let url = DatabaseUrl::parse("sqlite:data/my%20sspr.db?cache=private").unwrap();
        assert_eq!(
            url.connect,
            "sqlite:data/my%20sspr.db?cache=private&mode=rwc"
        );
        assert_eq!(url.sqlite_file, Some(PathBuf::from("data/my sspr.db")));
    }

    #[test]
    fn in_memory_sqlite_has_no_file() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert!(parsed.in_memory(), "{url}");
            assert!(!parsed.connect.contains("rwc"), "{url}");
        }
    }

    #[test]
    fn postgres_urls_pass_through_and_are_redacted() {
        for scheme in ["postgres", "postgresql", "PostgreSQL"] {
            let url = format!("{scheme}://sspr:s3cret@db.example:5432/sspr?sslmode=require");
            let parsed = DatabaseUrl::parse(&url).unwrap();
            assert_eq!(parsed.backend, Backend::Postgres);
            assert_eq!(parsed.connect, url);
            assert!(!parsed.redacted.contains("s3cret"), "{}", parsed.redacted);
            assert!(parsed.redacted.contains("sspr:****@db.example:5432/sspr"));
        }
    }

    #[test]
    fn redaction_covers_the_password_parameter() {
        let shown = redact("postgres://db/sspr?user=sspr&password=s3cret&sslmode=verify-full");
        assert_eq!(
            shown,
            "postgres://db/sspr?user=sspr&password=****&sslmode=verify-full"
        );
        assert_eq!(redact("not a url with s3cret"), "<unparseable URL>");
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_the_url() {
        for url in [
            "mysql://root:s3cret@db/sspr",
            "s3cret",
            "",
            "file:///tmp/x.db",
        ] {
            let message = DatabaseUrl::parse(url).unwrap_err().message;
            assert!(message.contains("sqlite://PATH"), "{message}");
            assert!(message.contains("postgres://"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn sqlite_without_a_path_is_refused() {
        for url in ["sqlite://", "sqlite:", "sqlite://?cache=private"] {
            let message = DatabaseUrl::parse(url).unwrap_err().message;
            assert!(message.contains("no PATH"), "{url}: {message}");
        }
    }

    #[test]
    fn unknown_sqlite_parameters_are_refused() {
        let message = DatabaseUrl::parse("sqlite:///tmp/x.db?journal=wal")
            .unwrap_err()
            .message;
        assert!(message.contains("journal"), "{message}");
    }
}
