//! The languages the service speaks, to people on pages and in mail.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
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
}
