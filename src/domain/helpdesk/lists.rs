//! The lists an operator works from: accounts locked out, accounts whose password must be
//! changed at next sign-in, and passwords that expire within `helpdesk.expiring_within`; only
//! accounts the operator may act on, and, where `policy.scope` names a group, only its members
//! (the people the service is rolled out to). Acting still goes through the caller's card, so an unlock
//! from a list is verified like any other.

use std::time::Duration;

use super::{Helpdesk, filetime_ms};
use crate::domain::clock::Timestamp;
use crate::domain::directory::{DirectoryUser, uac};
use crate::domain::error::FlowError;
use crate::domain::scope::Scope;

/// The most accounts a list shows; it says when there were more.
pub const LIST_LIMIT: usize = 500;

/// An account on a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub sam_account_name: String,
    pub display_name: Option<String>,
    /// Locked: since when. Expiring: when. Must change: none.
    pub at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
pub struct AccountLists {
    /// Most recently locked first.
    pub locked: Vec<Listed>,
    /// Soonest first.
    pub expiring: Vec<Listed>,
    /// By name.
    pub must_change: Vec<Listed>,
    pub expiring_within: Duration,
    /// Some list had more than [`LIST_LIMIT`] accounts.
    pub truncated: bool,
}

impl Listed {
    fn of(user: &DirectoryUser, at: Option<Timestamp>) -> Self {
        Listed {
            sam_account_name: user.sam_account_name.clone(),
            display_name: user.display_name.clone(),
            at,
        }
    }
}

impl Helpdesk<'_> {
    /// The lists, for the operator signed in with `token`. Reads every enabled account a page
    /// at a time, then asks about the listed ones only whether the operator may act on them.
    pub async fn account_lists(&self, token: &str) -> Result<AccountLists, FlowError> {
        let d = self.deps;
        self.operator(token).await?;
        let now = d.now();
        let within = d.settings.helpdesk.expiring_within;
        let domain_policy = d.directory.domain_password_policy().await?;
        let mut lists = AccountLists {
            expiring_within: within,
            ..AccountLists::default()
        };
        let group = match &d.settings.eligibility.scope {
            Scope::Group(dn) => Some(dn.as_str()),
            Scope::All | Scope::Nobody => None,
        };
        for user in d.directory.users(group).await? {
            let expires = match filetime_ms(user.pwd_last_set) {
                Some(set) if user.user_account_control & uac::DONT_EXPIRE_PASSWORD == 0 => {
                    let max_age = if user.resultant_pso.is_some() {
                        d.directory.password_policy(&user).await?.max_age
                    } else {
                        domain_policy.max_age
                    };
                    max_age.map(|age| Timestamp::from_millis(set) + age)
                }
                _ => None,
            };
            let expiring = expires.filter(|at| *at > now && *at <= now + within);
            let (locked, must_change) = (user.is_locked(), user.must_change_password());
            if !(locked || must_change || expiring.is_some()) || !self.actionable(&user).await? {
                continue;
            }
            if locked {
                let since = filetime_ms(user.lockout_time).map(Timestamp::from_millis);
                lists.locked.push(Listed::of(&user, since));
            }
            if must_change {
                lists.must_change.push(Listed::of(&user, None));
            }
            if expiring.is_some() {
                lists.expiring.push(Listed::of(&user, expiring));
            }
        }
        lists.locked.sort_by_key(|l| std::cmp::Reverse(l.at));
        lists.expiring.sort_by_key(|l| l.at);
        lists
            .must_change
            .sort_by(|a, b| a.sam_account_name.cmp(&b.sam_account_name));
        for list in [
            &mut lists.locked,
            &mut lists.expiring,
            &mut lists.must_change,
        ] {
            lists.truncated |= list.len() > LIST_LIMIT;
            list.truncate(LIST_LIMIT);
        }
        Ok(lists)
    }
}
