//! Command hooks: a program run with the event as JSON on standard input, no shell, cut off after
//! `hooks.timeout`. Not retried: a command given the password must not be run again from
//! anything stored.

use std::process::Stdio;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::domain::hooks::HookEvent;

/// The event as the command reads it: with `"password"` only when given one.
fn input(event: &HookEvent, password: Option<&SecretString>) -> Zeroizing<Vec<u8>> {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let (Some(password), Some(object)) = (password, value.as_object_mut()) {
        object.insert(
            "password".to_owned(),
            serde_json::Value::String(password.expose_secret().to_owned()),
        );
    }
    let mut bytes = Zeroizing::new(serde_json::to_vec(&value).unwrap_or_default());
    bytes.push(b'\n');
    // The Value's copy of the password is dropped unzeroed; serde_json offers no way around it.
    bytes
}

pub(super) async fn run(
    argv: Vec<String>,
    event: HookEvent,
    password: Option<SecretString>,
    timeout: Duration,
) {
    let hook = event.action.hook_name();
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let stdin = input(&event, password.as_ref());
    drop(password);
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        // Neither output is read or logged: a command may echo what it was given.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(hook, program, error = %e, "hook command did not start");
            return;
        }
    };
    let finished = tokio::time::timeout(timeout, async {
        if let Some(mut pipe) = child.stdin.take() {
            // A command that does not read its input is not an error.
            let _ = pipe.write_all(&stdin).await;
        }
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => {
            tracing::info!(hook, program, event = event.id, "hook command ran");
        }
        Ok(Ok(status)) => {
            tracing::error!(hook, program, event = event.id, %status, "hook command failed");
        }
        Ok(Err(e)) => tracing::error!(hook, program, error = %e, "hook command not awaited"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::error!(
                hook,
                program,
                event = event.id,
                ?timeout,
                "hook command cut off after hooks.timeout"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hooks::{Actor, HookAccount, HookAction};

    fn event() -> HookEvent {
        HookEvent {
            id: "e1".to_owned(),
            action: HookAction::Reset,
            account: HookAccount::known(crate::domain::ObjectGuid(uuid::Uuid::nil()), "jdoe"),
            actor: Actor::Owner,
            time: "2026-11-01T00:00:00.000Z".to_owned(),
            flow_id: None,
        }
    }

    #[test]
    fn the_password_is_in_the_input_only_when_given() {
        let without: serde_json::Value = serde_json::from_slice(&input(&event(), None)).unwrap();
        assert!(without.get("password").is_none());
        assert_eq!(without["account"]["sam_account_name"], "jdoe");
        let password = SecretString::from("Given-Only-Here-1".to_owned());
        let with: serde_json::Value =
            serde_json::from_slice(&input(&event(), Some(&password))).unwrap();
        assert_eq!(with["password"], "Given-Only-Here-1");
    }
}
