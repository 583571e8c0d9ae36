//! The rules on the password page: each once, with a key the page's script ticks as the user
//! types, and after a refusal marked kept or broken by the server. Only rules that will really be
//! enforced are listed.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use super::{Locale, Pages};
use crate::domain::policy::{Requirement, Violation};

/// Whether a reset is held to the password history.
#[async_trait]
pub trait HistoryRule: Send + Sync {
    async fn enforced(&self) -> bool;
}

/// AD holds a reset to its history where every DC has policy hints; elsewhere the service keeps
/// one of its own, so a reset is always held to one (to the passwords the service knows of: see
/// [`crate::domain::history`]).
#[async_trait]
impl HistoryRule for crate::domain::history::PasswordHistory {
    async fn enforced(&self) -> bool {
        true
    }
}

/// One rule as the page shows it. `key` names it for the script (`data-rule`) and for the marks
/// after a refusal; `n` is the number the script needs (the minimum length).
#[derive(Serialize)]
pub struct RuleItem {
    pub key: &'static str,
    pub text: String,
    pub n: Option<u32>,
}

impl Pages {
    pub fn with_history_rule(mut self, history: Arc<dyn HistoryRule>) -> Self {
        self.history = Some(history);
        self
    }

    /// The rules to list, in order; history only where AD will enforce it, since a rule that is
    /// listed but not enforced misleads (and no bind may test a password: it raises badPwdCount).
    pub async fn rule_items(&self, locale: Locale, requirements: &[Requirement]) -> Vec<RuleItem> {
        let history = match &self.history {
            Some(h)
                if requirements
                    .iter()
                    .any(|r| matches!(r, Requirement::NotRecent(_))) =>
            {
                h.enforced().await
            }
            _ => false,
        };
        requirements
            .iter()
            .filter(|r| history || !matches!(r, Requirement::NotRecent(_)))
            .map(|r| {
                let (key, n) = rule_key(r);
                let text = self.text(locale, &format!("rule_{}", text_key(r)));
                let text = match n {
                    Some(n) => crate::i18n::fill_with(&text, &[("n", &n.to_string())]),
                    None => text,
                };
                RuleItem { key, text, n }
            })
            .collect()
    }
}

fn rule_key(rule: &Requirement) -> (&'static str, Option<u32>) {
    match rule {
        Requirement::MinLength(n) => ("length", Some(*n)),
        Requirement::NoControlCharacters => ("control", None),
        Requirement::Complexity => ("complexity", None),
        Requirement::NoNames => ("names", None),
        Requirement::NotRecent(n) => ("history", Some(*n)),
        Requirement::NotBanned => ("banned", None),
        Requirement::MinStrength(_) => ("strength", None),
    }
}

/// The catalog text of a rule, after `rule_`.
fn text_key(rule: &Requirement) -> &'static str {
    match rule {
        Requirement::MinLength(_) => "min_length",
        Requirement::NoControlCharacters => "no_control_characters",
        Requirement::Complexity => "complexity",
        Requirement::NoNames => "no_names",
        Requirement::NotRecent(1) => "not_recent_one",
        Requirement::NotRecent(_) => "not_recent_other",
        Requirement::NotBanned => "not_banned",
        Requirement::MinStrength(_) => "strength",
    }
}

/// The listed rule a refusal broke, to mark it on the page (`None`: no listed rule, e.g. too
/// long).
pub fn broken_rule(violation: &Violation) -> Option<&'static str> {
    Some(match violation {
        Violation::TooShort { .. } => "length",
        Violation::ControlCharacters => "control",
        Violation::Complexity => "complexity",
        Violation::ContainsAccountName | Violation::ContainsDisplayName => "names",
        Violation::Banned => "banned",
        Violation::TooWeak { .. } => "strength",
        Violation::HistoryOrMinAge { .. } | Violation::Reused { .. } => "history",
        Violation::TooLong { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);

    #[async_trait]
    impl HistoryRule for Fixed {
        async fn enforced(&self) -> bool {
            self.0
        }
    }

    fn keys(pages: &Pages) -> Vec<&'static str> {
        let rules = [
            Requirement::MinLength(7),
            Requirement::Complexity,
            Requirement::NotRecent(24),
        ];
        futures::executor::block_on(pages.rule_items(Locale::En, &rules))
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    #[test]
    fn history_is_listed_only_where_it_is_enforced() {
        let pages = Pages::new(None, true, false);
        assert_eq!(keys(&pages), ["length", "complexity"]);
        let pages = Pages::new(None, true, false).with_history_rule(Arc::new(Fixed(false)));
        assert_eq!(keys(&pages), ["length", "complexity"]);
        let pages = Pages::new(None, true, false).with_history_rule(Arc::new(Fixed(true)));
        assert_eq!(keys(&pages), ["length", "complexity", "history"]);
    }

    #[test]
    fn every_requirement_reads_well_in_every_language() {
        let pages = Pages::new(None, true, false).with_history_rule(Arc::new(Fixed(true)));
        let all = [
            Requirement::MinLength(7),
            Requirement::Complexity,
            Requirement::NoNames,
            Requirement::NotRecent(1),
            Requirement::NotRecent(24),
            Requirement::NotBanned,
            Requirement::MinStrength(3),
            Requirement::NoControlCharacters,
        ];
        for locale in Locale::ALL {
            let items = futures::executor::block_on(pages.rule_items(locale, &all));
            assert_eq!(items.len(), all.len());
            for item in &items {
                assert!(
                    item.text.ends_with('.') && !item.text.contains('{'),
                    "{}",
                    item.text
                );
            }
            if locale == Locale::Nl {
                assert_eq!(
                    items[4].text,
                    "Gebruik geen van uw laatste 24 wachtwoorden opnieuw."
                );
            }
        }
    }

    #[test]
    fn rule_texts_carry_their_number() {
        let pages = Pages::new(None, true, false);
        let items =
            futures::executor::block_on(pages.rule_items(Locale::En, &[Requirement::MinLength(9)]));
        assert!(items[0].text.contains('9'), "{}", items[0].text);
        assert_eq!(items[0].n, Some(9));
    }
}
