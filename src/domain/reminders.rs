//! Reminders an operator schedules (cron, a systemd timer): `remind` mails the users in scope
//! who have registered nothing; `notify-expiry` mails the users whose AD password expires soon.
//! Each mail is claimed in the notice log before it is sent, so however often (and on however
//! many hosts) a command runs, a user is reminded at most once per `registration.remind_interval`
//! and warned once per threshold and password (and told once that it expired).

use std::time::Duration;

use super::clock::Timestamp;
use super::deps::Deps;
use super::directory::{DirectoryError, DirectoryUser, uac};
use super::helpdesk::filetime_ms;
use super::locale::Locale;
use super::notifier::mask_email;
use super::notify::{Mail, MailKind, PasswordPage};
use super::protection::{is_allowed, is_protected};
use super::scope::Scope;
use super::store::{MethodKind, Notice, NoticeLog, StoreError};

/// The notice kinds, as the notice log stores them.
pub const REGISTRATION_REMINDER: &str = "registration_reminder";
pub const PASSWORD_EXPIRY: &str = "password_expiry";

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no mail server is configured (smtp.host is empty): nothing can be sent")]
    NoMailer,
}

/// How a run is made.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Decide and report, but send and record nothing.
    pub dry_run: bool,
    /// Only members of this group (nested membership counts), within `policy.scope`.
    pub group_dn: Option<String>,
    /// Language of the mails: the directory does not say which one each user reads.
    pub locale: Locale,
}

/// Someone who was mailed (in a dry run: would be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub sam_account_name: String,
    /// Masked, as everywhere else.
    pub address: String,
    /// For an expiry warning: the whole days left, rounded up.
    pub days_left: Option<u32>,
}

impl Recipient {
    fn of(user: &DirectoryUser, address: &str, days_left: Option<u32>) -> Self {
        Self {
            sam_account_name: user.sam_account_name.clone(),
            address: mask_email(address.trim()),
            days_left,
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Mailed (in a dry run: would be).
    pub sent: Vec<Recipient>,
    /// Due, but already mailed: within the interval, or at this threshold for this password.
    pub skipped: usize,
    /// Due, but with no address to mail.
    pub no_address: usize,
    /// Due, but the mail was not sent (or the user's password policy could not be read); the
    /// next run tries again.
    pub failed: usize,
}

pub struct Reminders<'a> {
    deps: &'a Deps,
    notices: &'a dyn NoticeLog,
}

impl<'a> Reminders<'a> {
    pub fn new(deps: &'a Deps, notices: &'a dyn NoticeLog) -> Self {
        Self { deps, notices }
    }

    /// Mails each user in scope who has confirmed no method and has a `mail` in AD, unless they
    /// were reminded within `interval`. The mail links to the registration page; for a password
    /// that must be changed first (expired, or must change at next logon), to the change page and
    /// then the registration page.
    pub async fn remind(&self, interval: Duration, run: &Run) -> Result<Report, ReminderError> {
        let d = self.deps;
        self.check_mailer(run)?;
        let now = d.now();
        let mut report = Report::default();
        for user in self.audience(run).await? {
            let methods = d.registrations.methods(&user.guid).await?;
            if methods.iter().any(|m| m.confirmed_at.is_some()) {
                continue;
            }
            let Some(address) = user
                .mail
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            else {
                report.no_address += 1;
                continue;
            };
            if self.is_excluded(&user).await? {
                continue;
            }
            let notice = Notice {
                user: user.guid,
                kind: REGISTRATION_REMINDER.to_owned(),
                key: String::new(),
                sent_at: now,
            };
            let since = now - interval;
            // Registration refuses such a password (773, 532): the mail sends them to /change
            // first.
            let kind = MailKind::RegistrationReminder {
                change_first: user.must_change_password() || user.password_expired(),
            };
            let mail = self.mail(&user, address, run, kind);
            let recipient = Recipient::of(&user, address, None);
            self.deliver(run, &notice, since, mail, recipient, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Mails each user in scope whose password expires within one of `thresholds` (days) of
    /// now, once per threshold and password: a new password (a new pwdLastSet) starts the
    /// warnings again. When several thresholds apply, only the nearest counts, so a run missed
    /// for a week does not send the 14-day and the 7-day warning at once. The expiry is
    /// pwdLastSet plus the maximum age of the user's fine-grained policy, else the domain's;
    /// passwords that never expire or must change at next logon are left alone. A password that
    /// already expired gets one notice (per password) that links to the change page. The mail
    /// goes to the confirmed address, else to AD `mail`; a warning links to the reset page when
    /// the user can reset (see `password_page`), else to the change page.
    pub async fn notify_expiry(
        &self,
        thresholds: &[u32],
        run: &Run,
    ) -> Result<Report, ReminderError> {
        let d = self.deps;
        self.check_mailer(run)?;
        let now = d.now();
        let mut report = Report::default();
        for user in self.audience(run).await? {
            if user.user_account_control & uac::DONT_EXPIRE_PASSWORD != 0 {
                continue;
            }
            // 0: must change at next logon; the password has no expiry to warn of.
            let Some(set_ms) = filetime_ms(user.pwd_last_set) else {
                continue;
            };
            let policy = d.directory.password_policy(&user).await?;
            if user.resultant_pso.is_some() && policy.pso.is_none() {
                // The service account cannot read the user's PSO, and the domain's maximum age
                // is not the user's: better no warning than one with the wrong date.
                tracing::warn!(
                    user = %user.sam_account_name,
                    pso = user.resultant_pso.as_deref().unwrap_or_default(),
                    "cannot read the user's fine-grained password policy; no expiry warning"
                );
                report.failed += 1;
                continue;
            }
            let Some(max_age) = policy.max_age else {
                continue;
            };
            let expires = Timestamp::from_millis(set_ms) + max_age;
            let (key, kind, days_left) = if expires <= now {
                // Once per password: it no longer signs in anywhere, and /change is the way out.
                let kind = MailKind::PasswordExpired {
                    expired_at: expires.to_system_time(),
                };
                (format!("expired:{}", user.pwd_last_set), kind, 0)
            } else {
                let due = due_warning(thresholds, now.as_millis(), expires.as_millis());
                let Some((threshold, days_left)) = due else {
                    continue;
                };
                let kind = MailKind::PasswordExpiry {
                    days_left,
                    expires_at: expires.to_system_time(),
                    page: self.password_page(&user).await?,
                };
                (
                    format!("{threshold}:{}", user.pwd_last_set),
                    kind,
                    days_left,
                )
            };
            let address = match d.confirmed_email(&user.guid).await? {
                Some(confirmed) => Some(confirmed),
                None => user.mail.clone().filter(|a| !a.trim().is_empty()),
            };
            let Some(address) = address else {
                report.no_address += 1;
                continue;
            };
            if self.is_excluded(&user).await? {
                continue;
            }
            let notice = Notice {
                user: user.guid,
                kind: PASSWORD_EXPIRY.to_owned(),
                key,
                sent_at: now,
            };
            let mail = self.mail(&user, address.trim(), run, kind);
            // 0: already expired.
            let recipient = Recipient::of(&user, &address, Some(days_left));
            self.deliver(run, &notice, Timestamp::MIN, mail, recipient, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Where an expiry warning sends the user: the reset page when they can reset (self-service
    /// is licensed and they have enough current methods it offers), else the change page, which
    /// needs only the current password.
    async fn password_page(&self, user: &DirectoryUser) -> Result<PasswordPage, StoreError> {
        let d = self.deps;
        if !d.settings.self_service_licensed {
            return Ok(PasswordPage::Change);
        }
        // Kinds, as `reset.methods_required` counts them: two apps are one.
        let mut kinds = Vec::new();
        for method in d.current_methods(&user.guid).await? {
            if (method.kind == MethodKind::Totp || d.mailer.is_some())
                && !kinds.contains(&method.kind)
            {
                kinds.push(method.kind);
            }
        }
        let usable = kinds.len();
        Ok(if usable >= d.settings.reset.methods_required {
            PasswordPage::Reset
        } else {
            PasswordPage::Change
        })
    }

    fn check_mailer(&self, run: &Run) -> Result<(), ReminderError> {
        if self.deps.mailer.is_none() && !run.dry_run {
            return Err(ReminderError::NoMailer);
        }
        Ok(())
    }

    /// The enabled users in `policy.scope`, and in `run.group_dn` when given.
    async fn audience(&self, run: &Run) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let directory = self.deps.directory.as_ref();
        let scope = match &self.deps.settings.eligibility.scope {
            Scope::Nobody => return Ok(Vec::new()),
            Scope::All => None,
            Scope::Group(dn) => Some(dn.as_str()),
        };
        match (run.group_dn.as_deref(), scope) {
            (Some(only), Some(scope)) => {
                let mut users = Vec::new();
                for user in directory.users(Some(only)).await? {
                    if directory.is_member_of(&user, scope).await? {
                        users.push(user);
                    }
                }
                Ok(users)
            }
            (only, scope) => directory.users(only.or(scope)).await,
        }
    }

    /// A protected account (an administrator) not allow-listed for self-service: it can neither
    /// register nor reset, so it is not reminded to.
    async fn is_excluded(&self, user: &DirectoryUser) -> Result<bool, DirectoryError> {
        let directory = self.deps.directory.as_ref();
        let eligibility = &self.deps.settings.eligibility;
        if eligibility.is_never_reset(user) {
            return Ok(true);
        }
        let allow = &eligibility.allow_protected;
        Ok(is_protected(directory, user).await? && !is_allowed(directory, user, allow).await?)
    }

    fn mail(&self, user: &DirectoryUser, address: &str, run: &Run, kind: MailKind) -> Mail {
        Mail {
            to: address.to_owned(),
            display_name: user.display_name.clone(),
            locale: run.locale,
            kind,
        }
    }

    /// Sends `mail` unless `notice` was already sent at or after `since`. The notice is
    /// claimed first and withdrawn if the mail fails, so the next run tries again.
    async fn deliver(
        &self,
        run: &Run,
        notice: &Notice,
        since: Timestamp,
        mail: Mail,
        recipient: Recipient,
        report: &mut Report,
    ) -> Result<(), ReminderError> {
        if run.dry_run {
            let sent_at = self
                .notices
                .notice_sent_at(&notice.user, &notice.kind, &notice.key)
                .await?;
            match sent_at {
                Some(at) if at >= since => report.skipped += 1,
                _ => report.sent.push(recipient),
            }
            return Ok(());
        }
        let Some(mailer) = &self.deps.mailer else {
            return Err(ReminderError::NoMailer);
        };
        if !self.notices.claim_notice(notice, since).await? {
            report.skipped += 1;
            return Ok(());
        }
        match mailer.send(&mail).await {
            Ok(()) => report.sent.push(recipient),
            Err(e) => {
                tracing::warn!(user = %recipient.sam_account_name, error = %e, "reminder not sent");
                self.notices.release_notice(notice).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }
}

/// The warning due at `now_ms` for a password that expires at `expires_ms`: the nearest
/// threshold (in days) the time left is within, and the whole days left, rounded up. `None`
/// before the farthest threshold, and once the password has expired.
fn due_warning(thresholds: &[u32], now_ms: i64, expires_ms: i64) -> Option<(u32, u32)> {
    let left = expires_ms.checked_sub(now_ms).filter(|left| *left > 0)?;
    let threshold = thresholds
        .iter()
        .copied()
        .filter(|days| left <= i64::from(*days) * DAY_MS)
        .min()?;
    let days_left = u32::try_from((left + DAY_MS - 1) / DAY_MS).unwrap_or(u32::MAX);
    Some((threshold, days_left))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn the_nearest_threshold_the_time_left_is_within_is_due() {
        let due = |left_ms: i64| due_warning(&[14, 7, 1], NOW, NOW + left_ms);
        assert_eq!(due(15 * DAY_MS), None, "not yet");
        assert_eq!(due(14 * DAY_MS), Some((14, 14)));
        assert_eq!(due(10 * DAY_MS - 1), Some((14, 10)));
        assert_eq!(due(7 * DAY_MS), Some((7, 7)));
        assert_eq!(due(2 * DAY_MS + 1), Some((7, 3)));
        assert_eq!(due(DAY_MS), Some((1, 1)));
        assert_eq!(due(60_000), Some((1, 1)));
        assert_eq!(due(0), None, "expired");
        assert_eq!(due(-DAY_MS), None, "expired");
        assert_eq!(due_warning(&[], NOW, NOW + DAY_MS), None);
        // The order given does not matter.
        assert_eq!(
            due_warning(&[1, 14, 7], NOW, NOW + 5 * DAY_MS),
            Some((7, 5))
        );
    }
}
