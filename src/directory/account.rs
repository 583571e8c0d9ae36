//! An account and its groups in as few searches as AD allows: `tokenGroups` is computed only on a
//! base-scope read, so the attributes ride along on that read instead of costing one of their
//! own. A reset reads an account this way at its start (by login: its DN, then one read) and
//! before its write (by GUID: one read).

use ldap3::{Scope, SearchEntry};

use super::groups::group_sids_of;
use super::routing::{Route, account_key};
use super::{LdapDirectory, codec};
use crate::domain::ObjectGuid;
use crate::domain::directory::{Account, DirectoryError};
use crate::domain::scope::same_dn;

impl LdapDirectory {
    pub(super) async fn find_account(
        &self,
        login: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        if login.is_empty() {
            return Ok(None);
        }
        // Only the DN ("1.1": no attributes), so a found entry costs the DC about what a miss
        // does: its constructed attributes come with the read below, which an unknown login's
        // start makes of another account.
        let Some(entry) = self.only_entry(login, false, &["1.1"]).await? else {
            return Ok(None);
        };
        self.read_account(Route::Account(&account_key(login)), &entry.dn)
            .await
    }

    pub(super) async fn account_at(&self, dn: &str) -> Result<Option<Account>, DirectoryError> {
        self.read_account(Route::Any, dn).await
    }

    pub(super) async fn account_of(
        &self,
        guid: &ObjectGuid,
        sam_account_name: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        let key = account_key(sam_account_name);
        // AD and Samba take `<GUID=…>` wherever a DN goes (MS-ADTS 3.1.1.3.1.2.4): the account
        // is read wherever it is now, so where it is and what it is called are checked here, as
        // the search by login would have.
        let at = format!("<GUID={}>", guid.0.hyphenated());
        let account = self.read_account(Route::Account(&key), &at).await?;
        Ok(account.filter(|a| {
            a.user.guid == *guid
                && a.user
                    .sam_account_name
                    .eq_ignore_ascii_case(sam_account_name)
                && is_under(&a.user.dn, &self.base_dn)
        }))
    }

    /// One base-scope read of the user attributes and `tokenGroups` of the entry at `dn`, if it
    /// is a user `directory.user_filter` matches.
    async fn read_account(
        &self,
        route: Route<'_>,
        dn: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        let attributes = [codec::USER_ATTRIBUTES, &["tokenGroups"]].concat();
        let entries = match self
            .search(route, dn, Scope::Base, &self.user_filter, &attributes, 1)
            .await
        {
            // noSuchObject: gone, or not visible to the service account.
            Err(DirectoryError::Other { rc: 32, .. }) => return Ok(None),
            other => other?,
        };
        Ok(entries.first().and_then(account_of_entry))
    }
}

fn account_of_entry(entry: &SearchEntry) -> Option<Account> {
    Some(Account {
        user: codec::directory_user(entry)?,
        group_sids: group_sids_of(entry),
    })
}

/// Whether `dn` is `base` or below it, compared as AD compares DNs.
fn is_under(dn: &str, base: &str) -> bool {
    let rdns: Vec<&str> = dn.split(',').collect();
    let depth = base.split(',').count();
    rdns.len() >= depth && same_dn(&rdns[rdns.len() - depth..].join(","), base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_under_the_base_however_the_dns_are_spelled() {
        let base = "DC=sspr, DC=test";
        assert!(is_under("CN=ann,CN=Users,DC=sspr,DC=test", base));
        assert!(is_under("cn=ann,cn=users,dc=SSPR,dc=test", base));
        assert!(is_under("DC=sspr,DC=test", base));
        assert!(!is_under("CN=ann,DC=other,DC=test", base));
        assert!(!is_under("CN=ann,DC=xsspr,DC=test", base));
        assert!(!is_under("DC=test", base));
    }
}
