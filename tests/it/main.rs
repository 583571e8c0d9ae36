//! The one integration test binary. It runs against the real components started by `scripts/test`
//! (a Samba AD DC, PostgreSQL, an SMTP server); see `harness.rs` for what it expects.

mod cli;
mod directory;
mod harness;
mod http;
mod store;
