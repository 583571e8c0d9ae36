//! `sspr-bridge check`: one line per dependency, OK or FAIL with the reason; WARN for what works
//! but should not be so.

use std::fmt;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, PolicyHints};
use crate::directory::LdapDirectory;
use crate::domain::directory::{AccountChange, Directory, DirectoryError, DirectoryUser};
use crate::domain::protection::{is_privileged_sid, is_protected};
use crate::domain::secrets::temporary_password;
use crate::mail::SmtpTransport;
use crate::store::Store;

mod branding;
mod groups;
use groups::{dn_list, helpdesk_group, scope_group};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but should be changed; does not fail the exit code.
    Warn,
    Fail,
    Skip,
}

#[derive(Debug)]
pub struct Line {
    pub status: Status,
    pub subject: String,
    pub detail: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        write!(f, "{status:<5} {:<9} {}", self.subject, self.detail)
    }
}

fn line(status: Status, subject: &str, detail: impl Into<String>) -> Line {
    Line {
        status,
        subject: subject.to_owned(),
        detail: detail.into(),
    }
}

fn ms(started: Instant) -> u128 {
    started.elapsed().as_millis()
}

/// Runs every check, calling `report` as each finishes so a slow DC does not hide the rest.
pub async fn run(config: &Config, mut report: impl FnMut(&Line)) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut push = |l: Line| {
        report(&l);
        lines.push(l);
    };

    push(line(Status::Ok, "config", config.source_display()));
    push(line(
        Status::Ok,
        "licence",
        if config.licence.azure_ad_premium {
            "Azure AD Premium declared: self-service enabled".to_owned()
        } else {
            "not declared (licence.azure_ad_premium = false): self-service off, helpdesk only; \
             on-premises password writeback requires an Azure AD Premium licence: once you hold \
             it, set licence.azure_ad_premium = true"
                .to_owned()
        },
    ));

    push(passkeys(config));
    for l in branding::lines(&config.ui, std::time::SystemTime::now()) {
        push(l);
    }

    let started = Instant::now();
    let database = config.database.display_url();
    match Store::connect(config.database.url.expose_secret(), 1).await {
        Ok(store) => {
            match store.ping().await {
                Ok(()) => push(line(
                    Status::Ok,
                    "database",
                    format!("{database} ({} ms)", ms(started)),
                )),
                Err(e) => push(line(Status::Fail, "database", format!("{database}: {e}"))),
            }
            store.close().await;
        }
        Err(e) => push(line(Status::Fail, "database", format!("{database}: {e}"))),
    }

    match LdapDirectory::new(&config.directory) {
        Ok(directory) => {
            let trust = config.directory.ca_file.as_deref().map_or_else(
                || "the system store".to_owned(),
                |p| p.display().to_string(),
            );
            let mut any_up = false;
            for dc in directory.probe().await {
                any_up |= dc.result.is_ok();
                match dc.result {
                    Ok(health) => {
                        let (status, hints) =
                            policy_hints(health.policy_hints, config.directory.policy_hints);
                        push(line(
                            status,
                            "dc",
                            format!(
                                "{}: TLS verified against {trust}, bound as {} ({} ms); {hints}",
                                dc.url,
                                config.directory.bind_dn,
                                health.latency.as_millis(),
                            ),
                        ));
                    }
                    Err(e) => push(line(Status::Fail, "dc", format!("{}: {e}", dc.url))),
                }
            }
            if any_up {
                let bind_dn = &config.directory.bind_dn;
                let service = account(&directory, bind_dn).await;
                push(privilege(&directory, bind_dn, &service).await);
                // With policy hints AD applies the minimum password age to a reset, so a test
                // account reset on every run would be refused from the second run on.
                let directory = directory.with_policy_hints(PolicyHints::Off);
                let service = service.ok().flatten();
                push(
                    self_test(
                        &directory,
                        config.directory.self_test_user.as_deref(),
                        service.as_ref(),
                    )
                    .await,
                );
                push(helpdesk_group(&directory, config.helpdesk.group_dn.as_deref()).await);
                push(scope_group(&directory, &config.policy.scope).await);
                for (subject, key, dns, takes_groups) in [
                    (
                        "allowlist",
                        "policy.allow_protected",
                        &config.policy.allow_protected,
                        true,
                    ),
                    (
                        "allowlist",
                        "helpdesk.allow_protected",
                        &config.helpdesk.allow_protected,
                        true,
                    ),
                    (
                        "excluded",
                        "directory.never_reset",
                        &config.directory.never_reset,
                        false,
                    ),
                ] {
                    if !dns.is_empty() {
                        push(dn_list(&directory, subject, key, dns, takes_groups).await);
                    }
                }
            }
        }
        Err(e) => push(line(Status::Fail, "dc", e.to_string())),
    }

    match &config.smtp {
        None => push(line(
            Status::Skip,
            "smtp",
            "smtp.host is empty: email codes and notifications are off",
        )),
        Some(smtp) => {
            let started = Instant::now();
            let server = format!("{}:{} ({:?})", smtp.host, smtp.port, smtp.tls).to_lowercase();
            let result = match SmtpTransport::new(smtp) {
                Ok(transport) => transport.test_connection().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => push(line(
                    Status::Ok,
                    "smtp",
                    format!("{server} ({} ms)", ms(started)),
                )),
                Err(e) => push(line(Status::Fail, "smtp", format!("{server}: {e}"))),
            }
        }
    }
    lines
}

/// The `dc` line's verdict on LDAP_SERVER_POLICY_HINTS: without it AD applies neither password
/// history nor minimum age to a reset, which users notice as a rule the page cannot keep.
fn policy_hints(supported: bool, setting: PolicyHints) -> (Status, &'static str) {
    match (supported, setting) {
        (true, PolicyHints::Off) => (
            Status::Ok,
            "password policy hints supported, but directory.policy_hints = off: history and \
             minimum age are not applied to resets",
        ),
        (true, _) => (
            Status::Ok,
            "password policy hints supported: history and minimum age apply to resets",
        ),
        (false, PolicyHints::Required) => (
            Status::Fail,
            "no password policy hints on this DC and directory.policy_hints = required: every \
             password reset through it is refused",
        ),
        (false, _) => (
            Status::Warn,
            "no password policy hints on this DC (Windows Server 2008 R2 and later have them, \
             Samba does not): AD applies neither password history nor minimum age to resets, so \
             a user may reset to a recent or even the current password",
        ),
    }
}

/// A user named by DN, or by sAMAccountName or userPrincipalName below `base_dn`; a bind name
/// may also be `DOMAIN\sAMAccountName`.
async fn account(
    directory: &LdapDirectory,
    id: &str,
) -> Result<Option<DirectoryUser>, DirectoryError> {
    if id.contains('=') {
        directory.find_user_at(id).await
    } else {
        directory
            .find_user(id.rsplit('\\').next().unwrap_or(id))
            .await
    }
}

/// Whether the service account holds more than the delegation it needs.
async fn privilege(
    directory: &LdapDirectory,
    bind_dn: &str,
    service: &Result<Option<DirectoryUser>, DirectoryError>,
) -> Line {
    const SUBJECT: &str = "account";
    let service = match service {
        Ok(Some(service)) => service,
        Ok(None) => {
            return line(
                Status::Skip,
                SUBJECT,
                format!("{bind_dn} is not readable as a user: its groups are not checked"),
            );
        }
        Err(e) => {
            return line(
                Status::Warn,
                SUBJECT,
                format!("cannot read {bind_dn} to check its groups: {e}"),
            );
        }
    };
    match directory.group_sids(service).await {
        Ok(sids) if sids.iter().any(|sid| is_privileged_sid(sid)) => line(
            Status::Warn,
            SUBJECT,
            format!(
                "{}: the service account is a member of a privileged group; grant the \
                 delegation in the README instead",
                service.dn
            ),
        ),
        Ok(_) => line(
            Status::Ok,
            SUBJECT,
            format!("{}: in no privileged group", service.dn),
        ),
        Err(e) => line(
            Status::Warn,
            SUBJECT,
            format!("cannot read the groups of {}: {e}", service.dn),
        ),
    }
}

/// A step of the self-test, for the message when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Reset,
    ReadBack,
    ForceChange,
    Unlock,
}

const SELF_TEST: &str = "self-test";

/// Proves the service account's rights on `directory.self_test_user` by doing what the flows do:
/// a password reset (after which pwdLastSet must not be 0), pwdLastSet = 0, lockoutTime = 0.
async fn self_test(
    directory: &LdapDirectory,
    id: Option<&str>,
    service: Option<&DirectoryUser>,
) -> Line {
    let Some(id) = id else {
        return line(
            Status::Skip,
            SELF_TEST,
            "directory.self_test_user is empty: the service account's rights are not tried",
        );
    };
    let fail = |detail: String| line(Status::Fail, SELF_TEST, detail);
    let user = match account(directory, id).await {
        Ok(Some(user)) => user,
        Ok(None) => return fail(format!("directory.self_test_user {id}: no such user")),
        Err(e) => return fail(format!("directory.self_test_user {id}: {e}")),
    };
    if service.is_some_and(|s| s.guid == user.guid) {
        return fail(format!(
            "directory.self_test_user {id} is the service account itself; name a dedicated test \
             account"
        ));
    }
    // Never reset an administrator: a service account with too many rights could.
    match is_protected(directory, &user).await {
        Ok(false) => {}
        Ok(true) => {
            return fail(format!(
                "{} is a protected account (adminCount=1 or a privileged group) and is not \
                 reset; name a dedicated, unprivileged test account",
                user.dn
            ));
        }
        Err(e) => return fail(format!("cannot read the groups of {}: {e}", user.dn)),
    }
    let outcome = exercise(directory, &user).await;
    self_test_verdict(&user.dn, outcome)
}

/// What the flows do to an account, in turn: a reset (pwdLastSet read right after it), a forced
/// change, an unlock. The account is left with a password nobody knows, to be changed at next
/// logon.
async fn exercise(
    directory: &LdapDirectory,
    user: &DirectoryUser,
) -> Result<Option<i64>, (Step, DirectoryError)> {
    let at = |step| move |e| (step, e);
    let password = SecretString::from(temporary_password(32).to_string());
    let reset = AccountChange {
        new_password: Some(&password),
        ..AccountChange::default()
    };
    directory
        .write_account(user, &reset)
        .await
        .map_err(at(Step::Reset))?;
    let after = directory
        .find_user_at(&user.dn)
        .await
        .map_err(at(Step::ReadBack))?;
    let force_change = AccountChange {
        must_change: true,
        ..AccountChange::default()
    };
    directory
        .write_account(user, &force_change)
        .await
        .map_err(at(Step::ForceChange))?;
    let unlock = AccountChange {
        unlock: true,
        ..AccountChange::default()
    };
    directory
        .write_account(user, &unlock)
        .await
        .map_err(at(Step::Unlock))?;
    Ok(after.map(|u| u.pwd_last_set))
}

fn self_test_verdict(dn: &str, outcome: Result<Option<i64>, (Step, DirectoryError)>) -> Line {
    let fail = |detail: String| line(Status::Fail, SELF_TEST, detail);
    match outcome {
        Ok(Some(0)) => fail(format!(
            "the service account lacks the Unexpire Password right: AD wrote the new password \
             already expired (pwdLastSet 0 after resetting {dn})"
        )),
        Ok(Some(pwd_last_set)) => line(
            Status::Ok,
            SELF_TEST,
            format!(
                "{dn}: reset, forced to change and unlocked as the service account; the reset \
                 left the password unexpired (pwdLastSet {pwd_last_set})"
            ),
        ),
        Ok(None) => fail(format!("{dn} could not be read back after the reset")),
        Err((step, e)) => {
            let missing = match step {
                Step::ForceChange => "write access to pwdLastSet",
                Step::Reset => "the Reset Password right",
                Step::Unlock => "write access to lockoutTime",
                Step::ReadBack => return fail(format!("cannot read {dn} back: {e}")),
            };
            match e {
                DirectoryError::InsufficientRights { detail } => fail(format!(
                    "the service account lacks {missing} on {dn} ({detail})"
                )),
                e => fail(format!("{dn}: {e}")),
            }
        }
    }
}

/// Passkeys are on wherever `server.public_url` names a host; an IP address turns them off (a
/// wrong `passkey.rp_id` already failed the configuration).
fn passkeys(config: &Config) -> Line {
    match config.passkeys.rp_id() {
        Some(rp_id) => line(Status::Ok, "passkeys", format!("relying party {rp_id}")),
        None => line(
            Status::Warn,
            "passkeys",
            format!(
                "off: server.public_url ({}) names an IP address, which WebAuthn refuses as a \
                 relying party; give it a DNS name to offer passkeys",
                config.server.public_url
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DN: &str = "CN=sspr-selftest,OU=Staff,DC=example,DC=com";

    fn rights(step: Step) -> Result<Option<i64>, (Step, DirectoryError)> {
        Err((
            step,
            DirectoryError::InsufficientRights {
                detail: "00002098: insufficient access rights".to_owned(),
            },
        ))
    }

    #[test]
    fn an_expired_reset_means_no_unexpire_password_right() {
        let l = self_test_verdict(DN, Ok(Some(0)));
        assert_eq!(l.status, Status::Fail);
        assert!(
            l.detail.contains("lacks the Unexpire Password right"),
            "{l}"
        );
        let l = self_test_verdict(DN, Ok(Some(134_400_774_029_831_280)));
        assert_eq!(l.status, Status::Ok, "{l}");
    }

    #[test]
    fn a_refused_write_names_the_missing_right() {
        for (step, right) in [
            (Step::ForceChange, "pwdLastSet"),
            (Step::Reset, "the Reset Password right on CN=sspr-selftest"),
            (Step::Unlock, "lockoutTime"),
        ] {
            let l = self_test_verdict(DN, rights(step));
            assert_eq!(l.status, Status::Fail);
            assert!(l.detail.contains(right), "{l}");
        }
        let l = self_test_verdict(
            DN,
            Err((
                Step::Reset,
                DirectoryError::PolicyViolation {
                    detail: "too short".to_owned(),
                },
            )),
        );
        assert!(
            !l.detail.contains("lacks") && l.detail.contains("too short"),
            "{l}"
        );
    }

    #[test]
    fn a_dc_without_policy_hints_is_a_warning_unless_they_are_required() {
        let (status, detail) = policy_hints(false, PolicyHints::Auto);
        assert_eq!(status, Status::Warn);
        assert!(detail.contains("the current password"), "{detail}");
        assert_eq!(policy_hints(false, PolicyHints::Off).0, Status::Warn);
        assert_eq!(policy_hints(false, PolicyHints::Required).0, Status::Fail);
        assert_eq!(policy_hints(true, PolicyHints::Auto).0, Status::Ok);
        assert_eq!(policy_hints(true, PolicyHints::Required).0, Status::Ok);
        let (status, detail) = policy_hints(true, PolicyHints::Off);
        assert!(status == Status::Ok && detail.contains("= off"), "{detail}");
    }

    #[test]
    fn warn_is_printed_as_such() {
        let l = line(Status::Warn, "account", "x");
        assert!(l.to_string().starts_with("WARN  account"), "{l}");
    }
}
