//! The shape of an audit row outside the service.

use serde::Serialize;

use crate::domain::store::AuditRecord;

/// One audit row as `sspr-bridge audit` exports it and `audit.syslog` forwards it: times as
/// RFC 3339 UTC, every field a plain string.
#[derive(Serialize)]
pub struct Row<'a> {
    pub id: i64,
    pub time: String,
    pub event: &'a str,
    pub outcome: &'a str,
    pub object_guid: String,
    pub sam_account_name: &'a str,
    pub actor: &'a str,
    pub client_ip: &'a str,
    pub method: &'a str,
    pub reason: &'a str,
    pub login_hash: &'a str,
}

impl<'a> Row<'a> {
    pub fn new(r: &'a AuditRecord) -> Self {
        let e = &r.event;
        let at = e.at.to_system_time();
        Row {
            id: r.id,
            time: humantime::format_rfc3339_millis(at).to_string(),
            event: e.event.as_str(),
            outcome: e.outcome.as_str(),
            object_guid: e.object_guid.map(|g| g.to_string()).unwrap_or_default(),
            sam_account_name: e.sam_account_name.as_deref().unwrap_or(""),
            actor: e.actor.as_deref().unwrap_or(""),
            client_ip: e.client_ip.as_deref().unwrap_or(""),
            method: e.method.as_deref().unwrap_or(""),
            reason: e.reason.as_deref().unwrap_or(""),
            login_hash: e.login_hash.as_deref().unwrap_or(""),
        }
    }
}
