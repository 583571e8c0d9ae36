//! The groups the configuration names: each must exist, be a group and have members.

use super::{Line, Status, line};
use crate::directory::{DnReading, LdapDirectory};
use crate::domain::scope::Scope;

/// `helpdesk.group_dn`: the group whose members may sign in at /helpdesk.
pub(super) async fn helpdesk_group(directory: &LdapDirectory, dn: Option<&str>) -> Line {
    const SUBJECT: &str = "helpdesk";
    match dn {
        None => line(
            Status::Skip,
            SUBJECT,
            "helpdesk.group_dn is empty: the helpdesk is off",
        ),
        Some(dn) => {
            group_line(
                directory,
                SUBJECT,
                "helpdesk.group_dn",
                dn,
                "sign in to the helpdesk",
            )
            .await
        }
    }
}

/// `policy.scope`: who may use self-service.
pub(super) async fn scope_group(directory: &LdapDirectory, scope: &Scope) -> Line {
    const SUBJECT: &str = "scope";
    match scope {
        Scope::All => line(
            Status::Ok,
            SUBJECT,
            "policy.scope = all: every account directory.user_filter finds may use self-service",
        ),
        Scope::Nobody => line(
            Status::Ok,
            SUBJECT,
            "policy.scope = none: self-service is off for every account",
        ),
        Scope::Group(dn) => {
            group_line(
                directory,
                SUBJECT,
                "policy.group_dn",
                dn,
                "use self-service",
            )
            .await
        }
    }
}

/// A group DN from the configuration, resolved: FAIL where no group is, WARN where nobody is in
/// it, else how many accounts it lets `do_what`.
async fn group_line(
    directory: &LdapDirectory,
    subject: &str,
    key: &str,
    dn: &str,
    do_what: &str,
) -> Line {
    match directory.read_dn(dn).await {
        Ok(DnReading::Group(0)) => line(
            Status::Warn,
            subject,
            format!(
                "{key} {dn} has no enabled accounts as members (nested groups included): \
                 nobody can {do_what} (a primary group such as Domain Users counts nobody: AD \
                 keeps that membership in primaryGroupID, not in member)"
            ),
        ),
        Ok(DnReading::Group(n)) => line(
            Status::Ok,
            subject,
            format!(
                "{key} {dn}: {} (nested groups included) may {do_what}",
                enabled_accounts(n)
            ),
        ),
        Ok(DnReading::Account | DnReading::Other) => line(
            Status::Fail,
            subject,
            format!("{key} {dn} is not a group: nobody can {do_what}"),
        ),
        Ok(DnReading::Missing) => line(
            Status::Fail,
            subject,
            format!(
                "{key} {dn}: no such group (or the service account may not read it): nobody \
                 can {do_what}"
            ),
        ),
        Err(e) => line(Status::Fail, subject, format!("{key} {dn}: {e}")),
    }
}

fn enabled_accounts(n: usize) -> String {
    format!("{n} enabled account{}", if n == 1 { "" } else { "s" })
}

/// A list of DNs from the configuration, each resolved: a DN that names nothing (a typo) would
/// silently leave out whom it was meant for, so it fails, as does a kind of entry the list does
/// not take (`takes_groups`: user or group DNs; else user DNs only).
pub(super) async fn dn_list(
    directory: &LdapDirectory,
    subject: &str,
    key: &str,
    dns: &[String],
    takes_groups: bool,
) -> Line {
    let mut found = Vec::new();
    let mut wrong = Vec::new();
    for dn in dns {
        match directory.read_dn(dn).await {
            Ok(DnReading::Account) => found.push(format!("{dn} (account)")),
            Ok(DnReading::Group(n)) if takes_groups => {
                found.push(format!("{dn} (group of {})", enabled_accounts(n)));
            }
            Ok(DnReading::Group(_)) => wrong.push(format!("{dn} is a group, not an account")),
            Ok(DnReading::Other) => wrong.push(format!("{dn} is neither an account nor a group")),
            Ok(DnReading::Missing) => wrong.push(format!(
                "{dn}: no such entry (or the service account may not read it)"
            )),
            Err(e) => wrong.push(format!("{dn}: {e}")),
        }
    }
    if wrong.is_empty() {
        line(Status::Ok, subject, format!("{key}: {}", found.join(", ")))
    } else {
        line(
            Status::Fail,
            subject,
            format!("{key}: {}", wrong.join("; ")),
        )
    }
}
