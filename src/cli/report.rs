//! `sspr-bridge report`: the rollout figures ([`crate::domain::report`]) as a table for a person,
//! JSON for a dashboard or CSV for a spreadsheet.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::audit_export::{self, csv_cell};
use crate::config::Config;
use crate::domain::clock::Timestamp;
use crate::domain::report::{Per, Report, ReportError, Reports};
use crate::wiring::{self, StartError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PerArg {
    Day,
    Week,
}

impl From<PerArg> for Per {
    fn from(per: PerArg) -> Per {
        match per {
            PerArg::Day => Per::Day,
            PerArg::Week => Per::Week,
        }
    }
}

/// Where the counted activity starts: a date or time, or a duration back from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    At(SystemTime),
    Ago(Duration),
}

impl Since {
    /// The activity of the last 30 days, when `--since` is not given.
    pub const DEFAULT: Since = Since::Ago(Duration::from_secs(30 * 86_400));

    pub fn at(self, now: Timestamp) -> Timestamp {
        match self {
            Since::At(at) => Timestamp::from_system_time(at),
            Since::Ago(ago) => now - ago,
        }
    }
}

/// `2026-11-01`, `2026-11-01T08:00:00Z`, or a duration such as `30d` or `12weeks`.
pub fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(ago) = humantime::parse_duration(text.trim()) {
        return Ok(Since::Ago(ago));
    }
    audit_export::parse_since(text).map(Since::At).map_err(|_| {
        format!(
            "{text:?} is not a date (2026-11-01), a time (2026-11-01T08:00:00Z) or a \
                 duration (30d, 12weeks)"
        )
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ReportCommandError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write the report: {0}")]
    Write(String),
}

fn write_err(e: impl std::fmt::Display) -> ReportCommandError {
    ReportCommandError::Write(e.to_string())
}

/// Computes the report from the configured directory and database and writes it to `out`.
pub async fn run(
    config: &Config,
    since: Since,
    per: Per,
    format: Format,
    out: &mut dyn Write,
) -> Result<Report, ReportCommandError> {
    let wired = wiring::wire(config).await?;
    let since = since.at(wired.deps.now());
    let result = Reports::new(&wired.deps, &wired.store)
        .report(since, per)
        .await;
    wired.store.close().await;
    let report = result?;
    write(&report, format, out)?;
    Ok(report)
}

/// An instant as RFC 3339 UTC, to the second.
fn time(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.to_system_time()).to_string()
}

/// The start of a period: its date.
fn period(at: Timestamp) -> String {
    time(at)[..10].to_owned()
}

/// The figures about people, named as in JSON and CSV.
fn people(report: &Report) -> Vec<(&'static str, u64)> {
    vec![
        ("users_in_scope", report.users_in_scope),
        ("registered", report.registered),
        ("stale", report.stale),
        ("never_registered", report.never_registered),
        ("blocked_now", report.blocked_now),
    ]
}

pub fn write(
    report: &Report,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ReportCommandError> {
    match format {
        Format::Table => write_table(report, out).map_err(write_err)?,
        Format::Json => {
            let value = to_json(report);
            serde_json::to_writer_pretty(&mut *out, &value).map_err(write_err)?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        Format::Csv => write_csv(report, out)?,
    }
    out.flush().map_err(write_err)
}

pub fn to_json(report: &Report) -> serde_json::Value {
    let mut value = json!({
        "generated_at": time(report.generated_at),
        "since": time(report.since),
        "per": report.per.as_str(),
        "registered_by_method": report
            .registered_by_method
            .iter()
            .map(|(kind, n)| (kind.as_str().to_owned(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "activity": report.activity.iter().map(|row| json!({
            "period": period(row.period),
            "action": row.action.as_str(),
            "method": row.method,
            "outcome": row.outcome.as_str(),
            "count": row.count,
        })).collect::<Vec<_>>(),
        "refusals": report.refusals.iter().map(|(reason, n)| json!({
            "reason": reason,
            "count": n,
        })).collect::<Vec<_>>(),
    });
    for (name, n) in people(report) {
        value[name] = json!(n);
    }
    value
}

/// One table: `figure,period,action,method,outcome,reason,count`, each row filling the columns
/// that apply to it.
fn write_csv(report: &Report, out: &mut dyn Write) -> Result<(), ReportCommandError> {
    let mut w = csv::Writer::from_writer(&mut *out);
    let mut row = |cells: [&str; 7]| {
        w.write_record(cells.iter().map(|c| csv_cell(c).into_owned()))
            .map_err(write_err)
    };
    row([
        "figure", "period", "action", "method", "outcome", "reason", "count",
    ])?;
    for (name, n) in people(report) {
        row([name, "", "", "", "", "", &n.to_string()])?;
    }
    for (kind, n) in &report.registered_by_method {
        row([
            "registered_by_method",
            "",
            "",
            kind.as_str(),
            "",
            "",
            &n.to_string(),
        ])?;
    }
    for a in &report.activity {
        row([
            "activity",
            &period(a.period),
            a.action.as_str(),
            a.method.as_deref().unwrap_or(""),
            a.outcome.as_str(),
            "",
            &a.count.to_string(),
        ])?;
    }
    for (reason, n) in &report.refusals {
        row(["refusal", "", "", "", "", reason, &n.to_string()])?;
    }
    w.flush().map_err(write_err)
}

fn write_table(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Report of {}; activity since {}, per {}",
        time(report.generated_at),
        time(report.since),
        report.per.as_str()
    )?;
    writeln!(out)?;
    let labels = [
        "Users in scope",
        "Registered",
        "Registered but stale (re-confirmation due)",
        "Never registered",
        "Blocked now (throttle)",
    ];
    for (label, (_, n)) in labels.iter().zip(people(report)) {
        writeln!(out, "{label:<44} {n:>8}")?;
        if *label == "Registered" {
            for (kind, n) in &report.registered_by_method {
                writeln!(out, "  {:<42} {n:>8}", kind.as_str())?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "Activity per {}", report.per.as_str())?;
    if report.activity.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        writeln!(
            out,
            "  {:<10}  {:<28}  {:<8}  {:<11}  {:>7}",
            "period", "action", "method", "outcome", "count"
        )?;
        for a in &report.activity {
            writeln!(
                out,
                "  {:<10}  {:<28}  {:<8}  {:<11}  {:>7}",
                period(a.period),
                a.action.as_str(),
                a.method.as_deref().unwrap_or("-"),
                a.outcome.as_str(),
                a.count
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Top refusal reasons")?;
    if report.refusals.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for (reason, n) in &report.refusals {
        writeln!(out, "  {reason:<44} {n:>6}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_durations() {
        assert_eq!(
            parse_since("30d"),
            Ok(Since::Ago(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(
            parse_since("2weeks"),
            Ok(Since::Ago(Duration::from_secs(14 * 86_400)))
        );
        let at = parse_since("2026-11-01").unwrap();
        assert_eq!(
            at.at(Timestamp::from_millis(0)),
            Timestamp::from_millis(1_793_491_200_000)
        );
        assert!(parse_since("yesterday").unwrap_err().contains("30d"));
    }
}
