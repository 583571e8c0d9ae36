//! One-time registration codes. A caller who lost every method cannot step up to register new
//! ones; after verifying them, the helpdesk (or `sspr-bridge registration-code USER`, to bootstrap
//! the first operators) issues a code that stands in for the step-up once. Like Entra's Temporary
//! Access Pass, it is shown once, expires (`registration.code_lifetime`), is single use and is
//! stored only as a keyed hash; issuing a new one replaces the old.

use zeroize::Zeroizing;

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Outcome};
use super::deps::{Client, Deps};
use super::directory::DirectoryUser;
use super::error::FlowError;
use super::store::{CodePurpose, PendingCode};

const PURPOSE: CodePurpose = CodePurpose::RegistrationCode;

/// Letters and digits that cannot be mistaken for one another when read out on the phone.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 16 characters of 31: ~79 bits, so a code that lives for hours is not worth guessing even
/// without the attempt limits a step-up already has.
const LENGTH: usize = 16;

/// A new code, in groups of four for reading aloud (`ABCD-EFGH-JKMN-PQRS`).
fn new_code() -> Zeroizing<String> {
    use rand::seq::IndexedRandom;
    let mut rng = rand::rng();
    let mut code = String::with_capacity(LENGTH + LENGTH / 4);
    for i in 0..LENGTH {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(*ALPHABET.choose(&mut rng).expect("non-empty")));
    }
    Zeroizing::new(code)
}

/// A code as typed, in the form it is hashed in: separators and spaces removed, upper case;
/// `None` unless it has the length and alphabet of a registration code.
fn normalise(typed: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn subject(user: &ObjectGuid) -> Vec<u8> {
    user.0.as_bytes().to_vec()
}

/// Issues a code for `user`, replacing any earlier one, and audits it with `actor` (an operator,
/// or the command line). The code is returned to be shown once; only its keyed hash is stored.
pub async fn issue(
    d: &Deps,
    user: &DirectoryUser,
    actor: &str,
    client: &Client,
) -> Result<Zeroizing<String>, FlowError> {
    let code = new_code();
    let normalised = normalise(&code).expect("a new code is well formed");
    let subject = subject(&user.guid);
    let now = d.now();
    d.codes
        .put_code(&PendingCode {
            purpose: PURPOSE,
            code_hash: d.keys.code_hash(PURPOSE.as_str(), &subject, &normalised),
            subject,
            address: String::new(),
            created_at: now,
            expires_at: now + d.settings.registration.code_lifetime,
        })
        .await?;
    d.audit
        .as_actor(
            client,
            Some(actor),
            Audit {
                event: AuditKind::RegistrationCodeIssued,
                outcome: Outcome::Success,
                user: Some(user.guid),
                sam_account_name: Some(&user.sam_account_name),
                method: None,
                reason: None,
            },
        )
        .await?;
    Ok(code)
}

/// Spends `typed` if it is the user's current, unexpired code. True only for the one caller that
/// spent it (single use under races). A wrong code is the caller's to count and audit, as for any
/// other method.
pub async fn redeem(d: &Deps, user: &ObjectGuid, typed: &str) -> Result<bool, FlowError> {
    let subject = subject(user);
    // Read whatever was typed, so a malformed code costs the same look-up as a wrong one.
    let stored = d.codes.code(PURPOSE, &subject).await?;
    let (Some(stored), Some(typed)) = (stored, normalise(typed)) else {
        return Ok(false);
    };
    let matches = stored.expires_at > d.now()
        && d.keys
            .code_matches(PURPOSE.as_str(), &subject, &typed, &stored.code_hash);
    if !matches {
        return Ok(false);
    }
    Ok(d.codes
        .take_code(PURPOSE, &subject, &stored.code_hash)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_readable_and_read_back_in_any_case() {
        let code = new_code();
        assert_eq!(code.len(), LENGTH + 3);
        assert_eq!(code.matches('-').count(), 3);
        let normalised = normalise(&code).unwrap();
        assert_eq!(normalised.len(), LENGTH);
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(normalise(&typed).unwrap(), normalised);
        assert_ne!(*new_code(), *code, "random");
    }

    #[test]
    fn malformed_codes_are_refused() {
        assert!(normalise("").is_none());
        assert!(normalise("ABCD-EFGH-JKMN-PQR").is_none(), "short");
        assert!(
            normalise("ABCD-EFGH-JKMN-PQR0").is_none(),
            "0 is not in the alphabet"
        );
        assert!(normalise("ABCD-EFGH-JKMN-PQRS-T").is_none(), "long");
    }
}
