//! What a DN from the configuration names, and how many accounts a group of them lets in: what
//! `check` reports for `helpdesk.group_dn`, the `policy.scope` group and the DN lists.

use ldap3::Scope;

use super::LdapDirectory;
use super::routing::Route;
use crate::domain::directory::DirectoryError;

/// A configured DN as the directory sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnReading {
    /// Nothing at that DN, or nothing the service account may read there: AD answers both with
    /// noSuchObject.
    Missing,
    /// A group, with this many enabled accounts matching `directory.user_filter` below
    /// `base_dn` as members, directly or through nested groups.
    Group(usize),
    /// A user account.
    Account,
    /// Something else: an OU, a container, a computer.
    Other,
}

impl LdapDirectory {
    pub async fn read_dn(&self, dn: &str) -> Result<DnReading, DirectoryError> {
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
            Err(DirectoryError::Other { rc: 32, .. }) => return Ok(DnReading::Missing),
            other => other?,
        };
        let Some(entry) = entries.first() else {
            return Ok(DnReading::Missing);
        };
        let classes: Vec<&str> = entry
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("objectClass"))
            .flat_map(|(_, classes)| classes.iter().map(String::as_str))
            .collect();
        let is = |class: &str| classes.iter().any(|c| c.eq_ignore_ascii_case(class));
        if is("group") {
            // The same search the batch commands use, so the number is the accounts the
            // service would act for.
            Ok(DnReading::Group(self.users(Some(dn)).await?.len()))
        } else if is("user") && !is("computer") {
            Ok(DnReading::Account)
        } else {
            Ok(DnReading::Other)
        }
    }
}
