//! `[directory]`: the domain controllers and how the service reaches them.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::de;
use crate::domain::directory::DirectoryError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The domain controllers as configured; [`Self::endpoints`] is what connects.
    #[serde(deserialize_with = "de::dc_urls")]
    pub urls: Vec<String>,
    pub starttls: bool,
    #[serde(skip)]
    pub endpoints: Vec<DcEndpoint>,
    #[serde(deserialize_with = "de::optional")]
    pub ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::required_dn")]
    pub base_dn: String,
    #[serde(deserialize_with = "de::required_dn")]
    pub bind_dn: String,
    #[serde(deserialize_with = "de::secret")]
    pub bind_password: SecretString,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Accounts no action may target, besides `bind_dn` itself (user DNs).
    #[serde(deserialize_with = "de::trimmed_list")]
    pub never_reset: Vec<String>,
    /// The account `check` resets to prove the service account's rights; `None` = no self-test.
    #[serde(deserialize_with = "de::optional_trimmed")]
    pub self_test_user: Option<String>,
    #[serde(deserialize_with = "de::ldap_filter")]
    pub user_filter: String,
    #[serde(deserialize_with = "de::positive_duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "de::positive_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "de::at_least_one")]
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub retry_down_after: Duration,
    pub policy_hints: PolicyHints,
    pub balance: Balance,
    #[serde(with = "humantime_serde")]
    pub write_affinity: Duration,
    /// How long a password policy read from AD (the domain's, a PSO by DN) is used before it is
    /// read again.
    #[serde(with = "humantime_serde")]
    pub policy_cache: Duration,
}

/// How work is spread over several domain controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each account has a home DC, chosen by hashing its name over the DCs that answer: every
    /// read, bind and write for it goes there, so a flow never reads a DC that has not yet
    /// received its own write. Accounts, and so the load, spread over all DCs; every instance
    /// of the service makes the same choice.
    ByUser,
    /// The first DC that answers takes everything; the others are for failover.
    InOrder,
}

/// Whether password resets carry LDAP_SERVER_POLICY_HINTS, which makes AD apply password history
/// and minimum age to an administrative reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyHints {
    /// Send it to every DC that lists it in its rootDSE `supportedControl`.
    Auto,
    /// Refuse to write a password through a DC that does not support it.
    Required,
    /// Never send it.
    Off,
}

/// A domain controller's URL, known to be encrypted: `ldaps://`, or `ldap://` upgraded with
/// StartTLS. There is no way to build one for a plaintext connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcEndpoint {
    pub url: String,
    pub starttls: bool,
}

impl DcEndpoint {
    pub fn parse(url: &str, starttls: bool) -> Result<Self, DirectoryError> {
        let parsed = Url::parse(url).map_err(|e| DirectoryError::Other {
            rc: 0,
            detail: format!("{url} is not a URL: {e}"),
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(DirectoryError::Other {
                rc: 0,
                detail: format!("{url} has no host"),
            });
        }
        match parsed.scheme() {
            "ldaps" => Ok(Self {
                url: url.to_owned(),
                starttls: false,
            }),
            "ldap" if starttls => Ok(Self {
                url: url.to_owned(),
                starttls: true,
            }),
            "ldap" => Err(DirectoryError::InsecureTransport {
                url: url.to_owned(),
            }),
            other => Err(DirectoryError::Other {
                rc: 0,
                detail: format!("{url}: scheme {other}:// is not LDAP; use ldaps:// or ldap://"),
            }),
        }
    }
}
