//! Everything a person reads, one catalog per language: `locales/<lang>.toml`, compiled in, with
//! a table per use: `[page]` (the pages), `[mail]` (the mails, one sub-table per kind), `[rule]`
//! (password rules) and `[error]` (the API's error messages).
//!
//! One placeholder syntax, `{name}`, filled by [`fill`]: values are taken literally (a `{x}`
//! inside a value stays as it is) and a placeholder without a value is an error, never a blank.
//! One plural convention: a text that depends on a count has a `key_one` (singular) and a
//! `key_other` form, chosen by [`Catalog::plural_in`] in code and by `t("key", n=…)` in templates,
//! by the language's own rule ([`Locale::is_singular`]: French says "0 tentative").
//!
//! Templates and the stylesheet are compiled in too; [`Overrides`] lets a folder
//! (`ui.templates_dir`) replace any of them by file name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Error, ErrorKind, State};

use crate::domain::locale::Locale;

/// The compiled-in catalog of `locale`. Adding a language: its file, and its arm here.
pub fn source(locale: Locale) -> &'static str {
    match locale {
        Locale::En => include_str!("../locales/en.toml"),
        Locale::Nl => include_str!("../locales/nl.toml"),
        Locale::De => include_str!("../locales/de.toml"),
        Locale::Fr => include_str!("../locales/fr.toml"),
    }
}

/// The flat tables of a catalog: key to text.
pub type Texts = BTreeMap<String, String>;

/// One language's texts.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Set once parsed, for the plural rule of [`Catalog::rule_count`].
    #[serde(skip, default = "english")]
    locale: Locale,
    pub page: Texts,
    /// Nested (a table per mail kind, lists of notes); `mail::templates` reads it into its own
    /// typed shape, which names every key it needs.
    pub mail: toml::Table,
    pub rule: Texts,
    pub error: Texts,
}

static CATALOGS: LazyLock<Vec<(Locale, Catalog)>> = LazyLock::new(|| {
    Locale::ALL
        .into_iter()
        .map(|locale| {
            let catalog: Catalog = toml::from_str(source(locale)).unwrap_or_else(|e| {
                panic!("compiled-in catalog {}.toml is invalid: {e}", locale.tag())
            });
            (locale, Catalog { locale, ..catalog })
        })
        .collect()
});

fn english() -> Locale {
    Locale::En
}

/// The catalog of `locale`. Parsed once; a unit test sees that every one parses.
pub fn catalog(locale: Locale) -> &'static Catalog {
    CATALOGS
        .iter()
        .find_map(|(l, c)| (*l == locale).then_some(c))
        .expect("a catalog for every language")
}

/// A key missing from a table: a bug the unit tests catch, so it panics with the key's name.
fn get<'a>(table: &'a Texts, name: &str, key: &str) -> &'a str {
    table
        .get(key)
        .unwrap_or_else(|| panic!("no text [{name}] {key}"))
}

impl Catalog {
    /// `[rule] key`.
    pub fn rule(&self, key: &str) -> &str {
        get(&self.rule, "rule", key)
    }

    /// `[error] key`.
    pub fn error(&self, key: &str) -> &str {
        get(&self.error, "error", key)
    }

    /// `key_one` or `key_other` of `table` for `count`, by English's rule (the API's messages
    /// are English).
    pub fn plural<'a>(table: &'a Texts, key: &str, count: u64) -> Option<&'a str> {
        Self::plural_in(Locale::En, table, key, count)
    }

    /// `key_one` or `key_other` of `table` for `count`, by the plural rule of `locale`.
    pub fn plural_in<'a>(
        locale: Locale,
        table: &'a Texts,
        key: &str,
        count: u64,
    ) -> Option<&'a str> {
        let form = if locale.is_singular(count) {
            "one"
        } else {
            "other"
        };
        table.get(&format!("{key}_{form}")).map(String::as_str)
    }

    /// `[rule] key_one|key_other` for `n`, with `{n}` filled.
    pub fn rule_count(&self, key: &str, n: u64) -> String {
        let text = Self::plural_in(self.locale, &self.rule, key, n)
            .unwrap_or_else(|| panic!("no text [rule] {key}_one/_other"));
        fill_with(text, &[("n", &n.to_string())])
    }
}

/// A placeholder in a text had no value, or a brace was left open.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FillError(String);

impl From<FillError> for Error {
    fn from(e: FillError) -> Self {
        Error::new(ErrorKind::InvalidOperation, e.0)
    }
}

/// `text` with each `{name}` replaced by `value(name)`. Values are inserted literally; a
/// placeholder without a value or an unclosed brace is an error, so a typo in a catalog fails in
/// the unit tests rather than showing a blank.
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, FillError> {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| FillError(format!("unclosed placeholder in {text:?}")))?;
        let name = &after[..close];
        out.push_str(
            &value(name)
                .ok_or_else(|| FillError(format!("no value for {{{name}}} in {text:?}")))?,
        );
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`fill`] from a list of values, for texts of the compiled-in catalogs (whose placeholders the
/// unit tests check): a placeholder without a value stays as it is rather than failing.
pub fn fill_with(text: &str, values: &[(&str, &str)]) -> String {
    fill(text, |name| {
        Some(
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(|| format!("{{{name}}}"), |(_, v)| (*v).to_owned()),
        )
    })
    .unwrap_or_else(|_| text.to_owned())
}

/// A template's view of one table of `locale`: `t.key` reads a text as it is; `t("key",
/// name=value, …)` fills its placeholders, and with `n=` picks `key_one` or `key_other` by the
/// language's plural rule.
#[derive(Debug)]
pub struct TemplateTexts {
    locale: Locale,
    texts: &'static Texts,
}

impl TemplateTexts {
    pub fn new(locale: Locale, texts: &'static Texts) -> Self {
        Self { locale, texts }
    }
}

impl Object for TemplateTexts {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.texts.get(key.as_str()?).map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Iter(Box::new(
            self.texts
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect::<Vec<_>>()
                .into_iter(),
        ))
    }

    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (key, kwargs): (&str, Kwargs) = minijinja::value::from_args(args)?;
        let count = kwargs.get::<Option<u64>>("n")?;
        let text = match count {
            Some(n) => Catalog::plural_in(self.locale, self.texts, key, n)
                .or_else(|| self.texts.get(key).map(|s| &**s)),
            None => self.texts.get(key).map(String::as_str),
        }
        .ok_or_else(|| Error::new(ErrorKind::UndefinedError, format!("no text {key}")))?;
        let filled = fill(text, |name| {
            kwargs
                .get::<Option<Value>>(name)
                .ok()
                .flatten()
                .map(|v| v.to_string())
        })?;
        kwargs.assert_all_used()?;
        Ok(Value::from(filled))
    }
}

/// Files that replace compiled-in templates or the stylesheet: `ui.templates_dir`, laid out like
/// the built-in `templates/` folder (`reset_start.html`, `mail/code.txt`, `style.css`). Read
/// once at start-up, so a broken override fails then, not on a user's request.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    dir: Option<PathBuf>,
}

impl Overrides {
    /// No folder: only the built-in files.
    pub fn none() -> Self {
        Self::default()
    }

    /// `dir`, unless empty (the default: built-in only). A set folder must exist.
    pub fn new(dir: &Path) -> Result<Self, OverrideError> {
        if dir.as_os_str().is_empty() {
            return Ok(Self::none());
        }
        if !dir.is_dir() {
            return Err(OverrideError::Read(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("ui.templates_dir {} is not a folder", dir.display()),
            )));
        }
        Ok(Self {
            dir: Some(dir.to_path_buf()),
        })
    }

    /// The file `name` (a relative path such as `mail/code.html`) from the folder if it is
    /// there, else `built_in`. Names come from the compiled-in lists, never from a request.
    pub fn load(&self, name: &str, built_in: &'static str) -> Result<String, std::io::Error> {
        let Some(dir) = &self.dir else {
            return Ok(built_in.to_owned());
        };
        match std::fs::read_to_string(dir.join(name)) {
            Ok(source) => {
                tracing::info!(template = name, dir = %dir.display(), "template overridden");
                Ok(source)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(built_in.to_owned()),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", dir.join(name).display()),
            )),
        }
    }

    /// Adds each of `templates` (name, built-in source) to `env`, overridden where the folder
    /// has `{folder}{name}`; every one is compiled now.
    pub fn add_templates(
        &self,
        env: &mut minijinja::Environment<'static>,
        folder: &str,
        templates: &[(&'static str, &'static str)],
    ) -> Result<(), OverrideError> {
        for (name, built_in) in templates {
            let source = self
                .load(&format!("{folder}{name}"), built_in)
                .map_err(OverrideError::Read)?;
            env.add_template_owned(*name, source)
                .map_err(|e| OverrideError::Template(name, e))?;
        }
        Ok(())
    }
}

/// A template override that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("cannot read a template override: {0}")]
    Read(std::io::Error),
    #[error("template {0} is invalid: {1}")]
    Template(&'static str, Error),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect()
    }

    /// Every text of a catalog as (path, text), lists by index.
    fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    flatten(&format!("{prefix}{k}."), v, out);
                }
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    flatten(&format!("{prefix}{i}."), v, out);
                }
            }
            toml::Value::String(s) => {
                out.insert(prefix.trim_end_matches('.').to_owned(), s.clone());
            }
            other => panic!("{prefix}: not a text: {other}"),
        }
    }

    fn texts(locale: Locale) -> BTreeMap<String, String> {
        let value: toml::Value = toml::from_str(source(locale)).unwrap();
        let mut out = BTreeMap::new();
        flatten("", &value, &mut out);
        out
    }

    #[test]
    fn every_language_has_exactly_the_english_keys_and_placeholders() {
        let english = texts(Locale::En);
        for locale in Locale::ALL {
            let _ = catalog(locale);
            let other = texts(locale);
            assert_eq!(
                english.keys().collect::<Vec<_>>(),
                other.keys().collect::<Vec<_>>(),
                "{} has other keys than en",
                locale.tag()
            );
            for (key, text) in &other {
                // A `_one` form may leave the count out, but may use only what `_other` has.
                let mut known = placeholders(&english[key]);
                if let Some(base) = key.strip_suffix("_one") {
                    if let Some(o) = english.get(&format!("{base}_other")) {
                        known.extend(placeholders(o));
                    }
                }
                let used = placeholders(text);
                assert!(
                    used.is_subset(&known),
                    "{}: {key} uses {used:?}, en has {known:?}",
                    locale.tag()
                );
                // Anything but a `_one` form says everything the English text says.
                if !key.ends_with("_one") {
                    assert_eq!(
                        used,
                        placeholders(&english[key]),
                        "{}: {key} leaves out a placeholder",
                        locale.tag()
                    );
                }
                assert!(
                    fill(text, |_| Some(String::new())).is_ok(),
                    "{}: {key}",
                    locale.tag()
                );
            }
        }
    }

    #[test]
    fn plural_forms_come_in_pairs() {
        for locale in Locale::ALL {
            let all = texts(locale);
            for key in all.keys() {
                if let Some(base) = key.strip_suffix("_one") {
                    assert!(
                        all.contains_key(&format!("{base}_other")),
                        "{}: {key} without {base}_other",
                        locale.tag()
                    );
                }
            }
        }
        let c = catalog(Locale::En);
        assert_eq!(c.rule_count("day", 1), "1 day");
        assert_eq!(c.rule_count("day", 2), "2 days");
        assert_eq!(catalog(Locale::Nl).rule_count("hour", 3), "3 uur");
        assert_eq!(catalog(Locale::De).rule_count("day", 1), "1 Tag");
        // German's interval stands in the dative ("vor weniger als 2 Tagen").
        assert_eq!(catalog(Locale::De).rule_count("day", 2), "2 Tagen");
        assert_eq!(catalog(Locale::Fr).rule_count("minute", 2), "2 minutes");
        // French takes the singular for zero too.
        assert_eq!(catalog(Locale::Fr).rule_count("minute", 0), "0 minute");
        assert_eq!(catalog(Locale::En).rule_count("minute", 0), "0 minutes");
    }

    #[test]
    fn templates_pick_the_plural_by_the_pages_language() {
        static TEXTS: LazyLock<Texts> = LazyLock::new(|| {
            [("left_one", "{n} essai"), ("left_other", "{n} essais")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        });
        let render = |locale| {
            let mut env = minijinja::Environment::new();
            env.add_template(
                "x",
                "{{ t('left', n=0) }}|{{ t('left', n=1) }}|{{ t('left', n=2) }}",
            )
            .unwrap();
            env.get_template("x")
                .unwrap()
                .render(minijinja::context! {
                    t => Value::from_object(TemplateTexts::new(locale, &TEXTS))
                })
                .unwrap()
        };
        assert_eq!(render(Locale::Fr), "0 essai|1 essai|2 essais");
        assert_eq!(render(Locale::De), "0 essais|1 essai|2 essais");
    }

    #[test]
    fn fill_takes_values_literally_and_refuses_unknown_placeholders() {
        let value = |name: &str| (name == "a").then(|| "{b}".to_owned());
        assert_eq!(fill("x {a} y", value).unwrap(), "x {b} y");
        assert!(fill("x {b}", value).is_err());
        assert!(fill("x {a", value).is_err());
        assert_eq!(fill_with("{a} and {b}", &[("a", "1")]), "1 and {b}");
    }

    #[test]
    fn templates_call_t_with_values_and_counts() {
        static TEXTS: LazyLock<Texts> = LazyLock::new(|| {
            [
                ("hello", "Hello {name}"),
                ("left_one", "1 attempt left"),
                ("left_other", "{n} attempts left"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        });
        let mut env = minijinja::Environment::new();
        env.add_template(
            "x",
            "{{ t.hello }}|{{ t('hello', name='<Jan>') }}|{{ t('left', n=1) }}|{{ t('left', n=3) }}",
        )
        .unwrap();
        let out = env
            .get_template("x")
            .unwrap()
            .render(minijinja::context! { t => Value::from_object(TemplateTexts::new(Locale::En, &TEXTS)) })
            .unwrap();
        assert_eq!(
            out,
            "Hello {name}|Hello <Jan>|1 attempt left|3 attempts left"
        );
        let mut env = minijinja::Environment::new();
        env.add_template("y", "{{ t('hello', nam='x') }}").unwrap();
        let failed = env.get_template("y").unwrap().render(
            minijinja::context! { t => Value::from_object(TemplateTexts::new(Locale::En, &TEXTS)) },
        );
        assert!(failed.is_err(), "a misspelt placeholder fails the render");
    }

    #[test]
    fn an_override_replaces_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        std::fs::write(dir.path().join("mail/code.txt"), "mine").unwrap();
        let overrides = Overrides::new(dir.path()).unwrap();
        assert_eq!(overrides.load("mail/code.txt", "built-in").unwrap(), "mine");
        assert_eq!(overrides.load("code.txt", "built-in").unwrap(), "built-in");
        assert_eq!(
            Overrides::none().load("mail/code.txt", "built-in").unwrap(),
            "built-in"
        );
        assert!(Overrides::new(&dir.path().join("missing")).is_err());
        assert!(Overrides::new(Path::new("")).unwrap().dir.is_none());

        std::fs::write(dir.path().join("broken.html"), "{% if %}").unwrap();
        let mut env = minijinja::Environment::new();
        assert!(matches!(
            overrides.add_templates(&mut env, "", &[("broken.html", "fine")]),
            Err(OverrideError::Template("broken.html", _))
        ));
    }
}
