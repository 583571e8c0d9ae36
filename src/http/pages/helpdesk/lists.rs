//! `/helpdesk/lists`: the accounts locked out, whose password expires soon or must be changed.
//! Each row opens the caller's card, where the operator verifies the caller before acting.

use axum::extract::State;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

use super::card::{Moment, moment};
use super::{Visitor, page, refused};
use crate::domain::helpdesk::{Helpdesk, Listed};
use crate::http::AppState;
use crate::http::pages::Locale;
use crate::when::Zone;

#[derive(Serialize)]
struct Row {
    sam_account_name: String,
    name: String,
    at: Option<Moment>,
}

/// `list` for a reader of `locale`, its times told in `zone`.
fn rows(list: &[Listed], locale: Locale, zone: &Zone) -> Vec<Row> {
    list.iter()
        .map(|l| Row {
            sam_account_name: l.sam_account_name.clone(),
            name: l
                .display_name
                .clone()
                .unwrap_or_else(|| l.sam_account_name.clone()),
            at: l.at.and_then(|at| moment(at.as_millis(), locale, zone)),
        })
        .collect()
}

pub(super) async fn lists(State(s): State<AppState>, visitor: Visitor) -> Response {
    let Some(token) = visitor.helpdesk.as_deref() else {
        return super::see_other(super::HERE, []);
    };
    let lists = match Helpdesk::new(&s.deps).account_lists(token).await {
        Ok(lists) => lists,
        Err(e) => return refused(&s, &visitor, e, ""),
    };
    let zone = s.pages.zone();
    let days = lists.expiring_within.as_secs().div_ceil(86_400);
    let reply = page("helpdesk_lists.html").vars(context! {
        locked => rows(&lists.locked, visitor.locale, zone),
        expiring => rows(&lists.expiring, visitor.locale, zone),
        must_change => rows(&lists.must_change, visitor.locale, zone),
        days,
        truncated => lists.truncated,
    });
    s.pages.show(&visitor, reply)
}
