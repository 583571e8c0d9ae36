//! The user card as the helpdesk page shows it: methods, times and recent events.

#[cfg(test)]
use minijinja::Value;
use serde::Serialize;

use std::time::SystemTime;

use crate::domain::helpdesk::{UserCard, VerifiedBy};
use crate::domain::locale::Locale;
#[cfg(test)]
use crate::domain::store::MethodKind;
use crate::domain::store::{AuditKind, Outcome};
use crate::when::Zone;

/// How the page names a verification: by the registered method, when it was one.
pub(super) fn shown_as(v: VerifiedBy) -> &'static str {
    match v {
        VerifiedBy::Registered(method) => method.as_str(),
        other => other.as_str(),
    }
}

/// A point in time as the page shows it: in `ui.timezone`, to the minute, in the reader's words.
#[derive(Serialize)]
pub(super) struct Moment {
    /// For `<time datetime>`, in UTC.
    datetime: String,
    text: String,
}

pub(super) fn moment(unix_ms: i64, locale: Locale, zone: &Zone) -> Option<Moment> {
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    let date = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    Some(Moment {
        datetime: format!(
            "{date}T{:02}:{:02}:{:02}Z",
            at.hour(),
            at.minute(),
            at.second()
        ),
        text: zone.in_words(locale, SystemTime::from(at))?,
    })
}

/// A row of the audit log as the card shows it: the event, outcome and method by the catalog's
/// name for them (`event_…`, `outcome_…`, `method_…`), so no page shows a raw code.
#[derive(Serialize)]
struct Event {
    at: Option<Moment>,
    event_key: String,
    outcome_key: String,
    method: Option<String>,
    method_key: Option<&'static str>,
    actor: Option<String>,
}

impl Event {
    fn new(at: Option<Moment>, event: AuditKind, outcome: Outcome, method: Option<String>) -> Self {
        Event {
            at,
            event_key: format!("event_{}", event.as_str()),
            outcome_key: format!("outcome_{}", outcome.as_str()),
            method_key: match method.as_deref() {
                Some("totp") => Some("method_totp"),
                Some("email") => Some("method_email"),
                _ => None,
            },
            method,
            actor: None,
        }
    }
}

/// The user card as the page shows it.
#[derive(Serialize)]
pub(super) struct Card {
    sam_account_name: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    enabled: bool,
    locked: bool,
    locked_since: Option<Moment>,
    must_change_password: bool,
    password_last_set: Option<Moment>,
    totp: bool,
    email: Option<String>,
    ad_mail: Option<String>,
    registered_at: Option<Moment>,
    actionable: bool,
    blocked_until: Option<Moment>,
    events: Vec<Event>,
}

impl Card {
    /// `c` for a reader of `locale`, its times told in `zone`.
    pub(super) fn new(c: UserCard, locale: Locale, zone: &Zone) -> Self {
        let moment = |ms: i64| moment(ms, locale, zone);
        Card {
            sam_account_name: c.sam_account_name,
            user_principal_name: c.user_principal_name,
            display_name: c.display_name,
            enabled: c.enabled,
            locked: c.locked,
            locked_since: c.locked_since_ms.and_then(moment),
            must_change_password: c.must_change_password,
            password_last_set: c.password_last_set_ms.and_then(moment),
            totp: c.totp,
            email: c.email,
            ad_mail: c.ad_mail,
            registered_at: c.registered_at_ms.and_then(moment),
            actionable: c.actionable,
            blocked_until: c.blocked_until_ms.and_then(moment),
            events: c
                .recent_events
                .into_iter()
                .map(|r| Event {
                    actor: r.event.actor,
                    ..Event::new(
                        moment(r.event.at.as_millis()),
                        r.event.event,
                        r.event.outcome,
                        r.event.method,
                    )
                })
                .collect(),
        }
    }
}

/// A card for the template unit test in `mod.rs`.
#[cfg(test)]
pub fn sample_card(flag: bool) -> Value {
    use crate::domain::store::{AuditEvent, AuditKind, AuditRecord, Outcome};
    let card = UserCard {
        sam_account_name: "jdoe".into(),
        user_principal_name: flag.then(|| "jdoe@example.test".into()),
        display_name: flag.then(|| "Jane Doe".into()),
        enabled: flag,
        locked: flag,
        locked_since_ms: flag.then_some(1_793_491_200_000),
        must_change_password: flag,
        password_last_set_ms: flag.then_some(1_793_491_200_000),
        totp: flag,
        email: flag.then(|| "j***@example.test".into()),
        registered_at_ms: flag.then_some(1_793_491_200_000),
        actionable: flag,
        ad_mail: flag.then(|| "j***@example.test".into()),
        verified_by: flag.then_some(VerifiedBy::Registered(MethodKind::Totp)),
        blocked_until_ms: flag.then_some(1_793_491_200_000),
        recent_events: (0..usize::from(flag))
            .map(|id| AuditRecord {
                id: i64::try_from(id).unwrap_or_default(),
                event: AuditEvent {
                    at: crate::domain::clock::Timestamp::from_millis(1_793_491_200_000),
                    event: AuditKind::HelpdeskReset,
                    outcome: Outcome::Success,
                    object_guid: None,
                    sam_account_name: Some("jdoe".into()),
                    actor: Some("op".into()),
                    client_ip: None,
                    method: None,
                    reason: None,
                    login_hash: None,
                },
            })
            .collect(),
    };
    Value::from_serialize(Card::new(card, Locale::En, &Zone::utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_and_outcome_has_a_name_in_every_language() {
        for locale in crate::domain::locale::Locale::ALL {
            let texts = &crate::i18n::catalog(locale).page;
            for kind in AuditKind::ALL {
                let key = Event::new(None, kind, Outcome::Success, None).event_key;
                assert!(texts.get(&key).is_some(), "{locale:?} {key}");
            }
            for outcome in Outcome::ALL {
                let key = Event::new(None, AuditKind::Unlock, outcome, None).outcome_key;
                assert!(texts.get(&key).is_some(), "{locale:?} {key}");
            }
            let e = Event::new(
                None,
                AuditKind::Verification,
                Outcome::Failure,
                Some("totp".into()),
            );
            assert!(texts.get(e.method_key.unwrap()).is_some());
        }
    }

    #[test]
    fn moments_are_told_in_the_zone_and_language_and_machine_read_in_utc() {
        let amsterdam = Zone::named("Europe/Amsterdam").unwrap();
        let at = moment(1_793_491_260_000, Locale::Nl, &amsterdam).unwrap();
        assert_eq!(at.datetime, "2026-11-01T00:01:00Z");
        assert_eq!(at.text, "1 november 2026 om 01:01 CET");
        let at = moment(1_793_491_260_000, Locale::En, &Zone::utc()).unwrap();
        assert_eq!(at.text, "00:01 UTC on 1 November 2026");
    }
}
