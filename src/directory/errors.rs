//! Typed errors from LDAP results. AD and Samba put a Win32 error code at the start of the
//! diagnostic message (`0000052D: Constraint violation - …`), which says more than the LDAP rc.

use ldap3::{LdapError, LdapResult};

use super::codec::{leading_code, readable_reason};
use crate::domain::directory::DirectoryError;
use crate::tls::tls_failure;

/// ERROR_PASSWORD_RESTRICTION: the new password broke the domain's policy.
const PASSWORD_RESTRICTION: u32 = 0x52d;
/// ERROR_INVALID_PASSWORD on a change with the old password.
const INVALID_PASSWORD: u32 = 0x56;
/// ERROR_DS_... "will not perform": AD's answer to a password write on an unencrypted connection.
const WILL_NOT_PERFORM: u32 = 0x1f;

pub fn from_result(result: &LdapResult) -> DirectoryError {
    let code = leading_code(&result.text);
    let detail = || readable_reason(&result.text).into_owned();
    match (result.rc, code) {
        (_, Some(INVALID_PASSWORD)) => DirectoryError::WrongOldPassword,
        (_, Some(PASSWORD_RESTRICTION)) | (19, None) => {
            DirectoryError::PolicyViolation { detail: detail() }
        }
        (13, _) | (53, Some(WILL_NOT_PERFORM)) => DirectoryError::InsecureChannel,
        (50, _) => DirectoryError::InsufficientRights { detail: detail() },
        (51 | 52, _) => DirectoryError::Unavailable {
            detail: format!(
                "the DC is busy or unavailable (result {}): {}",
                result.rc,
                detail()
            ),
        },
        (rc, _) => DirectoryError::Other {
            rc,
            detail: detail(),
        },
    }
}

pub fn from_ldap(url: &str, error: LdapError) -> DirectoryError {
    match error {
        LdapError::LdapResult { result } => from_result(&result),
        LdapError::Io { source } => match tls_failure(&source) {
            Some(detail) => DirectoryError::Tls {
                url: url.to_owned(),
                detail,
            },
            None => DirectoryError::Unavailable {
                detail: format!("{url}: {source}"),
            },
        },
        LdapError::Rustls { source } => DirectoryError::Tls {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        LdapError::DNSName { source } => DirectoryError::Tls {
            url: url.to_owned(),
            detail: source.to_string(),
        },
        LdapError::Timeout { .. } => DirectoryError::Unavailable {
            detail: format!("{url}: no answer in time"),
        },
        LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::EndOfStream
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. } => DirectoryError::Unavailable {
            detail: format!("{url}: connection lost"),
        },
        other => DirectoryError::Other {
            rc: 0,
            detail: format!("{url}: {other}"),
        },
    }
}

/// A failed write (a modify), as [`from_ldap`] says, except when the request may have reached
/// the DC and only its answer is missing (the connection broke, or no answer came in time): the
/// DC may have applied it, so the write is unconfirmed rather than failed.
pub fn from_ldap_write(url: &str, error: LdapError) -> DirectoryError {
    match error {
        LdapError::LdapResult { .. } | LdapError::OpSend { .. } => from_ldap(url, error),
        LdapError::Timeout { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::EndOfStream
        | LdapError::Io { .. } => DirectoryError::WriteUnconfirmed {
            detail: match from_ldap(url, error) {
                DirectoryError::Unavailable { detail } => detail,
                other => other.to_string(),
            },
        },
        other => from_ldap(url, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.to_owned(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn samba_and_ad_results_map_to_kinds() {
        let e = from_result(&result(
            19,
            "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!",
        ));
        assert!(
            matches!(&e, DirectoryError::PolicyViolation { detail } if detail.contains("too short")),
            "{e:?}"
        );
        assert_eq!(
            from_result(&result(19, "00000056: AtrErr: DSID-03190F80")),
            DirectoryError::WrongOldPassword
        );
        assert_eq!(
            from_result(&result(53, "0000001F: SvcErr: DSID-031A12D2, problem 5003")),
            DirectoryError::InsecureChannel
        );
        assert_eq!(
            from_result(&result(13, "Transport encryption required.")),
            DirectoryError::InsecureChannel
        );
        assert!(matches!(
            from_result(&result(50, "00002098: SecErr")),
            DirectoryError::InsufficientRights { .. }
        ));
        assert!(matches!(
            from_result(&result(52, "")),
            DirectoryError::Unavailable { .. }
        ));
        assert!(matches!(
            from_result(&result(32, "0000208D: NameErr")),
            DirectoryError::Other { rc: 32, .. }
        ));
    }

    #[test]
    fn a_write_without_an_answer_is_unconfirmed_but_an_answer_is_not() {
        let url = "ldaps://dc2:636";
        let lost = from_ldap_write(url, LdapError::EndOfStream);
        assert_eq!(
            lost,
            DirectoryError::WriteUnconfirmed {
                detail: "ldaps://dc2:636: connection lost".to_owned()
            }
        );
        // The DC's own answer is never "unconfirmed", whatever it says.
        assert!(matches!(
            from_ldap_write(
                url,
                LdapError::LdapResult {
                    result: result(52, "")
                }
            ),
            DirectoryError::Unavailable { .. }
        ));
    }
}
