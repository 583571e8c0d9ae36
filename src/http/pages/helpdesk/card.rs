//! The user card as the helpdesk page shows it: methods, times and recent events.

#[cfg(test)]
use minijinja::Value;
use serde::Serialize;

use crate::domain::helpdesk::{UserCard, VerifiedBy};
#[cfg(test)]
use crate::domain::store::MethodKind;

/// How the page names a verification: by the registered method, when it was one.
pub(super) fn shown_as(v: VerifiedBy) -> &'static str {
    match v {
        VerifiedBy::Registered(method) => method.as_str(),
        other => other.as_str(),
    }
}

/// A point in time as the page shows it: in UTC, to the minute.
#[derive(Serialize)]
struct Moment {
    /// For `<time datetime>`.
    datetime: String,
    text: String,
}

fn moment(unix_ms: i64) -> Option<Moment> {
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
        text: format!("{date} {:02}:{:02} UTC", at.hour(), at.minute()),
    })
}

#[derive(Serialize)]
struct Event {
    at: Option<Moment>,
    event: String,
    outcome: String,
    method: Option<String>,
    actor: Option<String>,
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

impl From<UserCard> for Card {
    fn from(c: UserCard) -> Self {
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
                    at: moment(r.event.at.as_millis()),
                    event: r.event.event.as_str().to_owned(),
                    outcome: r.event.outcome.as_str().to_owned(),
                    method: r.event.method,
                    actor: r.event.actor,
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
    Value::from_serialize(Card::from(card))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_utc_to_the_minute() {
        let at = moment(1_793_491_260_000).unwrap();
        assert_eq!(at.datetime, "2026-11-01T00:01:00Z");
        assert_eq!(at.text, "2026-11-01 00:01 UTC");
    }
}
