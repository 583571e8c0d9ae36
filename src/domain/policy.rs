//! The password policy: what AD will demand of a new password (the domain's policy, or the
//! fine-grained one that applies to the user), and the checks run before anything is written, so
//! a refusal can name the rule that was broken. AD refuses with one opaque code for every rule.
//!
//! Two of AD's rules cannot be checked in advance: password history and minimum age (the hashes
//! and the time of the last change are not readable). [`after_write`] explains a refusal that
//! passed every check here in those terms.

use std::sync::Arc;

pub use super::banned::BannedList;
use std::time::Duration;

/// Longest password accepted (AD itself allows 256 characters in unicodePwd).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// pwdProperties bit DOMAIN_PASSWORD_COMPLEX (MS-SAMR 2.2.1.6).
pub const DOMAIN_PASSWORD_COMPLEX: u32 = 1;

/// The rules AD applies to a user's new password, from the domain head object or from the
/// user's resultant Password Settings Object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub complexity: bool,
    /// How many previous passwords AD remembers and refuses.
    pub history_length: u32,
    /// How long after a change the password may not be changed again.
    pub min_age: Duration,
    /// `None`: passwords do not expire.
    pub max_age: Option<Duration>,
    /// Wrong passwords that lock the account; 0 = never locked.
    pub lockout_threshold: u32,
    /// `None`: locked until an administrator unlocks.
    pub lockout_duration: Option<Duration>,
    /// lockOutObservationWindow: a wrong password older than this no longer counts towards the
    /// threshold (AD starts again at 0). `None`: never forgotten.
    pub lockout_window: Option<Duration>,
    /// The DN of the fine-grained policy (PSO) these rules come from; `None` for the domain's.
    pub pso: Option<String>,
}

/// An AD interval attribute (minPwdAge, lockoutDuration, msDS-MaximumPasswordAge, …): a
/// negative count of 100 ns ticks. `i64::MIN` (0x8000000000000000) means "never" / "forever"
/// and gives `None`; so does 0 where `zero_is_never` (maxPwdAge = 0 means no expiry).
pub fn ad_interval(ticks: i64, zero_is_never: bool) -> Option<Duration> {
    if ticks == i64::MIN || (ticks == 0 && zero_is_never) {
        return None;
    }
    let ticks = ticks.unsigned_abs();
    Some(Duration::from_secs(ticks / 10_000_000) + Duration::from_nanos(ticks % 10_000_000 * 100))
}

/// A rule a new password broke, with what is needed to explain it. The `rule` ids are stable:
/// clients and pages key on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    TooShort {
        min: u32,
    },
    TooLong {
        max: usize,
    },
    /// A control character (Unicode category Cc: NUL, TAB, CR, LF, DEL, C1 controls, …): AD
    /// stores it, but nobody can type it at a sign-in prompt, so the account could never be
    /// signed in to.
    ControlCharacters,
    /// Fewer than three of the five character categories.
    Complexity,
    ContainsAccountName,
    ContainsDisplayName,
    /// A common password, or one from `policy.banned_file`, after normalisation.
    Banned,
    /// zxcvbn's score is below `policy.min_strength`.
    TooWeak {
        min_strength: u8,
    },
    /// AD refused a password that passed every check above: what remains is history and
    /// minimum age, which only AD can check.
    HistoryOrMinAge {
        history: u32,
        min_age: Duration,
    },
    /// One of the last `history` passwords this service wrote for the account, where the
    /// service keeps the history itself ([`crate::domain::history`]).
    Reused {
        history: u32,
    },
}

impl Violation {
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::TooShort { .. } => "too_short",
            Violation::TooLong { .. } => "too_long",
            Violation::ControlCharacters => "control_characters",
            Violation::Complexity => "complexity",
            Violation::ContainsAccountName => "contains_account_name",
            Violation::ContainsDisplayName => "contains_display_name",
            Violation::Banned => "banned",
            Violation::TooWeak { .. } => "too_weak",
            Violation::HistoryOrMinAge { .. } => "history_or_min_age",
            Violation::Reused { .. } => "history",
        }
    }
}

/// A rule a new password must meet, shown before the user types one: what
/// [`PasswordRules::check`] and AD will hold it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    MinLength(u32),
    /// No control characters (tab, line breaks, NUL, …).
    NoControlCharacters,
    /// Three of the five character categories.
    Complexity,
    /// Not the account name nor a part of the display name (part of AD's complexity rule).
    NoNames,
    /// Not one of the last `n` passwords.
    NotRecent(u32),
    NotBanned,
    MinStrength(u8),
}

/// The explanation of a policy refusal from AD for a password that passed [`PasswordRules::check`].
pub fn after_write(policy: &PasswordPolicy) -> Violation {
    Violation::HistoryOrMinAge {
        history: policy.history_length,
        min_age: policy.min_age,
    }
}

/// Whose password it is: the names complexity and strength are judged against.
#[derive(Clone, Copy, Debug)]
pub struct AccountNames<'a> {
    pub sam_account_name: &'a str,
    pub display_name: Option<&'a str>,
    pub mail: Option<&'a str>,
}

/// The delimiters AD splits a display name on before looking for its parts in a password
/// ("Password must meet complexity requirements").
const DISPLAY_NAME_DELIMITERS: [char; 7] = [',', '.', '-', '_', ' ', '#', '\t'];

/// Names shorter than this are not looked for in a password (AD's rule).
const MIN_NAME_CHARS: usize = 3;

/// The checks of this service on top of AD's: the banned list and a minimum strength.
#[derive(Clone, Debug)]
pub struct PasswordRules {
    pub banned: Arc<BannedList>,
    /// Minimum zxcvbn score, 0 (off) to 4.
    pub min_strength: u8,
}

impl PasswordRules {
    /// The rules a new password is held to under `policy`, in the order `check` judges them
    /// (history last: only AD checks it).
    pub fn requirements(&self, policy: &PasswordPolicy) -> Vec<Requirement> {
        let mut rules = vec![
            Requirement::MinLength(policy.min_length.max(1)),
            Requirement::NoControlCharacters,
        ];
        if policy.complexity {
            rules.extend([Requirement::Complexity, Requirement::NoNames]);
        }
        // The built-in list always applies.
        rules.push(Requirement::NotBanned);
        if self.min_strength > 0 {
            rules.push(Requirement::MinStrength(self.min_strength));
        }
        if policy.history_length > 0 {
            rules.push(Requirement::NotRecent(policy.history_length));
        }
        rules
    }

    /// Every rule `password` breaks, in a stable order; empty if it may be written. Pure, but
    /// zxcvbn costs a few milliseconds: async callers run it on a blocking thread.
    pub fn check(
        &self,
        password: &str,
        names: AccountNames<'_>,
        policy: &PasswordPolicy,
    ) -> Vec<Violation> {
        let mut broken = Vec::new();
        let length = password.chars().count();
        // An empty password is refused whatever the policy says.
        let min = policy.min_length.max(1);
        if length < min as usize {
            broken.push(Violation::TooShort { min });
        }
        if length > MAX_PASSWORD_CHARS {
            // Nothing else is judged of a password that can never be written.
            broken.push(Violation::TooLong {
                max: MAX_PASSWORD_CHARS,
            });
            return broken;
        }
        if length == 0 {
            return broken;
        }
        if has_control_characters(password) {
            broken.push(Violation::ControlCharacters);
        }
        if policy.complexity {
            if categories(password) < 3 {
                broken.push(Violation::Complexity);
            }
            if contains_account_name(password, names.sam_account_name) {
                broken.push(Violation::ContainsAccountName);
            }
            if names
                .display_name
                .is_some_and(|name| contains_display_name(password, name))
            {
                broken.push(Violation::ContainsDisplayName);
            }
        }
        if self.banned.refuses(password) {
            broken.push(Violation::Banned);
        }
        if self.min_strength > 0 && strength(password, names) < self.min_strength {
            broken.push(Violation::TooWeak {
                min_strength: self.min_strength,
            });
        }
        broken
    }
}

/// Whether `password` holds a character of Unicode category Cc (U+0000–U+001F, U+007F–U+009F).
/// Lone surrogates cannot occur: a Rust string is valid UTF-8, and the JSON and form parsers
/// refuse them before a password gets here.
pub fn has_control_characters(password: &str) -> bool {
    password.chars().any(char::is_control)
}

/// How many of AD's five character categories occur: upper case, lower case, digits 0–9,
/// the listed symbols, and letters without case (e.g. CJK). Other characters (spaces, currency
/// signs) count for none.
fn categories(password: &str) -> usize {
    const SYMBOLS: &str = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/";
    let mut seen = [false; 5];
    for c in password.chars() {
        if c.is_uppercase() {
            seen[0] = true;
        } else if c.is_lowercase() {
            seen[1] = true;
        } else if c.is_ascii_digit() {
            seen[2] = true;
        } else if SYMBOLS.contains(c) {
            seen[3] = true;
        } else if c.is_alphabetic() {
            seen[4] = true;
        }
    }
    seen.iter().filter(|s| **s).count()
}

fn contains_ignoring_case(password: &str, part: &str) -> bool {
    part.chars().count() >= MIN_NAME_CHARS && password.to_lowercase().contains(&part.to_lowercase())
}

/// The whole sAMAccountName, not its parts, is looked for.
fn contains_account_name(password: &str, sam_account_name: &str) -> bool {
    contains_ignoring_case(password, sam_account_name)
}

fn contains_display_name(password: &str, display_name: &str) -> bool {
    display_name
        .split(DISPLAY_NAME_DELIMITERS)
        .any(|token| contains_ignoring_case(password, token))
}

/// zxcvbn's score 0–4, with the user's names as words an attacker would try first.
fn strength(password: &str, names: AccountNames<'_>) -> u8 {
    let mut inputs = vec![names.sam_account_name];
    if let Some(name) = names.display_name {
        inputs.push(name);
        inputs.extend(
            name.split(DISPLAY_NAME_DELIMITERS)
                .filter(|t| !t.is_empty()),
        );
    }
    if let Some(mail) = names.mail {
        inputs.push(mail);
        inputs.extend(mail.split_once('@').map(|(local, _)| local));
    }
    u8::from(zxcvbn::zxcvbn(password, &inputs).score())
}

#[cfg(test)]
mod tests;
