//! The one integration test binary. It runs against the real components started by `scripts/test`
//! (a Samba AD DC, PostgreSQL, an SMTP server); see `harness.rs` for what it expects.

mod approval;
mod audit;
mod branding;
mod browser;
mod change;
mod cli;
mod client;
mod dcs;
mod directory;
mod faults;
mod harness;
mod helpdesk;
mod helpdesk_lists;
mod helpdesk_pages;
mod history;
mod hooks;
mod hostile;
mod http;
mod https;
mod logins;
mod mail;
mod metrics;
mod multidc;
mod notices;
mod outbox;
mod pages;
mod pages_prg;
mod policy;
mod report;
mod scaleout;
mod scope;
mod selfservice;
mod slow_clients;
mod stepup;
mod store;
