//! `sspr-bridge remind` and `sspr-bridge notify-expiry`: the batch reminders, for cron or a
//! systemd timer. The rules are in [`crate::domain::reminders`]; this wires the service's own
//! directory, store and mailer, runs one, and prints what it did.

use std::io::Write;

use crate::config::Config;
use crate::domain::locale::Locale;
use crate::domain::reminders::{ReminderError, Reminders, Report, Run};
use crate::wiring::{self, StartError};

/// What both commands take.
#[derive(Clone, Debug, clap::Args)]
pub struct BatchArgs {
    /// List who would get a mail (sAMAccountName and masked address); send and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only members of this group (nested membership counts), within policy.scope.
    #[arg(long, value_name = "DN")]
    pub group: Option<String>,
    /// Language of the mails: AD does not say which one each user reads.
    #[arg(long, value_parser = ["en", "nl", "de", "fr"], default_value = "en")]
    pub lang: String,
}

#[derive(Clone, Debug)]
pub enum Batch {
    Remind,
    /// Thresholds in days before the expiry.
    NotifyExpiry {
        days: Vec<u32>,
    },
}

/// One `--days` threshold: a whole number of days from 1 to 365.
pub fn parse_day(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(days @ 1..=365) => Ok(days),
        _ => Err(format!(
            "{text:?} is not a number of days from 1 to 365 (e.g. --days 14,7,1)"
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Reminder(#[from] ReminderError),
    #[error("cannot write the report: {0}")]
    Write(#[from] std::io::Error),
}

/// Runs `batch` and writes one line per recipient and a summary to `out`.
pub async fn run(
    config: &Config,
    batch: &Batch,
    args: &BatchArgs,
    out: &mut dyn Write,
) -> Result<Report, BatchError> {
    let wired = wiring::wire(config).await?;
    let run = Run {
        dry_run: args.dry_run,
        group_dn: args.group.clone(),
        locale: Locale::of(&args.lang),
    };
    let reminders = Reminders::new(&wired.deps, &wired.store);
    let result = match batch {
        Batch::Remind => {
            reminders
                .remind(config.registration.remind_interval, &run)
                .await
        }
        Batch::NotifyExpiry { days } => reminders.notify_expiry(days, &run).await,
    };
    wired.store.close().await;
    let report = result?;
    write_report(&report, args.dry_run, out)?;
    Ok(report)
}

fn write_report(report: &Report, dry_run: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let verb = if dry_run { "would send" } else { "sent" };
    for r in &report.sent {
        let left = match r.days_left {
            Some(0) => "  (expired)".to_owned(),
            Some(1) => "  (1 day left)".to_owned(),
            Some(days) => format!("  ({days} days left)"),
            None => String::new(),
        };
        writeln!(
            out,
            "{verb:<10}  {:<20}  {}{left}",
            r.sam_account_name, r.address
        )?;
    }
    writeln!(
        out,
        "{} {}, {} skipped (already sent), {} without an address, {} failed",
        report.sent.len(),
        if dry_run {
            "would be sent (dry run: nothing sent)"
        } else {
            "sent"
        },
        report.skipped,
        report.no_address,
        report.failed,
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reminders::Recipient;

    #[test]
    fn days_are_whole_days_within_a_year() {
        assert_eq!(parse_day("14"), Ok(14));
        assert_eq!(parse_day(" 1"), Ok(1));
        for bad in ["0", "366", "-1", "7d", ""] {
            assert!(parse_day(bad).unwrap_err().contains("1 to 365"), "{bad}");
        }
    }

    #[test]
    fn the_report_lists_recipients_then_counts() {
        let report = Report {
            sent: vec![
                Recipient {
                    sam_account_name: "jdoe".into(),
                    address: "j***@example.com".into(),
                    days_left: Some(7),
                },
                Recipient {
                    sam_account_name: "asmith".into(),
                    address: "a***@example.com".into(),
                    days_left: None,
                },
            ],
            skipped: 3,
            no_address: 1,
            failed: 0,
        };
        let mut out = Vec::new();
        write_report(&report, true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "would send  jdoe                  j***@example.com  (7 days left)\n\
             would send  asmith                a***@example.com\n\
             2 would be sent (dry run: nothing sent), 3 skipped (already sent), 1 without an \
             address, 0 failed\n"
        );
    }
}
