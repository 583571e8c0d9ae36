//! Who may use self-service: the accounts `policy.scope` names, minus protected accounts
//! (administrators, see [`super::protection`]) unless `policy.allow_protected` lists them.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use super::ObjectGuid;
use super::directory::{Account, Directory, DirectoryError, DirectoryUser};
use super::protection::{is_allowed, is_protected_by};

/// Whose accounts self-service is for (`policy.scope`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every account the directory search finds.
    #[default]
    All,
    /// Members of this group, nested membership included.
    Group(String),
    /// Nobody: registration, reset and unlock answer as for unknown users.
    Nobody,
}

/// The rules that decide whether an account may use self-service.
#[derive(Clone, Debug, Default)]
pub struct Eligibility {
    pub scope: Scope,
    /// Protected accounts that may use self-service anyway: DNs of users or of groups.
    pub allow_protected: Vec<String>,
    /// Accounts no action may ever target, whatever the allow-lists say: the service account
    /// (`directory.bind_dn`) and `directory.never_reset`. User DNs.
    pub never_reset: Vec<String>,
}

/// Why an account may not use self-service. Only told to someone who proved the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusion {
    OutOfScope,
    Protected,
}

impl Exclusion {
    /// For the audit.
    pub fn reason(self) -> &'static str {
        match self {
            Exclusion::OutOfScope => "out_of_scope",
            Exclusion::Protected => "protected_account",
        }
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exclusion::OutOfScope => {
                "self-service is not enabled for your account; please contact the helpdesk"
            }
            Exclusion::Protected => {
                "self-service is not available for administrator accounts; please contact the \
                 helpdesk"
            }
        })
    }
}

/// What the rules say about one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub excluded: Option<Exclusion>,
    /// A protected account (allow-listed, if not excluded): its resets are reported to
    /// `notify.admins`.
    pub protected: bool,
}

impl Eligibility {
    /// Judges the account a login matched. For a login that matched none, the same directory
    /// questions are asked about `stand_in` (a real account, or else the rootDSE), so that an
    /// unknown login costs a reset start the same round trips as a known one; the answers (and
    /// any error: AD may refuse such a search) are discarded, and the result is `None`.
    pub async fn judge(
        &self,
        directory: &dyn Directory,
        account: Option<&Account>,
        stand_in: Option<&Account>,
    ) -> Result<Option<Standing>, DirectoryError> {
        match account {
            Some(a) => self
                .standing_of(directory, &a.user, &a.group_sids)
                .await
                .map(Some),
            None => {
                let root = root_stand_in();
                let (user, sids) = stand_in.map_or((&root, &[][..]), |a| (&a.user, &a.group_sids));
                let _ = self.standing_of(directory, user, sids).await;
                Ok(None)
            }
        }
    }

    /// Every question is asked for every account, whatever the earlier answers, so the time a
    /// start takes tells nothing about the account.
    pub async fn standing(
        &self,
        directory: &dyn Directory,
        user: &DirectoryUser,
    ) -> Result<Standing, DirectoryError> {
        let sids = directory.group_sids(user).await?;
        self.standing_of(directory, user, &sids).await
    }

    /// [`Self::standing`] where the SIDs of the user's groups are already read.
    pub async fn standing_of(
        &self,
        directory: &dyn Directory,
        user: &DirectoryUser,
        group_sids: &[String],
    ) -> Result<Standing, DirectoryError> {
        let in_scope = match &self.scope {
            Scope::All => true,
            Scope::Group(dn) => directory.is_member_of(user, dn).await?,
            Scope::Nobody => false,
        };
        let protected = is_protected_by(user, group_sids);
        let allowed = is_allowed(directory, user, &self.allow_protected).await?;
        let excluded = if self.is_never_reset(user) {
            // Told like an out-of-scope account: a sign-in names no special service account.
            Some(Exclusion::OutOfScope)
        } else if protected && !allowed {
            Some(Exclusion::Protected)
        } else if !in_scope {
            Some(Exclusion::OutOfScope)
        } else {
            None
        };
        Ok(Standing {
            excluded,
            protected,
        })
    }
}

impl Eligibility {
    /// Whether `user` is the service account or listed in `directory.never_reset`. Judged on
    /// the DN the directory returned, so every spelling of a login (sAMAccountName, UPN, any
    /// case, `DOMAIN\user`) that finds the account is caught.
    pub fn is_never_reset(&self, user: &DirectoryUser) -> bool {
        !user.dn.is_empty() && self.never_reset.iter().any(|dn| same_dn(dn, &user.dn))
    }
}

/// DNs compared as AD does for these: case-insensitively, and ignoring spaces around the `,`
/// and `=` separators (`CN=svc, OU=Service` names the same entry as `cn=svc,ou=service`).
pub fn same_dn(a: &str, b: &str) -> bool {
    fn canonical(dn: &str) -> String {
        dn.split(',')
            .map(|rdn| {
                rdn.split('=')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("=")
                    .to_lowercase()
            })
            .collect::<Vec<_>>()
            .join(",")
    }
    let (a, b) = (canonical(a), canonical(b));
    !a.is_empty() && a == b
}

/// The account a reset start for an unknown login reads and judges in its place: the last one a
/// start found on this instance (by its login), or, until then, the rootDSE. Nothing about it is
/// answered or recorded.
#[derive(Debug, Default)]
pub struct StandIn(Mutex<Option<String>>);

impl StandIn {
    /// A login no account has: what a start for a known login searches for besides its own, so
    /// that every start has one search that finds an account and one that finds none.
    pub const NOBODY: &'static str = "sspr-stand-in-nobody";

    pub fn remember(&self, login: &str) {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *last = Some(login.to_owned());
    }

    /// The login of the last account a start found, if one has.
    pub fn login(&self) -> Option<String> {
        let last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.clone()
    }
}

/// An account that is none: the empty DN names the rootDSE, which every DC answers a base
/// search on, so the stand-in's searches take a round trip like a real account's.
fn root_stand_in() -> DirectoryUser {
    DirectoryUser {
        guid: ObjectGuid(uuid::Uuid::nil()),
        dn: String::new(),
        sam_account_name: String::new(),
        user_principal_name: None,
        display_name: None,
        mail: None,
        user_account_control: 0,
        computed_account_control: 0,
        lockout_time: 0,
        pwd_last_set: 0,
        account_expires: 0,
        admin_count: false,
        member_of: Vec::new(),
        resultant_pso: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use secrecy::SecretString;

    use super::*;
    use crate::domain::directory::{
        AccountChange, BindGuard, DcId, DcStatus, GuardedCheck, PasswordCheck,
    };
    use crate::domain::policy::PasswordPolicy;

    const STAFF: &str = "CN=Staff,DC=x";
    const DOMAIN_ADMINS_SID: &str = "S-1-5-21-1-2-3-512";

    /// Members of groups by DN and SID; records every question.
    #[derive(Default)]
    struct Groups {
        /// (member DN, group DN): nested membership already resolved.
        member_of: Vec<(&'static str, &'static str)>,
        sids: Vec<(&'static str, &'static str)>,
        asked: Mutex<Vec<String>>,
    }

    impl Groups {
        fn asked(&self) -> usize {
            std::mem::take(&mut *self.asked.lock().unwrap()).len()
        }
    }

    #[async_trait]
    impl Directory for Groups {
        async fn find_user_by(
            &self,
            _: &str,
            _: bool,
        ) -> Result<Option<DirectoryUser>, DirectoryError> {
            unreachable!()
        }

        async fn users(&self, _: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError> {
            unreachable!()
        }

        async fn manager(
            &self,
            _: &DirectoryUser,
        ) -> Result<Option<crate::domain::directory::ManagerLink>, DirectoryError> {
            unreachable!()
        }

        async fn is_member_of(
            &self,
            user: &DirectoryUser,
            group_dn: &str,
        ) -> Result<bool, DirectoryError> {
            self.asked
                .lock()
                .unwrap()
                .push(format!("member {group_dn}"));
            Ok(self.member_of.contains(&(user.dn.as_str(), group_dn)))
        }

        async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
            self.asked.lock().unwrap().push("sids".into());
            Ok(self
                .sids
                .iter()
                .filter(|(dn, _)| *dn == user.dn)
                .map(|(_, sid)| (*sid).to_owned())
                .collect())
        }

        async fn check_password(
            &self,
            _: &DirectoryUser,
            _: &SecretString,
        ) -> Result<PasswordCheck, DirectoryError> {
            unreachable!()
        }

        async fn check_password_guarded(
            &self,
            _: &DirectoryUser,
            _: &SecretString,
            _: BindGuard<'_>,
        ) -> Result<GuardedCheck, DirectoryError> {
            unreachable!()
        }

        async fn decoy_password_check(&self, _: &str) -> Result<(), DirectoryError> {
            unreachable!()
        }

        async fn write_account(
            &self,
            _: &DirectoryUser,
            _: &AccountChange<'_>,
        ) -> Result<DcId, DirectoryError> {
            unreachable!()
        }

        async fn change_password(
            &self,
            _: &DirectoryUser,
            _: &SecretString,
            _: &SecretString,
            _: BindGuard<'_>,
        ) -> Result<Option<DcId>, DirectoryError> {
            unreachable!()
        }

        async fn password_policy(
            &self,
            _: &DirectoryUser,
        ) -> Result<PasswordPolicy, DirectoryError> {
            unreachable!()
        }

        async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
            unreachable!()
        }

        async fn probe(&self) -> Vec<DcStatus> {
            unreachable!()
        }
    }

    fn user(dn: &str, admin_count: bool) -> DirectoryUser {
        DirectoryUser {
            dn: dn.to_owned(),
            admin_count,
            ..root_stand_in()
        }
    }

    fn rules(scope: Scope, allow: &[&str]) -> Eligibility {
        Eligibility {
            scope,
            allow_protected: allow.iter().map(|s| (*s).to_owned()).collect(),
            never_reset: Vec::new(),
        }
    }

    #[tokio::test]
    async fn scope_protection_and_the_allow_list_decide() {
        let directory = Groups {
            member_of: vec![("CN=ann", STAFF), ("CN=adm", STAFF)],
            sids: vec![("CN=adm", DOMAIN_ADMINS_SID)],
            ..Groups::default()
        };
        let excluded = |rules: Eligibility, dn: &'static str, admin_count: bool| {
            let directory = &directory;
            async move {
                let standing = rules
                    .standing(directory, &user(dn, admin_count))
                    .await
                    .unwrap();
                standing.excluded
            }
        };
        let group = || Scope::Group(STAFF.to_owned());
        assert_eq!(
            excluded(rules(Scope::All, &[]), "CN=bob", false).await,
            None
        );
        assert_eq!(excluded(rules(group(), &[]), "CN=ann", false).await, None);
        assert_eq!(
            excluded(rules(group(), &[]), "CN=bob", false).await,
            Some(Exclusion::OutOfScope)
        );
        assert_eq!(
            excluded(rules(Scope::Nobody, &[]), "CN=ann", false).await,
            Some(Exclusion::OutOfScope)
        );
        // Protected by group or by adminCount, unless allow-listed by DN or by group.
        assert_eq!(
            excluded(rules(group(), &[]), "CN=adm", false).await,
            Some(Exclusion::Protected)
        );
        assert_eq!(
            excluded(rules(Scope::All, &[]), "CN=bob", true).await,
            Some(Exclusion::Protected)
        );
        assert_eq!(
            excluded(rules(group(), &["cn=ADM"]), "CN=adm", false).await,
            None
        );
        assert_eq!(
            excluded(rules(group(), &[STAFF]), "CN=adm", false).await,
            None
        );
        // Allow-listed, but out of scope.
        assert_eq!(
            excluded(rules(Scope::Nobody, &[STAFF]), "CN=adm", false).await,
            Some(Exclusion::OutOfScope)
        );
        let standing = rules(Scope::All, &["CN=adm"])
            .standing(&directory, &user("CN=adm", false))
            .await
            .unwrap();
        assert!(standing.protected && standing.excluded.is_none());
    }

    #[tokio::test]
    async fn never_reset_accounts_are_excluded_whatever_the_allow_list() {
        let directory = Groups::default();
        let rules = Eligibility {
            never_reset: vec!["CN=svc, OU=Service,DC=x".to_owned()],
            ..rules(Scope::All, &["CN=svc,OU=Service,DC=x"])
        };
        for dn in ["CN=svc,OU=Service,DC=x", "cn=SVC,ou=service,dc=X"] {
            let standing = rules.standing(&directory, &user(dn, false)).await.unwrap();
            assert_eq!(standing.excluded, Some(Exclusion::OutOfScope), "{dn}");
        }
        let standing = rules
            .standing(&directory, &user("CN=svc2,OU=Service,DC=x", false))
            .await
            .unwrap();
        assert_eq!(standing.excluded, None);
        assert!(!rules.is_never_reset(&root_stand_in()));
        assert!(!same_dn("", ""));
    }

    #[tokio::test]
    async fn every_login_costs_the_same_questions() {
        let directory = Groups {
            member_of: vec![("CN=adm", STAFF)],
            sids: vec![("CN=adm", DOMAIN_ADMINS_SID)],
            ..Groups::default()
        };
        let rules = rules(
            Scope::Group(STAFF.to_owned()),
            &["CN=adm", "CN=Admins,DC=x"],
        );
        let mut counts = Vec::new();
        for (login, admin_count) in [("CN=adm", true), ("CN=adm", false), ("CN=bob", false)] {
            let found = user(login, admin_count);
            let group_sids = directory.group_sids(&found).await.unwrap();
            let found = Account {
                user: found,
                group_sids,
            };
            let standing = rules.judge(&directory, Some(&found), None).await.unwrap();
            assert!(standing.is_some());
            counts.push(directory.asked());
        }
        // The groups' SIDs come with the account (or the stand-in), read by the caller.
        assert_eq!(rules.judge(&directory, None, None).await.unwrap(), None);
        counts.push(directory.asked() + 1);
        assert_eq!(counts, [4, 4, 4, 4]);
    }
}
