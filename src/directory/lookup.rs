//! User look-up and attribute reading: one account by id or DN, the enabled users of a group,
//! and an account's manager.

use std::time::Instant;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Scope, SearchEntry};

use super::errors::from_ldap;
use super::routing::{Route, account_key};
use super::{LdapDirectory, codec};
use crate::domain::directory::{DirectoryError, DirectoryUser, ManagerLink};
use crate::metrics;

/// Entries per page of a paged search; AD's default MaxPageSize is 1000.
pub(super) const PAGE_SIZE: i32 = 500;

impl LdapDirectory {
    /// The user entry at `dn`, wherever it is (also outside `base_dn`, as a service account often
    /// is); `None` if there is none or the service account may not see it.
    pub async fn find_user_at(&self, dn: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        match self
            .search(
                Route::Any,
                dn,
                Scope::Base,
                "(objectClass=user)",
                codec::USER_ATTRIBUTES,
                1,
            )
            .await
        {
            Ok(entries) => Ok(entries.first().and_then(codec::directory_user)),
            Err(DirectoryError::Other { rc: 32, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        if id.is_empty() {
            return Ok(None);
        }
        let entry = self.only_entry(id, or_mail, codec::USER_ATTRIBUTES).await?;
        Ok(entry.as_ref().and_then(codec::directory_user))
    }

    /// The one entry that answers to `id` (with `attributes`), or none when none or several do:
    /// one's sAMAccountName may be another's UPN or mail, and acting on either could hit the
    /// wrong person. Its caller has checked that `id` is not empty.
    pub(super) async fn only_entry(
        &self,
        id: &str,
        or_mail: bool,
        attributes: &[&str],
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let filter = codec::user_filter(&self.user_filter, id, or_mail);
        let key = account_key(id);
        // Size limit 2: enough to tell one match from several. More than two ends the search
        // with sizeLimitExceeded (rc 4), which means the same.
        let entries = match self
            .search(
                Route::Account(&key),
                &self.base_dn,
                Scope::Subtree,
                &filter,
                attributes,
                2,
            )
            .await
        {
            Err(DirectoryError::Other { rc: 4, .. }) => return Ok(None),
            other => other?,
        };
        let mut entries = entries.into_iter();
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Ok(Some(entry)),
            _ => Ok(None),
        }
    }

    pub(super) async fn users(
        &self,
        group_dn: Option<&str>,
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let filter = codec::enabled_users_filter(&self.user_filter, group_dn);
        let (mut conn, dc) = self.checkout(Route::Any).await?;
        let started = Instant::now();
        let read = async {
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(PAGE_SIZE)),
            ];
            let mut stream = conn
                .with_timeout(self.timeout)
                .streaming_search_with(
                    adapters,
                    &self.base_dn,
                    Scope::Subtree,
                    &filter,
                    codec::USER_ATTRIBUTES.to_vec(),
                )
                .await?;
            let mut users = Vec::new();
            while let Some(entry) = stream.next().await? {
                let entry = SearchEntry::construct(entry);
                match codec::directory_user(&entry) {
                    Some(user) => users.push(user),
                    None => tracing::warn!(dn = %entry.dn, "an account without objectGUID or sAMAccountName; skipped"),
                }
            }
            stream.finish().await.success()?;
            Ok(users)
        }
        .await
        .map_err(|e| from_ldap(dc.url(), e));
        metrics::directory_operation(dc.url(), "search", started, &read);
        match read {
            Ok(users) => Ok(users),
            Err(e) => {
                Self::discard_if_broken(conn, &e);
                Err(e)
            }
        }
    }

    pub(super) async fn manager(
        &self,
        user: &DirectoryUser,
    ) -> Result<Option<ManagerLink>, DirectoryError> {
        // msDS-ReplValueMetaData is constructed: a DC returns it only when asked by name, on a
        // base-scope read.
        let entry = self
            .read_entry(
                user,
                &user.dn,
                "(objectClass=*)",
                &["manager", "msDS-ReplValueMetaData"],
            )
            .await?;
        let Some(dn) = entry
            .as_ref()
            .and_then(|e| codec::first(e, "manager"))
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let changed_at_ms = entry
            .as_ref()
            .and_then(|e| codec::value_changed_at_ms(e, "manager", &dn));
        let found = self
            .read_entry(user, &dn, &self.user_filter, codec::USER_ATTRIBUTES)
            .await;
        let user = match found {
            // noSuchObject: the manager's entry is gone (or moved) since the link was set.
            Err(DirectoryError::Other { rc: 32, .. }) => None,
            other => other?.as_ref().and_then(codec::directory_user),
        };
        Ok(Some(ManagerLink {
            dn,
            changed_at_ms,
            user,
        }))
    }

    /// The entry at `dn`, read with a base-scope search on the DC that `user`'s account is
    /// routed to, like the rest of its work.
    pub(super) async fn read_entry(
        &self,
        user: &DirectoryUser,
        dn: &str,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let key = account_key(&user.sam_account_name);
        let entries = self
            .search(Route::Account(&key), dn, Scope::Base, filter, attributes, 1)
            .await?;
        Ok(entries.into_iter().next())
    }
}
