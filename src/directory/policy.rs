//! Password policy reading: the domain policy from the domain head and fine-grained PSOs,
//! cached for `directory.policy_cache` (a few seconds): long enough that the steps of a flow and
//! the flows of a busy minute share one read, short enough that a changed policy shows soon.

use ldap3::Scope;

use super::routing::Route;
use super::{LdapDirectory, codec};
use crate::domain::directory::{DirectoryError, DirectoryUser};
use crate::domain::policy::PasswordPolicy;

pub(super) const DOMAIN_POLICY: &str = "domain";

impl LdapDirectory {
    /// The DN of the domain head, read from the rootDSE once.
    pub(super) async fn naming_context(&self) -> Result<&str, DirectoryError> {
        self.naming_context
            .get_or_try_init(|| async {
                let entries = self
                    .search(
                        Route::Any,
                        "",
                        Scope::Base,
                        "(objectClass=*)",
                        &["defaultNamingContext"],
                        1,
                    )
                    .await?;
                entries
                    .first()
                    .and_then(|e| codec::first(e, "defaultNamingContext"))
                    .map(str::to_owned)
                    .ok_or_else(|| DirectoryError::Other {
                        rc: 0,
                        detail: "the rootDSE names no defaultNamingContext".to_owned(),
                    })
            })
            .await
            .map(String::as_str)
    }

    /// A PSO's policy; `None` if the service account cannot read it (by default only Domain
    /// Admins may read the Password Settings Container).
    pub(super) async fn read_pso(
        &self,
        dn: &str,
    ) -> Result<Option<PasswordPolicy>, DirectoryError> {
        match self
            .search(
                Route::Any,
                dn,
                Scope::Base,
                "(objectClass=msDS-PasswordSettings)",
                codec::PSO_ATTRIBUTES,
                1,
            )
            .await
        {
            Ok(entries) => Ok(entries.first().and_then(codec::pso_password_policy)),
            // noSuchObject: what AD answers for an object the reader may not see.
            Err(DirectoryError::Other { rc: 32, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn password_policy(
        &self,
        user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        let Some(pso) = &user.resultant_pso else {
            return self.domain_password_policy().await;
        };
        let key = pso.to_lowercase();
        if let Some(policy) = self.policies.get(&key) {
            return Ok(policy);
        }
        let policy = match self.read_pso(pso).await? {
            Some(policy) => policy,
            None => {
                // The DC still enforces the PSO; only the checks in advance are less exact.
                tracing::warn!(
                    pso = %pso,
                    "cannot read this fine-grained password policy; checking new passwords \
                     against the domain policy instead (give the service account read access \
                     to the Password Settings Container)"
                );
                self.domain_password_policy().await?
            }
        };
        self.policies.put(key, policy.clone());
        Ok(policy)
    }

    pub(super) async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        if let Some(policy) = self.policies.get(DOMAIN_POLICY) {
            return Ok(policy);
        }
        let head = self.naming_context().await?;
        let entries = self
            .search(
                Route::Any,
                head,
                Scope::Base,
                "(objectClass=*)",
                codec::DOMAIN_POLICY_ATTRIBUTES,
                1,
            )
            .await?;
        let policy = entries
            .first()
            .and_then(codec::domain_password_policy)
            .ok_or_else(|| DirectoryError::InsufficientRights {
                detail: format!("cannot read the password policy (minPwdLength …) of {head}"),
            })?;
        self.policies.put(DOMAIN_POLICY.to_owned(), policy.clone());
        Ok(policy)
    }
}
