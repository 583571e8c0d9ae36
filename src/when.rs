//! Times as people read them (pages and mails): in `ui.timezone`, in the reader's language, with
//! the zone's abbreviation (or its offset where the zone has none), so "14:05" is never read in
//! the wrong zone. Machine-readable times (`<time datetime>`, the audit export) stay in UTC.
//!
//! Zones come from the system's tz database (`/usr/share/zoneinfo`, kept current by the OS);
//! a copy is compiled in for machines without one (slim container images), so a zone name that
//! works on one host works on every host.

use std::fmt;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::domain::locale::Locale;

/// `ui.timezone`: an IANA zone such as `Europe/Amsterdam`, or the server's own zone.
#[derive(Clone)]
pub struct Zone {
    zone: TimeZone,
    /// As configured, or `system (…)` for the server's own zone; for `check` and errors.
    name: String,
}

impl Zone {
    /// The zone named `name` (an IANA name); empty: the server's own zone.
    pub fn named(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Self::system());
        }
        let zone = TimeZone::get(name).map_err(|_| {
            format!(
                "{name:?} is not a time zone name; use an IANA name such as \
                 \"Europe/Amsterdam\" or \"America/New_York\" (empty: the server's own zone)"
            )
        })?;
        Ok(Self {
            zone,
            name: name.to_owned(),
        })
    }

    /// The server's own zone (`TZ`, else `/etc/localtime`; UTC when neither says).
    pub fn system() -> Self {
        let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        let name = format!("system ({})", zone.iana_name().unwrap_or("UTC"));
        Self { zone, name }
    }

    pub fn utc() -> Self {
        Self {
            zone: TimeZone::UTC,
            name: "UTC".to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `at` on the wall clock of this zone.
    pub fn local(&self, at: SystemTime) -> Option<Local> {
        let at = Timestamp::try_from(at).ok()?;
        let zoned = at.to_zoned(self.zone.clone());
        let info = self.zone.to_offset_info(at);
        let abbreviation = info.abbreviation();
        // tzdb writes "-03" where a zone has no letters; "+01:00" reads as an offset.
        let zone = if abbreviation.starts_with(['+', '-']) {
            format!("UTC{}", info.offset())
        } else {
            abbreviation.to_owned()
        };
        Some(Local {
            day: zoned.day(),
            month: zoned.month(),
            year: zoned.year(),
            time: format!("{:02}:{:02}", zoned.hour(), zoned.minute()),
            zone,
        })
    }

    /// `at` in words for `locale` (the catalog's `mail.common.when` and `months`).
    pub fn in_words(&self, locale: Locale, at: SystemTime) -> Option<String> {
        let local = self.local(at)?;
        let common = crate::i18n::catalog(locale).mail.get("common")?;
        let when = common.get("when")?.as_str()?;
        let month = common
            .get("months")?
            .as_array()?
            .get(usize::try_from(local.month).ok()? - 1)?
            .as_str()?;
        Some(local.fill(when, month))
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

/// A moment on a zone's wall clock, in the parts a catalog's `when` text places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    pub day: i8,
    /// 1 to 12.
    pub month: i8,
    pub year: i16,
    /// `14:05`.
    pub time: String,
    /// `CET`, `CEST`, `UTC`, or an offset such as `UTC-03`.
    pub zone: String,
}

impl Local {
    /// `when` with `{day}`, `{month}` (the name given), `{year}`, `{time}` and `{zone}` filled.
    pub fn fill(&self, when: &str, month: &str) -> String {
        crate::i18n::fill_with(
            when,
            &[
                ("day", &self.day.to_string()),
                ("month", month),
                ("year", &self.year.to_string()),
                ("time", &self.time),
                ("zone", &self.zone),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// 2026-12-06 13:05 UTC (winter) and 2026-07-06 12:05 UTC (summer): 14:05 in Amsterdam.
    const WINTER: u64 = 1_796_562_300;
    const SUMMER: u64 = 1_783_339_500;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_read_in_each_language_with_the_zone_in_winter_and_in_summer() {
        let amsterdam = Zone::named("Europe/Amsterdam").unwrap();
        let cases = [
            (Locale::En, WINTER, "14:05 CET on 6 December 2026"),
            (Locale::En, SUMMER, "14:05 CEST on 6 July 2026"),
            (Locale::Nl, WINTER, "6 december 2026 om 14:05 CET"),
            (Locale::Nl, SUMMER, "6 juli 2026 om 14:05 CEST"),
            (Locale::De, WINTER, "6. Dezember 2026 um 14:05 CET"),
            (Locale::De, SUMMER, "6. Juli 2026 um 14:05 CEST"),
            (Locale::Fr, WINTER, "6 décembre 2026 à 14:05 CET"),
            (Locale::Fr, SUMMER, "6 juillet 2026 à 14:05 CEST"),
        ];
        for (locale, secs, words) in cases {
            assert_eq!(
                amsterdam.in_words(locale, at(secs)).as_deref(),
                Some(words),
                "{locale:?}"
            );
        }
    }

    #[test]
    fn other_zones_and_zones_without_letters_show_their_offset() {
        let utc = Zone::utc().local(at(WINTER)).unwrap();
        assert_eq!((utc.time.as_str(), utc.zone.as_str()), ("13:05", "UTC"));
        let new_york = Zone::named("America/New_York").unwrap();
        let local = new_york.local(at(SUMMER)).unwrap();
        assert_eq!((local.time.as_str(), local.zone.as_str()), ("08:05", "EDT"));
        // São Paulo has no abbreviation in the tz database, only "-03".
        let sao_paulo = Zone::named("America/Sao_Paulo").unwrap();
        let local = sao_paulo.local(at(WINTER)).unwrap();
        assert_eq!(
            (local.time.as_str(), local.zone.as_str()),
            ("10:05", "UTC-03")
        );
    }

    #[test]
    fn a_wrong_zone_name_is_refused_and_empty_is_the_servers_zone() {
        let err = Zone::named("Europe/Amsterdan").unwrap_err();
        assert!(
            err.contains("\"Europe/Amsterdan\" is not a time zone name"),
            "{err}"
        );
        assert!(Zone::named("CET+1").is_err());
        assert!(Zone::named("  ").unwrap().name().starts_with("system ("));
    }
}
