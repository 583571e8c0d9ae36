//! Protected accounts: administrators and other privileged accounts that neither self-service
//! nor the helpdesk may reset. AD's AdminSDHolder strips delegated reset rights from them
//! anyway, which otherwise surfaces as a confusing "insufficient rights".

use super::directory::{Directory, DirectoryError, DirectoryUser};

/// Well-known RIDs of the domain groups AdminSDHolder protects (MS-ADTS 6.1.1.6.1): Domain
/// Admins, Domain Controllers, Schema Admins, Enterprise Admins, Read-only Domain Controllers,
/// Key Admins, Enterprise Key Admins.
const DOMAIN_RIDS: [&str; 7] = ["512", "516", "518", "519", "521", "526", "527"];

/// The protected built-in groups: Administrators, Account, Server, Print and Backup Operators,
/// Replicator.
const BUILTIN_SIDS: [&str; 6] = [
    "S-1-5-32-544",
    "S-1-5-32-548",
    "S-1-5-32-549",
    "S-1-5-32-550",
    "S-1-5-32-551",
    "S-1-5-32-552",
];

/// Whether a group SID is one of the privileged groups.
pub fn is_privileged_sid(sid: &str) -> bool {
    BUILTIN_SIDS.contains(&sid)
        || (sid.starts_with("S-1-5-21-")
            && sid
                .rsplit('-')
                .next()
                .is_some_and(|rid| DOMAIN_RIDS.contains(&rid)))
}

/// adminCount=1, or a member (nested included) of a privileged group. The groups are read even
/// when adminCount already answers, so an administrator takes no longer to judge than anyone.
pub async fn is_protected(
    directory: &dyn Directory,
    user: &DirectoryUser,
) -> Result<bool, DirectoryError> {
    let sids = directory.group_sids(user).await?;
    Ok(is_protected_by(user, &sids))
}

/// [`is_protected`] where the SIDs of the user's groups are already read.
pub fn is_protected_by(user: &DirectoryUser, group_sids: &[String]) -> bool {
    user.admin_count || group_sids.iter().any(|sid| is_privileged_sid(sid))
}

/// Whether `user` is on an allow-list of user DNs and group DNs (nested membership counts).
/// Every entry is looked up, also after a match, for the same reason.
pub async fn is_allowed(
    directory: &dyn Directory,
    user: &DirectoryUser,
    allow: &[String],
) -> Result<bool, DirectoryError> {
    let mut allowed = false;
    for dn in allow {
        let member = directory.is_member_of(user, dn).await?;
        allowed |= member || dn.eq_ignore_ascii_case(&user.dn);
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_sids_are_recognised() {
        assert!(is_privileged_sid("S-1-5-21-1-2-3-512"));
        assert!(is_privileged_sid("S-1-5-21-1-2-3-519"));
        assert!(is_privileged_sid("S-1-5-32-544"));
        assert!(is_privileged_sid("S-1-5-32-551"));
        assert!(!is_privileged_sid("S-1-5-21-1-2-3-513"), "Domain Users");
        assert!(!is_privileged_sid("S-1-5-21-1-2-3-5120"));
        assert!(!is_privileged_sid("S-1-5-32-545"), "Users");
        assert!(!is_privileged_sid("S-1-5-21-1-2-3-1105"));
    }
}
