//! `audit.syslog`: the audit log sent on to a syslog server (RFC 5424 messages, the row as JSON
//! in MSG) by a background task that reads the table in id order and keeps its place in the
//! database. A request never waits for it.

mod row;
mod syslog;

pub use row::Row as AuditRow;
pub use syslog::{SyslogForwarder, message};
