//! `sspr-bridge audit`: the audit log as CSV or JSON, for SIEMs and auditors.

use std::io::Write;
use std::time::SystemTime;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::domain::clock::Timestamp;
use crate::domain::secrets::Keys;
use crate::domain::store::{AuditEvent, AuditLog, AuditRecord, StoreError};
use crate::forward::AuditRow as Row;
use crate::store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// `--login TEXT`: the rows about what someone typed as TEXT, whether it named an account (its
/// sAMAccountName, in any case) or none (the keyed hash of the same text).
pub struct LoginSearch {
    name: String,
    hash: String,
}

impl LoginSearch {
    pub fn new(keys: &Keys, typed: &str) -> Self {
        Self {
            name: typed.trim().to_owned(),
            hash: keys.login_hash(typed),
        }
    }

    fn matches(&self, e: &AuditEvent) -> bool {
        e.login_hash.as_deref() == Some(self.hash.as_str())
            || e.sam_account_name
                .as_deref()
                .is_some_and(|sam| sam.to_lowercase() == self.name.to_lowercase())
    }
}

/// `--login`'s text: anything a person may have typed, but not nothing.
pub fn parse_login(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("give the login as the person typed it, e.g. --login jdoe".to_owned());
    }
    Ok(text.to_owned())
}

/// `2026-11-01` (midnight UTC) or a full RFC 3339 time such as `2026-11-01T08:00:00Z`.
pub fn parse_since(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full).map_err(|e| {
        format!("{text:?} is not a date (2026-11-01) or time (2026-11-01T08:00:00Z): {e}")
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(String),
}

const PAGE: i64 = 1000;

/// The CSV header, in the order of [`Row`]'s fields.
const COLUMNS: [&str; 11] = [
    "id",
    "time",
    "event",
    "outcome",
    "object_guid",
    "sam_account_name",
    "actor",
    "client_ip",
    "method",
    "reason",
    "login_hash",
];

/// A cell a spreadsheet would evaluate as a formula gets a leading `'` (OWASP's advice for CSV
/// injection): logins and reasons can be text anyone typed, such as `=HYPERLINK(...)`.
pub(crate) fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// Calls `each` for every event at or after `since` (that `login` matches, if given), oldest
/// first, a page at a time so memory stays flat however long the log is.
async fn for_each(
    log: &dyn AuditLog,
    since: Timestamp,
    login: Option<&LoginSearch>,
    mut each: impl FnMut(&AuditRecord) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut count = 0;
    let mut page = log.since(since, PAGE).await?;
    while let Some(last) = page.last() {
        for record in &page {
            if login.is_some_and(|l| !l.matches(&record.event)) {
                continue;
            }
            each(record)?;
            count += 1;
        }
        page = log.after(last.event.at, last.id, PAGE).await?;
    }
    Ok(count)
}

fn write_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Write(e.to_string())
}

/// `sspr-bridge audit`: exports from the configured database to `out` (only the events of the
/// typed `login`, if given); returns how many events.
pub async fn run(
    config: &Config,
    since: SystemTime,
    login: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, Box<dyn std::error::Error>> {
    let store = Store::connect(config.database.url.expose_secret(), 1).await?;
    let keys = Keys::new(config.security.secret_key.bytes());
    let login = login.map(|typed| LoginSearch::new(&keys, typed));
    let count = export(&store, since, login.as_ref(), format, out).await?;
    store.close().await;
    Ok(count)
}

/// Writes every event at or after `since` (only those `login` matches, if given); returns how
/// many.
pub async fn export(
    log: &dyn AuditLog,
    since: SystemTime,
    login: Option<&LoginSearch>,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let since = Timestamp::from_system_time(since);
    let count = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(COLUMNS).map_err(write_err)?;
            let count = for_each(log, since, login, |r| {
                let row = Row::new(r);
                let id = row.id.to_string();
                let cells = [
                    id.as_str(),
                    &row.time,
                    row.event,
                    row.outcome,
                    &row.object_guid,
                    row.sam_account_name,
                    row.actor,
                    row.client_ip,
                    row.method,
                    row.reason,
                    row.login_hash,
                ];
                w.write_record(cells.iter().map(|c| csv_cell(c).into_owned()))
                    .map_err(write_err)
            })
            .await?;
            w.flush().map_err(write_err)?;
            count
        }
        Format::Json => {
            out.write_all(b"[").map_err(write_err)?;
            let mut first = true;
            let count = for_each(log, since, login, |r| {
                out.write_all(if first { b"\n" } else { b",\n" })
                    .map_err(write_err)?;
                first = false;
                serde_json::to_writer(&mut *out, &Row::new(r)).map_err(write_err)
            })
            .await?;
            out.write_all(b"\n]\n").map_err(write_err)?;
            count
        }
    };
    out.flush().map_err(write_err)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::store::{AuditKind, Outcome};

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-1",
            "@SUM(1+1)",
            "\tcmd",
            "\rcmd",
        ] {
            assert_eq!(csv_cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in [
            "",
            "jdoe",
            "jdoe@sspr.test",
            "a=b",
            "10.0.0.1",
            "'quoted",
            " =x",
        ] {
            assert_eq!(csv_cell(fine), fine, "{fine:?}");
        }
    }

    #[test]
    fn a_login_search_finds_the_account_or_the_hash_of_the_same_text() {
        let keys = Keys::new(&[5; 32]);
        let row = |sam: Option<&str>, hash: Option<String>| AuditEvent {
            at: Timestamp::from_millis(0),
            event: AuditKind::FlowStarted,
            outcome: Outcome::Decoy,
            object_guid: None,
            sam_account_name: sam.map(str::to_owned),
            actor: None,
            client_ip: None,
            method: None,
            reason: None,
            login_hash: hash,
        };
        let typed = row(None, Some(keys.login_hash("Hunter2-Secret!")));
        let known = row(Some("JDoe"), None);
        let search = |text| LoginSearch::new(&keys, text);
        assert!(search("hunter2-secret!").matches(&typed));
        assert!(search(" HUNTER2-SECRET! ").matches(&typed));
        assert!(!search("hunter2-secret").matches(&typed));
        assert!(!LoginSearch::new(&Keys::new(&[6; 32]), "Hunter2-Secret!").matches(&typed));
        assert!(search("jdoe").matches(&known));
        assert!(search("JDOE").matches(&known));
        assert!(!search("jdoe2").matches(&known));
        assert!(!search("jdoe").matches(&row(None, None)));
        assert!(parse_login(" \t").unwrap_err().contains("--login jdoe"));
        assert_eq!(parse_login(" Jdoe ").unwrap(), " Jdoe ");
    }

    #[test]
    fn since_accepts_dates_and_times() {
        let day = parse_since("2026-11-01").unwrap();
        assert_eq!(
            Timestamp::from_system_time(day).as_millis(),
            1_793_491_200_000
        );
        let t = parse_since("2026-11-01T08:00:00Z").unwrap();
        assert_eq!(
            t.duration_since(day).unwrap(),
            Duration::from_secs(8 * 3600)
        );
        assert!(parse_since("yesterday").unwrap_err().contains("not a date"));
    }
}
