//! The languages the service speaks, to people on pages and in mail.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    Nl,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Nl];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Nl => "nl",
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
}
