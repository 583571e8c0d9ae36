//! Field parsers the settings sections share with the rest of the configuration: each turns a
//! value into its real type or fails with a message that says what is allowed, and the config
//! layer puts the key in front of it. Imports nothing from the crate, so both the domain's
//! settings and `config` can use it.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use url::Url;

/// A number within `MIN..=MAX`, else `message`.
pub fn bounded<'de, D, T>(d: D, min: u64, max: u64, message: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy,
    u64: TryFrom<T>,
{
    let value = T::deserialize(d)?;
    match u64::try_from(value) {
        Ok(n) if (min..=max).contains(&n) => Ok(value),
        _ => Err(D::Error::custom(message)),
    }
}

pub fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy,
    u64: TryFrom<T>,
{
    bounded(d, 1, u64::MAX, "must be at least 1")
}

/// A duration such as "15m" that is more than zero.
pub fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value: Duration = humantime_serde::deserialize(d)?;
    if value.is_zero() {
        return Err(D::Error::custom("must be more than 0, e.g. \"15m\""));
    }
    Ok(value)
}

/// A link users are shown to reach the helpdesk, or empty for none.
pub fn contact_link<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    match Url::parse(&text).as_ref().map(Url::scheme) {
        Ok("https" | "http" | "mailto" | "tel") => Ok(Some(text)),
        _ => Err(D::Error::custom(
            "must be an https:, http:, mailto: or tel: link",
        )),
    }
}

/// Trimmed text, or empty for none.
pub fn optional_trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

pub fn distinguished_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.iter().any(|dn| !dn.contains('=')) {
        return Err(D::Error::custom(
            "must list distinguished names of users or groups, e.g. \
             [\"CN=IT Staff,OU=Groups,DC=example,DC=com\"]",
        ));
    }
    Ok(names)
}

/// A list whose every entry parses with `FromStr`; the first that does not fails with the
/// parser's own message.
pub fn parsed_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|entry| entry.parse::<T>().map_err(D::Error::custom))
        .collect()
}

/// A count of at least 1 that fits a `u32`, as the signed number the throttle's counters are
/// compared with.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    at_least_one::<D, u32>(d).map(i64::from)
}
