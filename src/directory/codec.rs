//! The bytes AD wants and the strings it answers with.

use std::borrow::Cow;

use ldap3::controls::RawControl;
use ldap3::{SearchEntry, ldap_escape};

use crate::domain::ObjectGuid;
use crate::domain::directory::{DirectoryUser, PasswordCheck};

/// The `unicodePwd` value: the password in double quotes, UTF-16LE (MS-ADTS 3.1.1.3.1.5). Characters
/// outside the BMP become surrogate pairs, which AD accepts.
pub fn unicode_pwd_value(password: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((password.len() + 2) * 2);
    for unit in std::iter::once('"')
        .chain(password.chars())
        .chain(std::iter::once('"'))
        .flat_map(|c| {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf).to_vec()
        })
    {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// LDAP_SERVER_POLICY_HINTS_OID, and the OID Windows Server 2008 R2 used for it before.
pub const POLICY_HINTS_OIDS: [&str; 2] = ["1.2.840.113556.1.4.2239", "1.2.840.113556.1.4.2066"];

/// The policy hints OID a DC supports, from its rootDSE `supportedControl`; the current one first.
pub fn supported_policy_hints(supported_controls: &[String]) -> Option<&'static str> {
    POLICY_HINTS_OIDS
        .into_iter()
        .find(|oid| supported_controls.iter().any(|c| c == oid))
}

/// The policy hints control with flag 1: apply password history and minimum age to an
/// administrative reset. The value is BER `SEQUENCE { INTEGER 1 }`. It is only sent to DCs that
/// list it, and then critical, so the policy is never skipped silently.
pub fn policy_hints_control(oid: &str) -> RawControl {
    RawControl {
        ctype: oid.to_owned(),
        crit: true,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
    }
}

/// Attributes read for every user; later features read from the same list.
pub const USER_ATTRIBUTES: &[&str] = &[
    "objectGUID",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "mail",
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "lockoutTime",
    "pwdLastSet",
    "accountExpires",
    "adminCount",
    "memberOf",
    "msDS-ResultantPSO",
];

/// `(&<user_filter>(|(sAMAccountName=<login>)(userPrincipalName=<login>)))` with the login escaped
/// per RFC 4515, so `*`, `(`, `)`, `\` and NUL match only themselves.
pub fn user_filter(base_filter: &str, login: &str) -> String {
    let login = ldap_escape(login);
    format!("(&{base_filter}(|(sAMAccountName={login})(userPrincipalName={login})))")
}

fn first<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .get(attr)
        .and_then(|v| v.first())
        .map(String::as_str)
}

fn first_int(entry: &SearchEntry, attr: &str) -> i64 {
    first(entry, attr).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Builds a [`DirectoryUser`] from a search entry; `None` if it lacks what every user has.
pub fn directory_user(entry: &SearchEntry) -> Option<DirectoryUser> {
    // ldap3 files a value under `attrs` when its bytes happen to be valid UTF-8, which a GUID's
    // sometimes are; the bytes are the same either way.
    let guid_bytes = match entry.bin_attrs.get("objectGUID").and_then(|v| v.first()) {
        Some(bytes) => bytes.as_slice(),
        None => first(entry, "objectGUID")?.as_bytes(),
    };
    let guid = ObjectGuid::from_ad_bytes(guid_bytes)?;
    let text = |attr| first(entry, attr).map(str::to_owned);
    // userAccountControl is a signed 32-bit integer in the schema; keep its bits.
    let bits = |attr| first_int(entry, attr) as u32;
    Some(DirectoryUser {
        guid,
        dn: entry.dn.clone(),
        sam_account_name: text("sAMAccountName")?,
        user_principal_name: text("userPrincipalName"),
        display_name: text("displayName"),
        mail: text("mail"),
        user_account_control: bits("userAccountControl"),
        computed_account_control: bits("msDS-User-Account-Control-Computed"),
        lockout_time: first_int(entry, "lockoutTime"),
        pwd_last_set: first_int(entry, "pwdLastSet"),
        account_expires: first_int(entry, "accountExpires"),
        admin_count: first_int(entry, "adminCount") == 1,
        member_of: entry.attrs.get("memberOf").cloned().unwrap_or_default(),
        resultant_pso: text("msDS-ResultantPSO"),
    })
}

/// The hex code AD puts in a diagnostic message: `... AcceptSecurityContext error, data 52e, v4563`
/// for binds, or a leading `0000052D:` for other operations.
pub fn bind_data_code(message: &str) -> Option<u32> {
    let after = message.split("data ").nth(1)?;
    let hex: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
    u32::from_str_radix(&hex, 16).ok()
}

pub fn leading_code(message: &str) -> Option<u32> {
    let hex = message.trim_start().get(..8)?;
    u32::from_str_radix(hex, 16).ok()
}

/// Maps the data code of a failed user bind (result 49) to what it means.
pub fn password_check(data_code: Option<u32>) -> PasswordCheck {
    match data_code {
        Some(0x773) => PasswordCheck::MustChange,
        Some(0x532) => PasswordCheck::Expired,
        Some(0x533) => PasswordCheck::Disabled,
        Some(0x701) => PasswordCheck::AccountExpired,
        Some(0x775) => PasswordCheck::Locked,
        Some(0x530 | 0x531) => PasswordCheck::Restricted,
        // 52e, 525 (no such user) and anything unknown: treat as a wrong password.
        _ => PasswordCheck::Wrong,
    }
}

/// The DC's reason for a policy rejection without the leading error code, e.g. `check_password_restrictions:
/// the password is too short. It should be equal or longer than 7 characters!`.
pub fn readable_reason(message: &str) -> Cow<'_, str> {
    let trimmed = message.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    match trimmed.split_once(": ") {
        Some((code, rest)) if leading_code(code).is_some() => Cow::Owned(
            rest.trim_start_matches("Constraint violation - ")
                .to_owned(),
        ),
        _ => Cow::Borrowed(trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(
            unicode_pwd_value("ab"),
            vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]
        );
    }

    #[test]
    fn unicode_pwd_encodes_non_bmp_as_surrogate_pair() {
        // U+1F600 = D83D DE00
        let v = unicode_pwd_value("😀");
        assert_eq!(v, vec![b'"', 0, 0x3d, 0xd8, 0x00, 0xde, b'"', 0]);
        let v = unicode_pwd_value("ä");
        assert_eq!(v, vec![b'"', 0, 0xe4, 0x00, b'"', 0]);
    }

    #[test]
    fn policy_hints_prefer_the_current_oid() {
        let both = vec![
            "1.2.840.113556.1.4.2066".to_owned(),
            "1.2.840.113556.1.4.2239".to_owned(),
        ];
        assert_eq!(
            supported_policy_hints(&both),
            Some("1.2.840.113556.1.4.2239")
        );
        assert_eq!(
            supported_policy_hints(&both[..1]),
            Some("1.2.840.113556.1.4.2066")
        );
        assert_eq!(supported_policy_hints(&["1.2.3".to_owned()]), None);
    }

    #[test]
    fn filter_escapes_injection() {
        let f = user_filter("(objectClass=user)", "a*)(cn=*");
        assert_eq!(
            f,
            "(&(objectClass=user)(|(sAMAccountName=a\\2a\\29\\28cn=\\2a)(userPrincipalName=a\\2a\\29\\28cn=\\2a)))"
        );
        assert!(user_filter("(x=y)", "\\").contains("=\\5c)"));
        assert!(user_filter("(x=y)", "\0").contains("=\\00)"));
    }

    #[test]
    fn data_codes_are_parsed() {
        let msg = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563\0";
        assert_eq!(bind_data_code(msg), Some(0x773));
        assert_eq!(
            password_check(bind_data_code(msg)),
            PasswordCheck::MustChange
        );
        assert_eq!(password_check(Some(0x52e)), PasswordCheck::Wrong);
        assert_eq!(password_check(None), PasswordCheck::Wrong);
        assert_eq!(leading_code("0000052D: Constraint violation"), Some(0x52d));
        assert_eq!(leading_code("short"), None);
    }

    #[test]
    fn policy_reason_drops_the_code() {
        assert_eq!(
            readable_reason(
                "0000052D: Constraint violation - check_password_restrictions: the password is too short.\0"
            ),
            "check_password_restrictions: the password is too short."
        );
        assert_eq!(readable_reason("plain text"), "plain text");
    }
}
