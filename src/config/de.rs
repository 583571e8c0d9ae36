//! Field parsers for the raw sections: each turns a value into its real type or fails with a
//! message that says what is allowed, and the config layer puts the key in front of it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{Deserializer, Error};
use url::Url;

use crate::domain::network::Cidr;
use crate::domain::scope::Scope;
pub use crate::domain::settings::de::{
    at_least_one, bounded, distinguished_names, optional_trimmed, parsed_list, positive_duration,
};

pub fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(d, 1024, u64::MAX, "must be at least 1024 bytes")
}

pub fn min_strength<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let message = "must be a zxcvbn score from 0 (off) to 4; 3 is a good default";
    bounded(d, 0, 4, message)
}

pub fn header_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value: Duration = humantime_serde::deserialize(d)?;
    if value < Duration::from_secs(1) {
        return Err(D::Error::custom("must be at least 1s"));
    }
    Ok(value)
}

/// A string parsed with `FromStr`, or `message` (the parser's own words say little, e.g.
/// "invalid socket address syntax").
fn parsed<'de, D, T>(d: D, message: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
{
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|_| D::Error::custom(format!("{text:?} {message}")))
}

pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parsed(d, "is not an address:port such as 0.0.0.0:8080")
}

/// An address and port, or empty for none.
pub fn optional_socket_addr<'de, D>(d: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    match text.trim() {
        "" => Ok(None),
        addr => addr.parse().map(Some).map_err(|_| {
            D::Error::custom("must be an address and port such as \"127.0.0.1:9090\", or empty")
        }),
    }
}

/// The http(s) URL users reach the service at.
pub fn public_url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    match Url::parse(&String::deserialize(d)?) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(url),
        _ => Err(D::Error::custom(
            "must be the http(s) URL users reach the service at, e.g. https://sspr.example.com",
        )),
    }
}

/// A path, text or secret, or empty for none (the empty default in config/default.toml). A
/// file's existence, and a secret's `_file` form, are checked after parsing, so that every
/// problem is reported.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = String::deserialize(d)?;
    Ok((!text.is_empty()).then(|| T::from(text)))
}

/// A distinguished name the service cannot work without.
pub fn required_dn<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(D::Error::custom("is required, e.g. DC=example,DC=com"));
    }
    Ok(text)
}

/// Entries trimmed, empty ones dropped.
pub fn trimmed_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<String>::deserialize(d)?
        .iter()
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect())
}

pub fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    parsed_list(d)
}

pub fn dc_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let urls = Vec::<String>::deserialize(d)?;
    if urls.is_empty() {
        return Err(D::Error::custom(
            "list at least one domain controller, e.g. [\"ldaps://dc1.example.com:636\"]",
        ));
    }
    Ok(urls)
}

pub fn ldap_filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let filter = text.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        return Err(D::Error::custom(
            "must be an LDAP filter in parentheses, e.g. (objectClass=user)",
        ));
    }
    Ok(filter.to_owned())
}

/// Mail addresses, trimmed.
pub fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|address| match address.trim().parse::<lettre::Address>() {
            Ok(_) => Ok(address.trim().to_owned()),
            Err(_) => Err(D::Error::custom(format!(
                "{address:?} is not a mail address; list addresses such as \
                 \"it-security@example.com\""
            ))),
        })
        .collect()
}

pub fn log_filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if tracing_subscriber::EnvFilter::try_new(&text).is_err() {
        return Err(D::Error::custom(
            "must be a level (error, warn, info, debug, trace) or a filter such as \
             \"info,sspr_bridge=debug\"",
        ));
    }
    Ok(text)
}

/// A secret as given, possibly empty (it may still come from the `_file` key).
pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    Ok(String::deserialize(d)?.into())
}

/// The kind of scope; a group's DN is set from `policy.group_dn`, a rule across both keys.
pub fn scope<'de, D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
    match String::deserialize(d)?.as_str() {
        "all" => Ok(Scope::All),
        "group" => Ok(Scope::Group(String::new())),
        "none" => Ok(Scope::Nobody),
        _ => Err(D::Error::custom(
            "must be \"all\", \"group\" (the members of policy.group_dn) or \"none\"",
        )),
    }
}
