//! sspr-bridge: self-service password reset for on-premises Active Directory.
//!
//! A request flows one way: `http` → [`domain`] → ([`directory`] | [`store`]). Nothing below
//! `http` knows about HTTP; only `store` writes SQL; only `directory` speaks LDAP.

pub mod cli;
pub mod config;
pub mod connections;
pub mod directory;
pub mod domain;
pub mod error;
#[cfg(test)]
mod flow_tests;
pub mod forward;
pub mod hooks;
pub mod http;
pub mod i18n;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod server;
pub mod startup;
pub mod store;
pub mod tls;
pub mod when;
pub mod wiring;
