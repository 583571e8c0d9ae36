//! What a group DN from the configuration names, and how many accounts it lets in: what
//! `check` reports for `helpdesk.group_dn` and the `policy.scope` group.

use ldap3::Scope;

use super::LdapDirectory;
use super::routing::Route;
use crate::domain::directory::DirectoryError;

/// A configured group DN as the directory sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupReading {
    /// Nothing at that DN, or nothing the service account may read there: AD answers both with
    /// noSuchObject.
    Missing,
    /// An entry, but no group (a user, an OU): membership of it matches no account.
    NotAGroup,
    /// A group, with this many enabled accounts matching `directory.user_filter` below
    /// `base_dn` as members, directly or through nested groups.
    Members(usize),
}

impl LdapDirectory {
    pub async fn read_group(&self, dn: &str) -> Result<GroupReading, DirectoryError> {
        let entries = match self
            .search(
                Route::Any,
                dn,
                Scope::Base,
                "(objectClass=*)",
                &["objectClass"],
                1,
            )
            .await
        {
            Err(DirectoryError::Other { rc: 32, .. }) => return Ok(GroupReading::Missing),
            other => other?,
        };
        let Some(entry) = entries.first() else {
            return Ok(GroupReading::Missing);
        };
        let is_group = entry
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("objectClass"))
            .flat_map(|(_, classes)| classes)
            .any(|class| class.eq_ignore_ascii_case("group"));
        if !is_group {
            return Ok(GroupReading::NotAGroup);
        }
        // The same search the batch commands use, so the number is the accounts the service
        // would act for.
        Ok(GroupReading::Members(self.users(Some(dn)).await?.len()))
    }
}
