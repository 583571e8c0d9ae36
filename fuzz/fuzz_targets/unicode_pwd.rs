//! The `unicodePwd` value (MS-ADTS 3.1.1.3.1.5): for any password, the bytes are the UTF-16LE of
//! `"` + password + `"` (checked against the standard library's encoder), so their length is
//! even, they start and end with a quote, and they decode back to exactly the password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sspr_bridge::directory::codec::unicode_pwd_value;

fuzz_target!(|password: &str| {
    let bytes = unicode_pwd_value(password);
    assert_eq!(bytes.len() % 2, 0, "odd length for {password:?}");
    let reference: Vec<u8> = format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(bytes, reference, "{password:?}");
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    assert_eq!(units.first(), Some(&u16::from(b'"')));
    assert_eq!(units.last(), Some(&u16::from(b'"')));
    assert!(units.len() >= 2);
    let decoded = String::from_utf16(&units[1..units.len() - 1])
        .unwrap_or_else(|e| panic!("{password:?} does not decode: {e}"));
    assert_eq!(decoded, password);
});
