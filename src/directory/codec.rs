//! The bytes AD wants and the strings it answers with.

use std::borrow::Cow;

use ldap3::controls::RawControl;
use ldap3::{SearchEntry, ldap_escape};

use crate::domain::ObjectGuid;
use crate::domain::directory::{DirectoryUser, PasswordCheck};
use crate::domain::policy::{DOMAIN_PASSWORD_COMPLEX, PasswordPolicy, ad_interval};

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

/// `(&<user_filter>(|(sAMAccountName=<id>)(userPrincipalName=<id>)))`, with `(mail=<id>)` in the OR
/// when `or_mail`. The id is escaped per RFC 4515, so `*`, `(`, `)`, `\` and NUL match only
/// themselves.
pub fn user_filter(base_filter: &str, id: &str, or_mail: bool) -> String {
    let id = ldap_escape(id);
    let mail = if or_mail {
        format!("(mail={id})")
    } else {
        String::new()
    };
    format!("(&{base_filter}(|(sAMAccountName={id})(userPrincipalName={id}){mail}))")
}

/// LDAP_MATCHING_RULE_IN_CHAIN on `memberOf`: matches an object that is in the group directly or
/// through any depth of nesting (MS-ADTS 3.1.1.3.4.4.3). The DN is a filter value, so it is
/// escaped per RFC 4515; its own DN escapes (`\,`) become `\5c,` and reach the DC intact.
pub fn member_of_filter(group_dn: &str) -> String {
    format!(
        "(memberOf:1.2.840.113556.1.4.1941:={})",
        ldap_escape(group_dn)
    )
}

/// Every enabled account matching `base_filter`, and, when given, in `group_dn` directly or
/// through nested groups: what the batch commands read. Bit 2 of userAccountControl is
/// ACCOUNTDISABLE, tested with LDAP_MATCHING_RULE_BIT_AND (1.2.840.113556.1.4.803).
pub fn enabled_users_filter(base_filter: &str, group_dn: Option<&str>) -> String {
    let member_of = group_dn.map(member_of_filter).unwrap_or_default();
    format!("(&{base_filter}(!(userAccountControl:1.2.840.113556.1.4.803:=2)){member_of})")
}

/// The values of an attribute as bytes. ldap3 files an attribute under `attrs` when every value
/// happens to be valid UTF-8 (a GUID or SID sometimes is) and under `bin_attrs` otherwise; the
/// bytes are the same either way.
pub fn binary_values<'e>(entry: &'e SearchEntry, attr: &str) -> Vec<&'e [u8]> {
    match entry.bin_attrs.get(attr) {
        Some(values) => values.iter().map(Vec::as_slice).collect(),
        None => entry
            .attrs
            .get(attr)
            .map(|values| values.iter().map(String::as_bytes).collect())
            .unwrap_or_default(),
    }
}

/// The string form (`S-1-5-21-…`) of a binary SID (MS-DTYP 2.4.2.2): revision 1, the number of
/// sub-authorities (at most 15), a 48-bit big-endian identifier authority, then that many
/// little-endian 32-bit sub-authorities. `None` for anything else.
pub fn sid_string(bytes: &[u8]) -> Option<String> {
    let (&[revision, count], rest) = bytes.split_first_chunk::<2>()?;
    let (authority, sub_authorities) = rest.split_first_chunk::<6>()?;
    if revision != 1 || count > 15 || sub_authorities.len() != usize::from(count) * 4 {
        return None;
    }
    let mut be = [0u8; 8];
    be[2..].copy_from_slice(authority);
    let authority = u64::from_be_bytes(be);
    // MS-DTYP 2.4.2.1: authorities that do not fit 32 bits are written in hex.
    let authority = if authority >> 32 == 0 {
        authority.to_string()
    } else {
        format!("0x{authority:012X}")
    };
    let sub_authorities: String = sub_authorities
        .chunks_exact(4)
        .map(|le| format!("-{}", u32::from_le_bytes([le[0], le[1], le[2], le[3]])))
        .collect();
    Some(format!("S-{revision}-{authority}{sub_authorities}"))
}

pub fn first<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .get(attr)
        .and_then(|v| v.first())
        .map(String::as_str)
}

pub fn first_int(entry: &SearchEntry, attr: &str) -> i64 {
    first(entry, attr).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Builds a [`DirectoryUser`] from a search entry; `None` if it lacks what every user has.
pub fn directory_user(entry: &SearchEntry) -> Option<DirectoryUser> {
    let guid = ObjectGuid::from_ad_bytes(binary_values(entry, "objectGUID").first()?)?;
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

/// When the value `value` of the linked attribute `attr` was last set (Unix ms), from the
/// entry's `msDS-ReplValueMetaData`: one XML document per value (MS-ADTS 3.1.1.4.5.21, the
/// `DS_REPL_VALUE_META_DATA` form). `None` when the DC returned none (Samba), or none for that
/// value. A deleted value (`ftimeDeleted` after 1601) does not count.
pub fn value_changed_at_ms(entry: &SearchEntry, attr: &str, value: &str) -> Option<i64> {
    let field = |doc: &str, name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = doc.find(&open)? + open.len();
        let end = doc[start..].find(&format!("</{name}>"))? + start;
        Some(doc[start..end].trim().to_owned())
    };
    let ms = |text: &str| -> Option<i64> {
        let at = humantime::parse_rfc3339(text).ok()?;
        let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    };
    entry
        .attrs
        .iter()
        .filter(|(name, _)| {
            let name = name.split(';').next().unwrap_or(name);
            name.eq_ignore_ascii_case("msDS-ReplValueMetaData")
        })
        .flat_map(|(_, docs)| docs)
        .filter(|doc| {
            field(doc, "pszAttributeName").is_some_and(|a| a.eq_ignore_ascii_case(attr))
                && field(doc, "pszObjectDn").is_some_and(|dn| dn.eq_ignore_ascii_case(value))
                && field(doc, "ftimeDeleted").is_none_or(|t| t.starts_with("1601-"))
        })
        .filter_map(|doc| {
            let changed = field(doc, "ftimeLastOriginatingChange")?;
            ms(&changed)
        })
        .max()
}

/// The password policy attributes of the domain head object (the base of the naming context).
pub const DOMAIN_POLICY_ATTRIBUTES: &[&str] = &[
    "minPwdLength",
    "pwdProperties",
    "pwdHistoryLength",
    "minPwdAge",
    "maxPwdAge",
    "lockoutThreshold",
    "lockoutDuration",
    "lockOutObservationWindow",
];

/// The same settings on a Password Settings Object (msDS-PasswordSettings); all are mandatory
/// there, so a PSO needs nothing from the domain.
pub const PSO_ATTRIBUTES: &[&str] = &[
    "msDS-MinimumPasswordLength",
    "msDS-PasswordComplexityEnabled",
    "msDS-PasswordHistoryLength",
    "msDS-MinimumPasswordAge",
    "msDS-MaximumPasswordAge",
    "msDS-LockoutThreshold",
    "msDS-LockoutDuration",
    "msDS-LockoutObservationWindow",
];

/// Reads a policy from `entry` through the attribute names in the order of
/// [`DOMAIN_POLICY_ATTRIBUTES`]; `None` when the minimum length is missing, which means the
/// entry could not be read (AD leaves out attributes the reader may not see).
fn password_policy(
    entry: &SearchEntry,
    names: &[&str],
    complexity: bool,
    pso: Option<String>,
) -> Option<PasswordPolicy> {
    first(entry, names[0])?;
    let count = |attr| u32::try_from(first_int(entry, attr)).unwrap_or(0);
    Some(PasswordPolicy {
        min_length: count(names[0]),
        complexity,
        history_length: count(names[2]),
        min_age: ad_interval(first_int(entry, names[3]), false).unwrap_or_default(),
        max_age: ad_interval(first_int(entry, names[4]), true),
        lockout_threshold: count(names[5]),
        lockout_duration: ad_interval(first_int(entry, names[6]), false),
        // Absent (unreadable) counts as never forgotten: the cautious reading for the guard
        // that keeps sign-ins from locking accounts.
        lockout_window: ad_interval(first_int(entry, names[7]), true),
        pso,
    })
}

/// The domain's password policy from the domain head object.
pub fn domain_password_policy(entry: &SearchEntry) -> Option<PasswordPolicy> {
    let properties = first_int(entry, "pwdProperties") as u32;
    password_policy(
        entry,
        DOMAIN_POLICY_ATTRIBUTES,
        properties & DOMAIN_PASSWORD_COMPLEX != 0,
        None,
    )
}

/// A fine-grained password policy from its PSO entry.
pub fn pso_password_policy(entry: &SearchEntry) -> Option<PasswordPolicy> {
    let complexity = first(entry, "msDS-PasswordComplexityEnabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
    password_policy(entry, PSO_ATTRIBUTES, complexity, Some(entry.dn.clone()))
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
    // from_str_radix also takes a sign, and "+0000052" is no code (fuzz/corpus/ad_answers).
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
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
mod tests;
