//! The flows' settings, as the configuration gives them: plain data, so this module depends on
//! no flow and every flow can depend on it.

use std::time::Duration;

use super::network::Cidr;
use super::policy::PasswordRules;
use super::scope::Eligibility;

/// Settings of the flows, taken from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub session_lifetime: Duration,
    pub totp_issuer: String,
    pub methods_required: usize,
    pub unlock_on_reset: bool,
    pub flow_lifetime: Duration,
    pub code_lifetime: Duration,
    pub flow_max_failures: i64,
    pub user_max_failures: i64,
    pub user_window: Duration,
    pub user_block: Duration,
    pub ip_max_starts: i64,
    pub ip_max_verifications: i64,
    pub ip_window: Duration,
    pub email_max_sends: i64,
    pub email_window: Duration,
    pub helpdesk: HelpdeskSettings,
    /// What a new password is checked against besides the directory's policy.
    pub password_rules: PasswordRules,
    /// A method confirmed longer ago than this no longer counts for a reset
    /// (`registration.reconfirm_days`); `None`: confirmations never go stale.
    pub reconfirm_after: Option<Duration>,
    /// Who may use self-service.
    pub eligibility: Eligibility,
    /// Who is told of each self-service reset of a (allow-listed) protected account.
    pub admin_addresses: Vec<String>,
    /// How long a one-time registration code stays valid (`registration.code_lifetime`).
    pub registration_code_lifetime: Duration,
    /// Where a first method needs only the AD password (`registration.allowed_networks`);
    /// empty: anywhere.
    pub registration_networks: Vec<Cidr>,
    /// `licence.azure_ad_premium`: without it, only helpdesk operators may register (their own
    /// authenticator app).
    pub self_service_licensed: bool,
    /// How long a notification is retried before it is given up.
    pub notice_lifetime: Duration,
    /// Sign-ins with the AD password (`throttle.signin_*`).
    pub signin: SignInSettings,
    /// Per-address throttles count an IPv6 client by this prefix (`throttle.ipv6_prefix`):
    /// one subscriber or host usually holds a whole /64.
    pub ipv6_prefix: u8,
}

#[derive(Clone, Debug, Default)]
pub struct HelpdeskSettings {
    /// `None`: the helpdesk is off.
    pub group_dn: Option<String>,
    pub require_verification: bool,
    pub allow_protected: Vec<String>,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub verification_lifetime: Duration,
    pub temporary_password_length: usize,
    /// Operators sign in with their own registered authenticator app besides their password.
    pub operator_second_factor: bool,
    /// Sign-in attempts per typed operator login, and requests per operator account, within
    /// `operator_window`: operators' own limits, apart from the users' per-address ones.
    pub operator_max_sign_ins: i64,
    pub operator_max_actions: i64,
    pub operator_window: Duration,
    /// How operators may verify callers (`helpdesk.verification_methods`).
    pub verification_methods: Vec<CallerCheck>,
    /// How often a live operator session checks again that its operator is still in the group.
    pub membership_recheck: Duration,
    /// A caller's `manager` set (or first seen) less than this ago cannot approve.
    pub manager_min_age: Duration,
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
