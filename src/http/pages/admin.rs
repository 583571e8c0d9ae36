//! `/admin`: the rollout figures of `sspr-bridge report`, for members of `admin.group_dn` signed in
//! at `/helpdesk` (the operator's session, with its second factor). Only reads: no form posts.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::flash::see_other;
use super::{Reply, Visitor};
use crate::domain::clock::Timestamp;
use crate::domain::error::FlowError;
use crate::domain::report::{Per, Report, Reports};
use crate::http::AppState;

pub const ADMIN: &str = "/admin";

/// The periods the page offers, in days; the first is the default.
const DAYS: [u32; 4] = [30, 7, 90, 365];

pub fn routes() -> Router<AppState> {
    Router::new().route(ADMIN, get(show))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice {
    days: Option<u32>,
    per: String,
}

async fn show(
    State(s): State<AppState>,
    visitor: Visitor,
    Query(choice): Query<Choice>,
) -> Response {
    let Some(session) = visitor.helpdesk.as_deref() else {
        return see_other(super::sections::HELPDESK, []);
    };
    let days = choice.days.filter(|d| DAYS.contains(d)).unwrap_or(DAYS[0]);
    let per = if choice.per == "week" {
        Per::Week
    } else {
        Per::Day
    };
    let since = s.deps.now() - std::time::Duration::from_secs(u64::from(days) * 86_400);
    let made = Reports::new(&s.deps, &s.store)
        .for_admin(session, since, per)
        .await;
    let chosen = |report: Option<Shown>| {
        Reply::new("admin.html").vars(context! {
            days,
            per => per.as_str(),
            days_offered => sorted_days(),
            report,
        })
    };
    let reply = match made {
        Ok(report) => chosen(Some(Shown::from(&report))),
        Err(FlowError::Unauthorized) => return see_other(super::sections::HELPDESK, []),
        Err(FlowError::Forbidden(_)) => {
            chosen(None).problem(StatusCode::FORBIDDEN, "error_admin_forbidden")
        }
        Err(e) => chosen(None).failure(e, "error_directory"),
    };
    s.pages.show(&visitor, reply)
}

fn sorted_days() -> [u32; 4] {
    let mut days = DAYS;
    days.sort_unstable();
    days
}

/// The report as the page shows it: keys of the catalog where one names a thing.
#[derive(Serialize)]
struct Shown {
    since: String,
    users_in_scope: u64,
    registered: u64,
    by_method: Vec<(&'static str, u64)>,
    stale: u64,
    never_registered: u64,
    blocked_now: u64,
    activity: Vec<Row>,
    refusals: Vec<(String, u64)>,
}

#[derive(Serialize)]
struct Row {
    period: String,
    action: &'static str,
    event_key: String,
    method: Option<String>,
    method_key: Option<&'static str>,
    outcome_key: String,
    count: u64,
}

fn date(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.to_system_time()).to_string()[..10].to_owned()
}

impl From<&Report> for Shown {
    fn from(r: &Report) -> Shown {
        Shown {
            since: date(r.since),
            users_in_scope: r.users_in_scope,
            registered: r.registered,
            by_method: r
                .registered_by_method
                .iter()
                .map(|(kind, n)| (method_key(kind.as_str()).unwrap_or("method_totp"), *n))
                .collect(),
            stale: r.stale,
            never_registered: r.never_registered,
            blocked_now: r.blocked_now,
            activity: r
                .activity
                .iter()
                .map(|a| Row {
                    period: date(a.period),
                    action: a.action.as_str(),
                    event_key: format!("event_{}", a.action.as_str()),
                    method_key: a.method.as_deref().and_then(method_key),
                    method: a.method.clone(),
                    outcome_key: format!("outcome_{}", a.outcome.as_str()),
                    count: a.count,
                })
                .collect(),
            refusals: r.refusals.clone(),
        }
    }
}

fn method_key(method: &str) -> Option<&'static str> {
    match method {
        "totp" => Some("method_totp"),
        "email" => Some("method_email"),
        "passkey" => Some("method_passkey"),
        _ => None,
    }
}

/// A report as the page shows it, with every kind of row (or none), for the rendering tests.
#[cfg(test)]
pub fn sample_report(full: bool) -> minijinja::Value {
    use crate::domain::report::{Action, ActivityCount};
    use crate::domain::store::{MethodKind, Outcome};
    let day = Timestamp::from_millis(1_796_601_600_000);
    let activity = Action::ALL
        .into_iter()
        .map(|action| ActivityCount {
            period: day,
            action,
            method: Some("totp".to_owned()),
            outcome: Outcome::Failure,
            count: 3,
        })
        .chain([ActivityCount {
            period: day,
            action: Action::Unlock,
            method: None,
            outcome: Outcome::Unknown,
            count: 1,
        }]);
    let report = Report {
        generated_at: day,
        since: day,
        per: Per::Week,
        users_in_scope: 10,
        registered: 6,
        registered_by_method: vec![(MethodKind::Totp, 4), (MethodKind::Email, 3)],
        stale: 1,
        never_registered: 4,
        activity: if full { activity.collect() } else { Vec::new() },
        refusals: if full {
            vec![("wrong_code".to_owned(), 3)]
        } else {
            Vec::new()
        },
        blocked_now: 1,
    };
    minijinja::Value::from_serialize(Shown::from(&report))
}
