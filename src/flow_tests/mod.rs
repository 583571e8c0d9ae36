//! The flows' rules on the doubles of [`crate::domain::fakes`] and the real store on an
//! in-memory SQLite database: milliseconds each, no Samba. The integration suite (tests/it/)
//! proves the same flows against the real DC, mail and databases. They live above both the
//! domain and the store, which they wire together, so neither imports the other.

mod apps;
mod change;
mod enrollment;
mod harness;
mod helpdesk;
mod history;
mod passkeys;
mod recovery_codes;
mod report;
mod reset;
mod steps;
mod verification;

use secrecy::SecretString;

use harness::Fakes;

use crate::domain::reset::Reset;
use crate::domain::store::MethodKind;

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// A six-digit code that none of the steps the check accepts now (the current one and its two
/// neighbours) produces for `secret`.
fn wrong_totp(f: &Fakes, secret: &[u8]) -> String {
    let now = f.deps.now().as_unix_secs();
    let valid: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| crate::domain::totp::code_at(secret, *t))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// Starts a reset for `login` and verifies it with the authenticator app holding `totp`.
async fn verified_flow(f: &Fakes, login: &str, totp: &[u8]) -> String {
    let reset = Reset::new(&f.deps);
    let started = reset.start(login, &f.client()).await.unwrap();
    let verified = reset
        .verify(
            &started.flow,
            MethodKind::Totp,
            &f.totp_code(totp),
            &f.client(),
        )
        .await
        .unwrap();
    assert_eq!(verified.remaining, 0);
    started.flow
}
