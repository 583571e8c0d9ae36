//! The operator commands other than `serve`: each takes the validated configuration and builds
//! only what it needs.

pub mod audit_export;
pub mod check;
pub mod registration_codes;
pub mod reminders;
