//! `sspr-bridge registration-code USER`: issues a one-time registration code from the command
//! line, so the first helpdesk operators (who must register an authenticator from outside
//! `registration.allowed_networks`, or whose accounts have none yet) can be bootstrapped without
//! the helpdesk. The code is printed once; the audit shows the actor `command-line`.

use std::io::Write;

use crate::config::Config;
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::locale::Locale;
use crate::domain::registration_code;
use crate::wiring::{self, StartError};

/// The audit's actor for what was done from the command line.
pub const ACTOR: &str = "command-line";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("no enabled account {0:?} in the directory")]
    NoSuchUser(String),
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error("cannot write the code: {0}")]
    Write(#[from] std::io::Error),
}

/// Issues a code for `login` (sAMAccountName or UPN), replacing any earlier one, and writes it
/// with its expiry to `out`.
pub async fn run(config: &Config, login: &str, out: &mut dyn Write) -> Result<(), IssueError> {
    let wired = wiring::wire(config).await?;
    let result = issue(&wired.deps, login).await;
    wired.store.close().await;
    let (user, code) = result?;
    writeln!(out, "Registration code for {user}: {}", code.as_str())?;
    writeln!(
        out,
        "It works once, within {}, in place of a step-up at /register.",
        humantime::format_duration(config.registration.code_lifetime)
    )?;
    out.flush()?;
    Ok(())
}

async fn issue(
    d: &crate::domain::deps::Deps,
    login: &str,
) -> Result<(String, zeroize::Zeroizing<String>), IssueError> {
    let login = login.trim();
    let user = d
        .directory
        .find_user(login)
        .await
        .map_err(FlowError::from)?
        .filter(|u| !u.is_disabled())
        .ok_or_else(|| IssueError::NoSuchUser(login.to_owned()))?;
    let client = Client {
        ip: None,
        locale: Locale::En,
    };
    let code = registration_code::issue(d, &user, ACTOR, &client).await?;
    Ok((user.sam_account_name, code))
}
