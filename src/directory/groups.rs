//! Group membership: whether an account is in a group (nested too) and the SIDs of its groups.

use ldap3::SearchEntry;

use super::{LdapDirectory, codec};
use crate::domain::directory::{DirectoryError, DirectoryUser};

impl LdapDirectory {
    pub(super) async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError> {
        // The DC walks the nesting; the user's own entry comes back only if it matches.
        let filter = codec::member_of_filter(group_dn);
        let entry = self.read_entry(user, &user.dn, &filter, &["1.1"]).await?;
        Ok(entry.is_some())
    }

    pub(super) async fn group_sids(
        &self,
        user: &DirectoryUser,
    ) -> Result<Vec<String>, DirectoryError> {
        // tokenGroups is constructed per object: AD computes it only on a base-scope read.
        let entry = self
            .read_entry(user, &user.dn, "(objectClass=*)", &["tokenGroups"])
            .await?;
        Ok(entry.map_or_else(Vec::new, |entry| group_sids_of(&entry)))
    }
}

/// The SIDs in an entry's `tokenGroups`, a malformed one skipped.
pub(super) fn group_sids_of(entry: &SearchEntry) -> Vec<String> {
    codec::binary_values(entry, "tokenGroups")
        .into_iter()
        .filter_map(|bytes| {
            let sid = codec::sid_string(bytes);
            if sid.is_none() {
                tracing::warn!(dn = %entry.dn, "tokenGroups holds a malformed SID; skipped");
            }
            sid
        })
        .collect()
}
