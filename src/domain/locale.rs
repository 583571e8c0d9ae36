//! The languages the service speaks, to people on pages and in mail.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// English is the default, as for a tag not spoken here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Locale {
    #[default]
    En,
    Nl,
    De,
    Fr,
}

impl Locale {
    pub const ALL: [Locale; 4] = [Locale::En, Locale::Nl, Locale::De, Locale::Fr];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Nl => "nl",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    /// `nl`, `nl-NL` and `NL_be` are Dutch; `None` for a language not spoken here.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    /// Like [`Locale::from_tag`], falling back to English.
    pub fn of(tag: &str) -> Self {
        Self::from_tag(tag).unwrap_or(Locale::En)
    }

    /// Whether `count` takes the singular (`_one`) form of a counted text. French counts 0 as
    /// singular ("0 tentative restante"); English, Dutch and German only 1 (CLDR plural rules).
    pub fn is_singular(self, count: u64) -> bool {
        match self {
            Locale::Fr => count <= 1,
            Locale::En | Locale::Nl | Locale::De => count == 1,
        }
    }
}

/// As its tag, the text queued mails were stored with before the type existed.
impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.tag())
    }
}

/// Any tag reads, falling back to English like [`Locale::of`], so a mail queued with a tag
/// this build does not speak is still sent.
impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(deserializer)?;
        Ok(Locale::of(&tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_each_language_once_and_regional_variants_map_to_it() {
        for locale in Locale::ALL {
            assert_eq!(Locale::from_tag(locale.tag()), Some(locale));
        }
        assert_eq!(Locale::from_tag("de-CH"), Some(Locale::De));
        assert_eq!(Locale::from_tag("fr_BE"), Some(Locale::Fr));
        assert_eq!(Locale::from_tag("es"), None);
        assert_eq!(Locale::of("es-ES"), Locale::En);
    }

    #[test]
    fn french_counts_zero_as_singular_the_others_do_not() {
        assert!(Locale::Fr.is_singular(0));
        assert!(Locale::Fr.is_singular(1));
        assert!(!Locale::Fr.is_singular(2));
        for locale in [Locale::En, Locale::Nl, Locale::De] {
            assert!(!locale.is_singular(0), "{locale:?}");
            assert!(locale.is_singular(1), "{locale:?}");
            assert!(!locale.is_singular(2), "{locale:?}");
        }
    }

    #[test]
    fn serialises_as_its_tag_and_reads_any_tag() {
        assert_eq!(serde_json::to_string(&Locale::Nl).unwrap(), "\"nl\"");
        let read = |json: &str| serde_json::from_str::<Locale>(json).unwrap();
        assert_eq!(read("\"nl\""), Locale::Nl);
        assert_eq!(read("\"nl-BE\""), Locale::Nl);
        assert_eq!(read("\"de\""), Locale::De);
        assert_eq!(read("\"es\""), Locale::En);
        assert_eq!(read("\"\""), Locale::En);
    }
}
