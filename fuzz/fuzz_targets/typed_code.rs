//! Codes as people type them. Input layout: 8 bytes of clock (`now`, i64 milliseconds, little
//! endian), a 20-byte TOTP secret, then the typed text (its longest UTF-8 prefix). For any input:
//!
//! - `normalise_code` agrees, for every length, with the rule written out plainly below: ASCII
//!   digits, spaces and dashes only (any Unicode whitespace counts as a space), and then exactly
//!   that many digits;
//! - `typed_step` returns the step of the code among now−1, now, now+1 (the last that matches),
//!   computed here from `code_at`, and `None` for anything else, at any clock, negative included;
//! - `matching_step`, at any `u64` time, only ever returns a step within one of now whose code is
//!   exactly the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::secrets::normalise_code;
use sspr_bridge::domain::totp::{SECRET_LEN, STEP_SECS, code_at, matching_step, typed_step};

fuzz_target!(|data: &[u8]| {
    let Some((clock, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((secret, typed)) = rest.split_first_chunk::<SECRET_LEN>() else {
        return;
    };
    let typed = match std::str::from_utf8(typed) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&typed[..e.valid_up_to()]).expect("valid prefix"),
    };

    for digits in 0..=10 {
        assert_eq!(
            normalise_code(typed, digits),
            reference_code(typed, digits),
            "{typed:?} as {digits} digits"
        );
    }

    let now_ms = i64::from_le_bytes(*clock);
    let now_step = u64::try_from(now_ms / 1000).unwrap_or(0) / STEP_SECS;
    let expected = reference_code(typed, 6).and_then(|code| {
        [now_step.saturating_sub(1), now_step, now_step + 1]
            .into_iter()
            .rev()
            .find(|step| code_at(secret, step * STEP_SECS) == code)
    });
    assert_eq!(
        typed_step(secret, typed, Timestamp::from_millis(now_ms)),
        expected.map(|step| step as i64),
        "{typed:?} at {now_ms} ms"
    );

    let now_secs = u64::from_le_bytes(*clock);
    if let Some(step) = matching_step(secret, typed, now_secs) {
        let step = u64::try_from(step).expect("a step is never negative");
        assert!(
            step.abs_diff(now_secs / STEP_SECS) <= 1,
            "{step} at {now_secs}"
        );
        assert_eq!(code_at(secret, step * STEP_SECS), typed);
    }
});

/// The typing rule, written as a whitelist.
fn reference_code(typed: &str, digits: usize) -> Option<String> {
    let mut code = String::new();
    for c in typed.chars() {
        match c {
            '0'..='9' => code.push(c),
            '-' => {}
            c if c.is_whitespace() => {}
            _ => return None,
        }
    }
    (code.len() == digits).then_some(code)
}
