//! The flows' settings, as the configuration gives them: plain data, so this module depends on
//! no flow and every flow can depend on it. A section whose keys the flows take as they are is
//! defined here once, and `config` deserialises its table straight into it.

pub mod de;

use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, Error};

use super::network::Cidr;
use super::policy::PasswordRules;
use super::scope::Eligibility;

/// Settings of the flows, taken from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[registration]`.
    pub registration: RegistrationSettings,
    /// `[reset]`.
    pub reset: ResetSettings,
    /// `[throttle]`.
    pub throttle: ThrottleSettings,
    /// `[helpdesk]`.
    pub helpdesk: HelpdeskSettings,
    /// What a new password is checked against besides the directory's policy.
    pub password_rules: PasswordRules,
    /// Who may use self-service.
    pub eligibility: Eligibility,
    /// Who is told of each self-service reset of a (allow-listed) protected account.
    pub admin_addresses: Vec<String>,
    /// `licence.azure_ad_premium`: without it, only helpdesk operators may register (their own
    /// authenticator app).
    pub self_service_licensed: bool,
    /// How long a notification is retried before it is given up.
    pub notice_lifetime: Duration,
    /// Sign-ins with the AD password: `throttle.signin_*`, and the domain's names from
    /// `directory.base_dn`.
    pub signin: SignInSettings,
    /// `[admin]`.
    pub admin: AdminSettings,
    /// Passkeys: the relying party from `server.public_url` and `passkey.rp_id`, or off.
    pub passkeys: super::passkey::PasskeySettings,
}

/// `[registration]`: registering methods, and the reminders to do so.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSettings {
    #[serde(deserialize_with = "de::positive_duration")]
    pub session_lifetime: Duration,
    #[serde(deserialize_with = "totp_issuer")]
    pub totp_issuer: String,
    /// A method confirmed longer ago than this many days no longer counts for a reset until the
    /// user confirms it again; 0 = never.
    #[serde(deserialize_with = "reconfirm_days")]
    pub reconfirm_days: u16,
    /// `remind` mails an unregistered user at most once per this interval.
    #[serde(deserialize_with = "de::positive_duration")]
    pub remind_interval: Duration,
    /// How long a one-time registration code from the helpdesk stays valid.
    #[serde(deserialize_with = "de::positive_duration")]
    pub code_lifetime: Duration,
    /// Where a user may register their first method with the AD password alone; from anywhere
    /// else the first one takes a registration code. Empty: anywhere.
    #[serde(deserialize_with = "de::parsed_list")]
    pub allowed_networks: Vec<Cidr>,
}

impl RegistrationSettings {
    /// `reconfirm_days` as a duration; `None` when confirmations never go stale.
    pub fn reconfirm_after(&self) -> Option<Duration> {
        (self.reconfirm_days > 0)
            .then(|| Duration::from_secs(u64::from(self.reconfirm_days) * 86_400))
    }
}

fn totp_issuer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(D::Error::custom(
            "must name the service, e.g. \"Contoso IT\"",
        ));
    }
    Ok(text)
}

fn reconfirm_days<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let message = "must be 0 (never) or a number of days from 1 to 730";
    de::bounded(d, 0, 730, message)
}

/// `[reset]`: what a reset takes and how long its parts last.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetSettings {
    /// 1 or 2 (two different methods).
    #[serde(deserialize_with = "methods_required")]
    pub methods_required: usize,
    pub unlock_on_reset: bool,
    #[serde(deserialize_with = "de::positive_duration")]
    pub flow_lifetime: Duration,
    /// Also of the codes that confirm an address at registration.
    #[serde(deserialize_with = "de::positive_duration")]
    pub code_lifetime: Duration,
}

fn methods_required<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let required: u8 = de::bounded(d, 1, 2, "must be 1 or 2 (2 means two different methods)")?;
    Ok(usize::from(required))
}

/// `[throttle]`: how often an address, a user or a login may try.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    #[serde(deserialize_with = "de::count")]
    pub flow_max_failures: i64,
    #[serde(deserialize_with = "de::count")]
    pub user_max_failures: i64,
    #[serde(deserialize_with = "de::positive_duration")]
    pub user_window: Duration,
    #[serde(with = "humantime_serde")]
    pub user_block: Duration,
    #[serde(deserialize_with = "de::count")]
    pub ip_max_starts: i64,
    #[serde(deserialize_with = "de::count")]
    pub ip_max_verifications: i64,
    #[serde(deserialize_with = "de::positive_duration")]
    pub ip_window: Duration,
    #[serde(deserialize_with = "de::count")]
    pub email_max_sends: i64,
    #[serde(deserialize_with = "de::positive_duration")]
    pub email_window: Duration,
    /// The sign-in rules take these with the domain's names, as [`SignInSettings`].
    #[serde(deserialize_with = "de::count")]
    pub signin_max_failures: i64,
    #[serde(deserialize_with = "de::positive_duration")]
    pub signin_window: Duration,
    #[serde(with = "humantime_serde")]
    pub signin_failure_floor: Duration,
    /// Per-address throttles count an IPv6 client by this many leading bits, 1 to 128: one
    /// subscriber or host usually holds a whole /64.
    #[serde(deserialize_with = "ipv6_prefix")]
    pub ipv6_prefix: u8,
}

fn ipv6_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let message = "must be a prefix length from 1 to 128; 64 (one subnet) is a good default";
    de::bounded(d, 1, 128, message)
}

/// `[helpdesk]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpdeskSettings {
    /// The link users are shown to reach the helpdesk (only the pages show it).
    #[serde(deserialize_with = "de::contact_link")]
    pub url: Option<String>,
    /// `None`: the helpdesk is off.
    #[serde(deserialize_with = "de::optional_trimmed")]
    pub group_dn: Option<String>,
    pub require_verification: bool,
    #[serde(deserialize_with = "de::distinguished_names")]
    pub allow_protected: Vec<String>,
    #[serde(deserialize_with = "de::positive_duration")]
    pub session_idle: Duration,
    #[serde(deserialize_with = "de::positive_duration")]
    pub session_lifetime: Duration,
    #[serde(deserialize_with = "de::positive_duration")]
    pub verification_lifetime: Duration,
    #[serde(deserialize_with = "temporary_password_length")]
    pub temporary_password_length: usize,
    /// Operators sign in with their own registered authenticator app besides their password.
    pub operator_second_factor: bool,
    /// Sign-in attempts per typed operator login, and requests per operator account, within
    /// `operator_window`: operators' own limits, apart from the users' per-address ones.
    #[serde(deserialize_with = "de::count")]
    pub operator_max_sign_ins: i64,
    #[serde(deserialize_with = "de::count")]
    pub operator_max_actions: i64,
    #[serde(deserialize_with = "de::positive_duration")]
    pub operator_window: Duration,
    /// How often a live operator session checks again that its operator is still in the group.
    #[serde(with = "humantime_serde")]
    pub membership_recheck: Duration,
    /// How operators may verify callers (`helpdesk.verification_methods`).
    #[serde(deserialize_with = "caller_checks")]
    pub verification_methods: Vec<CallerCheck>,
    /// A caller's `manager` set (or first seen) less than this ago cannot approve.
    #[serde(with = "humantime_serde")]
    pub manager_min_age: Duration,
    /// The helpdesk's list of passwords that expire soon covers this long from now.
    #[serde(default, deserialize_with = "de::positive_duration")]
    pub expiring_within: Duration,
}

fn temporary_password_length<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de::bounded(d, 12, 128, "must be between 12 and 128 characters")
}

/// A way operators may verify callers (`helpdesk.verification_methods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerCheck {
    /// A method the caller registered: their authenticator code, or a code mailed to their
    /// confirmed address.
    Registered,
    /// A code mailed to the account's AD `mail`, for callers who registered nothing.
    AdMail,
    /// The caller's AD manager approves by a mailed link.
    Manager,
}

impl CallerCheck {
    pub const ALL: [CallerCheck; 3] = [
        CallerCheck::Registered,
        CallerCheck::AdMail,
        CallerCheck::Manager,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallerCheck::Registered => "registered",
            CallerCheck::AdMail => "ad_mail",
            CallerCheck::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Each named check once, in the order given.
fn caller_checks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CallerCheck>, D::Error> {
    let mut checks = Vec::new();
    for name in Vec::<String>::deserialize(d)? {
        let check = CallerCheck::parse(name.trim()).ok_or_else(|| {
            D::Error::custom(format!(
                "{name:?} is not one of \"registered\", \"ad_mail\", \"manager\""
            ))
        })?;
        if !checks.contains(&check) {
            checks.push(check);
        }
    }
    Ok(checks)
}

/// The sign-in rules' settings (`throttle.signin_*`).
#[derive(Clone, Debug)]
pub struct SignInSettings {
    pub max_failures: i64,
    pub window: Duration,
    /// Every failed sign-in answers no sooner than this after it began.
    pub failure_floor: Duration,
    /// The domain's names a login may be prefixed with (`SSPR\jdoe`) or end in
    /// (`jdoe@sspr.test`), in lower case: the DNS name and its first label.
    pub domains: Vec<String>,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            failure_floor: Duration::from_millis(400),
            domains: Vec::new(),
        }
    }
}

impl SignInSettings {
    /// The names of the domain under `base_dn`: from `OU=Staff,DC=sspr,DC=test`, `sspr.test`
    /// and `sspr` (the usual NetBIOS name).
    pub fn domains_of(base_dn: &str) -> Vec<String> {
        let labels: Vec<String> = base_dn
            .split(',')
            .filter_map(|rdn| rdn.trim().split_once('='))
            .filter(|(attr, _)| attr.trim().eq_ignore_ascii_case("dc"))
            .map(|(_, value)| value.trim().to_lowercase())
            .collect();
        match labels.first() {
            Some(first) if labels.len() > 1 => vec![labels.join("."), first.clone()],
            Some(first) => vec![first.clone()],
            None => Vec::new(),
        }
    }
}

/// `[admin]`: who may see the rollout figures at `/admin`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `None`: nobody may.
    #[serde(default, deserialize_with = "de::optional_trimmed")]
    pub group_dn: Option<String>,
}
