//! Signing in with the AD password: the front part every flow that binds as the user shares
//! (registration, the helpdesk, the password change), so that none of them can be used to lock
//! an account or to learn whether a name has one.
//!
//! - Before a bind, the account's wrong-password count is read on the DC that will take the
//!   bind; when one more failure could lock the account, no bind is made and the answer is that
//!   of a wrong password.
//! - Failed sign-ins are counted per typed login, real or not, and refused alike over a cap.
//! - Every failure does the same directory work (an unknown or disabled login gets a decoy bind)
//!   and waits for the same floor, so its time tells nothing about the account.

use std::time::Duration;

use secrecy::SecretString;

use super::audit::{Audit, AuditKind, Outcome};
use super::clock::Timestamp;
use super::deps::{Client, Deps};
use super::directory::{BadPasswords, DirectoryUser, GuardedCheck, PasswordCheck};
use super::error::FlowError;
use super::policy::PasswordPolicy;
pub use super::settings::SignInSettings;
use super::store::ThrottleKey;
use super::throttle::Limit;

/// Who is signing in, which decides whose failure counter a sign-in counts against: an attacker
/// who fills a user's counter does not also shut an operator out, and the helpdesk can give
/// operators limits of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInPurpose {
    /// A user, for themselves: registration and the password change.
    SelfService,
    /// A helpdesk operator.
    Operator,
}

impl SignInPurpose {
    fn key(self, login_hash: String) -> ThrottleKey {
        match self {
            SignInPurpose::SelfService => ThrottleKey::UserSignIns(login_hash),
            SignInPurpose::Operator => ThrottleKey::OperatorSignInFailures(login_hash),
        }
    }

    fn limit(self) -> Limit {
        match self {
            SignInPurpose::SelfService => Limit::SignInUser,
            SignInPurpose::Operator => Limit::SignInOperator,
        }
    }
}

/// The throttle key of a sign-in: its purpose and the keyed hash of the normalised login (the
/// login may be a password typed into the wrong box; see [`super::secrets::Keys::login_hash`]).
pub fn throttle_key(purpose: SignInPurpose, login_hash: &str) -> ThrottleKey {
    purpose.key(login_hash.to_owned())
}

/// A sign-in whose password was right: the account, and what AD said of the password (valid,
/// or right but to be changed or expired), for the caller to judge.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: DirectoryUser,
    pub check: PasswordCheck,
}

/// Why a sign-in failed: for the audit only, never for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    UnknownUser,
    Disabled,
    /// Not bound: one more wrong password could have locked the account.
    NearLockout,
    /// AD's answer to the bind.
    Refused(PasswordCheck),
}

impl Failure {
    pub fn reason(self) -> String {
        match self {
            Failure::UnknownUser => "unknown_user".to_owned(),
            Failure::Disabled => "disabled".to_owned(),
            Failure::NearLockout => "near_lockout".to_owned(),
            Failure::Refused(check) => format!("{check:?}").to_lowercase(),
        }
    }
}

/// The outcome of a sign-in that was not throttled.
#[derive(Clone, Debug)]
pub enum Attempt {
    Right(SignedIn),
    /// Every failure looks the same to the client; `user` is the account found, if any.
    Failed {
        user: Option<DirectoryUser>,
        failure: Failure,
    },
}

/// The login as the throttle counts it: trimmed, in lower case, and `DOMAIN\user` or
/// `user@domain` reduced to `user` when the domain is this one, so that spelling a name
/// differently does not buy more guesses. Purely by syntax: the same for names that have no
/// account.
pub fn normalise_login(typed: &str, domains: &[String]) -> String {
    let login = typed.trim().to_lowercase();
    let ours = |domain: &str| domains.iter().any(|d| d == domain);
    if let Some((domain, user)) = login.split_once('\\')
        && ours(domain)
        && !user.is_empty()
    {
        return user.to_owned();
    }
    if let Some((user, domain)) = login.rsplit_once('@')
        && ours(domain)
        && !user.is_empty()
    {
        return user.to_owned();
    }
    login
}

/// The name to look the account up by: `DOMAIN\user` becomes `user` (AD's lookup knows no down-
/// level form); anything else as typed. Every place a login is typed looks it up through this.
pub fn lookup_name<'a>(typed: &'a str, domains: &[String]) -> &'a str {
    let typed = typed.trim();
    match typed.split_once('\\') {
        Some((domain, user))
            if !user.is_empty() && domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) =>
        {
            user
        }
        _ => typed,
    }
}

/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET_MS: i64 = 11_644_473_600_000;

/// How much later than the DC this host's clock may run without the guard misjudging a count
/// as forgotten.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A login as a password sign-in takes it: trimmed; empty or longer than any AD name could be is
/// answered as a wrong password, before anything is looked up.
pub fn typed_login(typed: &str) -> Result<&str, FlowError> {
    let login = typed.trim();
    if login.is_empty() || login.chars().count() > 256 {
        return Err(FlowError::InvalidCredentials);
    }
    Ok(login)
}

/// Whether a bind may be tried: not when one more wrong password could lock the account, as
/// the DC that takes the bind counts them. A count older than the observation window counts as
/// 0, as AD treats it at the next failure.
pub fn may_bind(bad: BadPasswords, policy: &PasswordPolicy, now: Timestamp) -> bool {
    let threshold = policy.lockout_threshold;
    if threshold == 0 {
        return true;
    }
    let forgotten = policy.lockout_window.is_some_and(|window| {
        let last = Timestamp::from_millis(bad.last_at / 10_000 - FILETIME_UNIX_OFFSET_MS);
        bad.last_at > 0 && last + window + CLOCK_SKEW < now
    });
    let counted = if forgotten { 0 } else { bad.count };
    counted.saturating_add(1) < threshold
}

/// Checks a typed login and password for `purpose`. Over the failure cap, every login gets
/// [`FlowError::SignInThrottled`]; otherwise the attempt is returned for the caller to audit
/// and answer (a failure answers no sooner than the floor).
pub async fn sign_in(
    d: &Deps,
    purpose: SignInPurpose,
    typed: &str,
    password: &SecretString,
    client: &Client,
) -> Result<Attempt, FlowError> {
    let started = tokio::time::Instant::now();
    let s = &d.settings.signin;
    let normalised = normalise_login(typed, &s.domains);
    let key = throttle_key(purpose, &d.keys.login_hash(&normalised));
    let now = d.now();
    let since = now - s.window;
    if d.throttle.count(&key, since).await? >= s.max_failures {
        // Before the directory is asked, so whether the login names an account is not known:
        // kept as its keyed hash, like any typed login that matched none.
        let reason = purpose.limit().reason(Some(&key.to_string()));
        let throttled = Audit {
            event: AuditKind::Throttled,
            outcome: Outcome::Denied,
            user: None,
            sam_account_name: None,
            method: None,
            reason: Some(&reason),
        };
        d.audit
            .typed_login(client, None, d.keys.login_hash(typed), throttled)
            .await?;
        return Err(FlowError::SignInThrottled {
            retry_after: s.window,
        });
    }
    let login = lookup_name(typed, &s.domains);
    let user = d.directory.find_user(login).await?;
    let failure = match &user {
        Some(user) if !user.is_disabled() => {
            let guard =
                move |bad: BadPasswords, policy: &PasswordPolicy| may_bind(bad, policy, now);
            match d
                .directory
                .check_password_guarded(user, password, &guard)
                .await?
            {
                GuardedCheck::Checked(check) if check.password_was_right() => {
                    return Ok(Attempt::Right(SignedIn {
                        user: user.clone(),
                        check,
                    }));
                }
                GuardedCheck::Checked(check) => Failure::Refused(check),
                GuardedCheck::Refused => Failure::NearLockout,
            }
        }
        other => {
            d.directory.decoy_password_check(login).await?;
            if other.is_some() {
                Failure::Disabled
            } else {
                Failure::UnknownUser
            }
        }
    };
    d.throttle.hit(&key, now, since).await?;
    if started.elapsed() > s.failure_floor {
        // This answer's time is no longer hidden by the floor.
        tracing::warn!(
            took_ms = started.elapsed().as_millis(),
            "a failed sign-in took longer than throttle.signin_failure_floor; raise it above \
             the time a bind to the domain controllers takes"
        );
    }
    tokio::time::sleep_until(started + s.failure_floor).await;
    Ok(Attempt::Failed { user, failure })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(threshold: u32, window: Option<Duration>) -> PasswordPolicy {
        PasswordPolicy {
            min_length: 7,
            complexity: true,
            history_length: 0,
            min_age: Duration::ZERO,
            max_age: None,
            lockout_threshold: threshold,
            lockout_duration: Some(Duration::from_secs(1800)),
            lockout_window: window,
            pso: None,
        }
    }

    fn filetime(unix_ms: i64) -> i64 {
        (unix_ms + FILETIME_UNIX_OFFSET_MS) * 10_000
    }

    const NOW: i64 = 1_800_000_000_000;
    const NOW_AT: Timestamp = Timestamp::from_millis(NOW);
    const HALF_HOUR: Option<Duration> = Some(Duration::from_secs(1800));

    #[test]
    fn a_bind_is_refused_when_one_more_failure_could_lock() {
        let p = policy(5, HALF_HOUR);
        let recent = filetime(NOW - 60_000);
        let bad = |count| BadPasswords {
            count,
            last_at: recent,
        };
        assert!(may_bind(bad(0), &p, NOW_AT));
        assert!(may_bind(bad(3), &p, NOW_AT));
        assert!(!may_bind(bad(4), &p, NOW_AT), "the fifth failure locks");
        assert!(!may_bind(bad(9), &p, NOW_AT));
        // A threshold of 1 locks at the first failure: never bind.
        assert!(!may_bind(bad(0), &policy(1, HALF_HOUR), NOW_AT));
    }

    #[test]
    fn no_threshold_means_no_lockout() {
        let bad = BadPasswords {
            count: 1000,
            last_at: filetime(NOW),
        };
        assert!(may_bind(bad, &policy(0, HALF_HOUR), NOW_AT));
    }

    #[test]
    fn failures_older_than_the_observation_window_count_as_none() {
        let p = policy(5, HALF_HOUR);
        let old = BadPasswords {
            count: 4,
            last_at: filetime(NOW - 3_600_000),
        };
        assert!(may_bind(old, &p, NOW_AT));
        // Within the window plus the allowance for clock skew: still counted.
        let edge = BadPasswords {
            count: 4,
            last_at: filetime(NOW - 1_800_000 - 30_000),
        };
        assert!(!may_bind(edge, &p, NOW_AT));
        // An unknown window: never forgotten.
        assert!(!may_bind(old, &policy(5, None), NOW_AT));
    }

    #[test]
    fn logins_are_counted_under_one_spelling() {
        let domains = SignInSettings::domains_of("OU=Staff,DC=sspr,DC=test");
        assert_eq!(domains, ["sspr.test", "sspr"]);
        for typed in [
            "jdoe",
            " JDoe ",
            "SSPR\\jdoe",
            "sspr.test\\JDOE",
            "jdoe@sspr.test",
            "JDOE@SSPR.TEST",
        ] {
            assert_eq!(normalise_login(typed, &domains), "jdoe", "{typed}");
        }
        // Another domain's names are other logins.
        assert_eq!(
            normalise_login("OTHER\\jdoe", &domains),
            "other\\jdoe".to_owned()
        );
        assert_eq!(
            normalise_login("jdoe@example.com", &domains),
            "jdoe@example.com"
        );
        assert_eq!(normalise_login("\\", &domains), "\\");
        assert_eq!(lookup_name("SSPR\\JDoe", &domains), "JDoe");
        assert_eq!(lookup_name(" jdoe@sspr.test ", &domains), "jdoe@sspr.test");
        assert_eq!(lookup_name("OTHER\\jdoe", &domains), "OTHER\\jdoe");
    }
}
