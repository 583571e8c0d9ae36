//! RFC 6238 TOTP: SHA-1, 6 digits, 30-second steps (what every authenticator app does), one
//! step of clock drift either way. The caller gets the matched time step so it can refuse any
//! step at or below the last accepted one: a code is never accepted twice.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::clock::Timestamp;

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// 160 bits, the size RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

pub fn new_secret() -> [u8; SECRET_LEN] {
    rand::random()
}

/// What a user needs to add the secret to an authenticator app.
#[derive(Clone, Debug)]
pub struct Provisioning {
    /// Base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an inline SVG document.
    pub qr_svg: String,
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .expect("a 160-bit secret and a ':'-free issuer/account are valid")
}

pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Provisioning {
    // otpauth labels may not contain ':' (it separates issuer and account).
    let issuer = issuer.replace(':', " ");
    let account = account.replace(':', " ");
    let totp = totp(secret, &issuer, &account);
    let otpauth_uri = totp.get_url();
    let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    Provisioning {
        secret: totp.get_secret_base32(),
        otpauth_uri,
        qr_svg,
    }
}

/// The time step whose code equals `code`, among now−1, now and now+1. Every candidate is
/// compared, in constant time, so timing does not tell which matched.
pub fn matching_step(secret: &[u8], code: &str, now_unix_secs: u64) -> Option<i64> {
    let totp = totp(secret, "x", "x");
    let now_step = now_unix_secs / STEP_SECS;
    let mut matched = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        // Found by fuzzing (fuzz/corpus/typed_code): in the last step of u64 time, step now+1
        // would start past u64::MAX (an overflow panic, or a wrapped time in release builds).
        let Some(start) = step.checked_mul(STEP_SECS) else {
            continue;
        };
        let expected = totp.generate(start);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step as i64);
        }
    }
    matched
}

/// The time step of a code as the user typed it (spaces and dashes allowed), judged at
/// `now`; `None` for anything that is not a current code.
pub fn typed_step(secret: &[u8], typed: &str, now: Timestamp) -> Option<i64> {
    let now_secs = now.as_unix_secs();
    crate::domain::secrets::normalise_code(typed, DIGITS)
        .and_then(|code| matching_step(secret, &code, now_secs))
}

/// The code for a time, for tests and the benchmark (an authenticator app in code).
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    totp(secret, "x", "x").generate(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", truncated to 6 digits.
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_vectors() {
        assert_eq!(code_at(SEED, 59), "287082");
        assert_eq!(code_at(SEED, 1_111_111_109), "081804");
        assert_eq!(code_at(SEED, 2_000_000_000), "279037");
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let now = 1_111_111_109;
        let step = (now / STEP_SECS) as i64;
        let code = code_at(SEED, now);
        assert_eq!(matching_step(SEED, &code, now), Some(step));
        assert_eq!(matching_step(SEED, &code, now + 30), Some(step));
        assert_eq!(matching_step(SEED, &code, now - 30), Some(step));
        assert_eq!(matching_step(SEED, &code, now + 60), None);
        assert_eq!(matching_step(SEED, "000000", now), None);
    }

    #[test]
    fn the_end_of_time_has_no_next_step() {
        // fuzz/corpus/typed_code/crash-overflow-at-u64-max: the clock at u64::MAX seconds.
        let now = u64::MAX;
        let step = (now / STEP_SECS) as i64;
        assert_eq!(matching_step(SEED, &code_at(SEED, now), now), Some(step));
        assert_eq!(matching_step(SEED, "000000", now), None);
        let before = now - STEP_SECS;
        assert_eq!(matching_step(SEED, &code_at(SEED, now), before), Some(step));
    }

    #[test]
    fn provisioning_gives_uri_secret_and_svg() {
        let p = provisioning(SEED, "Example: IT", "alice@example.com");
        assert!(
            p.otpauth_uri.starts_with("otpauth://totp/"),
            "{}",
            p.otpauth_uri
        );
        assert!(p.otpauth_uri.contains(&p.secret));
        assert!(p.qr_svg.contains("<svg"));
        assert_eq!(p.secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
