//! Group membership: whether an account is in a group (nested too) and the SIDs of its groups.

use ldap3::Scope;

use super::routing::{Route, account_key};
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
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(
                Route::Account(&key),
                &user.dn,
                Scope::Base,
                &filter,
                &["1.1"],
                1,
            )
            .await?;
        Ok(entries.len() == 1)
    }

    pub(super) async fn group_sids(
        &self,
        user: &DirectoryUser,
    ) -> Result<Vec<String>, DirectoryError> {
        // tokenGroups is constructed per object: AD computes it only on a base-scope read.
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(
                Route::Account(&key),
                &user.dn,
                Scope::Base,
                "(objectClass=*)",
                &["tokenGroups"],
                1,
            )
            .await?;
        let Some(entry) = entries.first() else {
            return Ok(Vec::new());
        };
        Ok(codec::binary_values(entry, "tokenGroups")
            .into_iter()
            .filter_map(|bytes| {
                let sid = codec::sid_string(bytes);
                if sid.is_none() {
                    tracing::warn!(dn = %user.dn, "tokenGroups holds a malformed SID; skipped");
                }
                sid
            })
            .collect())
    }
}
