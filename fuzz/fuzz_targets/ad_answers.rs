//! What a DC sends back: binary SIDs (from `tokenGroups`) and diagnostic messages. The input is
//! used both as a SID and as a message (its UTF-8, lossily). For any input:
//!
//! - `sid_string` answers exactly for well-formed SIDs (revision 1, at most 15 sub-authorities,
//!   8 + 4n bytes), and its string parses back, by the reader below, to the same bytes, with the
//!   authority in decimal below 2^32 and in 12 hex digits above (MS-DTYP 2.4.2.1);
//! - `bind_data_code` is the hex number right after the first `data ` (cut at a further
//!   `data `), leading zeros aside, if it fits 32 bits;
//! - `leading_code` is the leading 8 hex digits, and nothing else;
//! - `readable_reason` only ever cuts text away.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sspr_bridge::directory::codec::{
    bind_data_code, leading_code, password_check, readable_reason, sid_string,
};
use sspr_bridge::domain::protection::is_privileged_sid;

fuzz_target!(|data: &[u8]| {
    let well_formed = data.len() >= 8
        && data[0] == 1
        && data[1] <= 15
        && data.len() == 8 + 4 * usize::from(data[1]);
    match sid_string(data) {
        Some(sid) => {
            assert!(well_formed, "{data:?} read as {sid}");
            assert_eq!(sid_bytes(&sid).as_deref(), Some(data), "{sid}");
            let _ = is_privileged_sid(&sid);
        }
        None => assert!(!well_formed, "{data:?} refused"),
    }

    let message = String::from_utf8_lossy(data);
    let _ = is_privileged_sid(&message);
    let code = bind_data_code(&message);
    assert_eq!(code, reference_data_code(&message), "{message:?}");
    let _ = password_check(code);

    let leading = leading_code(&message);
    let trimmed = message.trim_start();
    let expected = trimmed
        .get(..8)
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|hex| u32::from_str_radix(hex, 16).expect("8 hex digits fit"));
    assert_eq!(leading, expected, "{message:?}");

    let reason = readable_reason(&message);
    assert!(
        message.contains(reason.as_ref()),
        "{message:?} -> {reason:?}"
    );
});

/// The bytes of a SID in string form, if it is one in the canonical form `sid_string` writes.
fn sid_bytes(sid: &str) -> Option<Vec<u8>> {
    let mut parts = sid.strip_prefix("S-1-")?.split('-');
    let authority_text = parts.next()?;
    let authority = match authority_text.strip_prefix("0x") {
        Some(hex) if hex.len() == 12 && !hex.bytes().any(|b| b.is_ascii_lowercase()) => {
            u64::from_str_radix(hex, 16).ok().filter(|a| a >> 32 != 0)?
        }
        Some(_) => return None,
        None => authority_text.parse::<u32>().ok().map(u64::from)?,
    };
    if authority.to_string() != authority_text && authority >> 32 == 0 {
        return None; // leading zeros or a sign
    }
    let subs: Vec<u32> = parts
        .map(|p| p.parse::<u32>().ok().filter(|v| v.to_string() == p))
        .collect::<Option<_>>()?;
    let mut bytes = vec![1, u8::try_from(subs.len()).ok()?];
    bytes.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in subs {
        bytes.extend_from_slice(&sub.to_le_bytes());
    }
    Some(bytes)
}

/// The hex digits after the first `data `, leading zeros aside, as long as they fit 32 bits.
fn reference_data_code(message: &str) -> Option<u32> {
    let start = message.find("data ")? + "data ".len();
    let after = &message[start..];
    let after = &after[..after.find("data ").unwrap_or(after.len())];
    let digits: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
    let significant = digits.trim_start_matches('0');
    if digits.is_empty() || significant.len() > 8 {
        return None;
    }
    Some(
        significant
            .chars()
            .fold(0, |n, c| n * 16 + c.to_digit(16).expect("hex digit")),
    )
}
