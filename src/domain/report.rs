//! The figures an administrator rolling out self-service works from: who is in scope, who has
//! registered (and whose registration is due for re-confirmation), what was done per day or week,
//! why requests were refused, and who is blocked now. One computation for `sspr-bridge report`
//! and the `/admin` page: the people from the directory (read a page at a time), the rest counted
//! by the database ([`ReportQueries`]), so no audit row travels to the service.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;

use super::ObjectGuid;
use super::clock::Timestamp;
use super::deps::Deps;
use super::directory::{DirectoryError, DirectoryUser};
use super::error::FlowError;
use super::helpdesk::Helpdesk;
use super::protection::is_allowed;
use super::scope::Scope;
use super::store::{MethodKind, Outcome, StoreError};

const DAY_MS: i64 = 86_400_000;

/// How many refusal reasons the report lists.
pub const TOP_REFUSALS: i64 = 10;

/// The width of the report's activity periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    Day,
    /// ISO weeks, Monday to Sunday (UTC).
    Week,
}

impl Per {
    pub fn as_str(self) -> &'static str {
        match self {
            Per::Day => "day",
            Per::Week => "week",
        }
    }

    /// The period as the database counts it: the start of the period holding `at_ms` is
    /// `((at_ms + offset) / width) * width - offset`.
    pub fn width_and_offset(self) -> (i64, i64) {
        match self {
            Per::Day => (DAY_MS, 0),
            // 1970-01-01 was a Thursday: three days on, periods start on Mondays.
            Per::Week => (7 * DAY_MS, 3 * DAY_MS),
        }
    }
}

/// The actions the report counts, by the audit kind that records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Reset,
    Unlock,
    /// A change with the current password.
    Change,
    HelpdeskReset,
    HelpdeskUnlock,
    HelpdeskClearRegistrations,
    HelpdeskLiftBlock,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Reset,
        Action::Unlock,
        Action::Change,
        Action::HelpdeskReset,
        Action::HelpdeskUnlock,
        Action::HelpdeskClearRegistrations,
        Action::HelpdeskLiftBlock,
    ];

    /// The audit kind's name in the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reset => "password_reset",
            Action::Unlock => "unlock",
            Action::Change => "password_changed",
            Action::HelpdeskReset => "helpdesk_reset",
            Action::HelpdeskUnlock => "helpdesk_unlock",
            Action::HelpdeskClearRegistrations => "helpdesk_clear_registrations",
            Action::HelpdeskLiftBlock => "helpdesk_lift_block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One user's registered methods, as the database sums them up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredUser {
    pub guid: ObjectGuid,
    /// The confirmed methods, current or stale.
    pub methods: Vec<MethodKind>,
    /// Whether one of them counts for a reset now (confirmed within `registration.reconfirm_days`).
    pub current: bool,
}

/// How many audit rows of one action, method and outcome fell in one period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityCount {
    /// The start of the period.
    pub period: Timestamp,
    pub action: Action,
    /// The verification method, where the row names one.
    pub method: Option<String>,
    pub outcome: Outcome,
    pub count: u64,
}

/// The counts the report asks the database for; each is one aggregate query.
#[async_trait]
pub trait ReportQueries: Send + Sync {
    /// Every user with a confirmed method; `current` when one was confirmed at or after
    /// `current_since` (`None`: confirmations never go stale).
    async fn registered_users(
        &self,
        current_since: Option<Timestamp>,
    ) -> Result<Vec<RegisteredUser>, StoreError>;
    /// The rows of `actions` at or after `since`, counted per period, action, method and outcome,
    /// in that order.
    async fn activity(
        &self,
        since: Timestamp,
        per: Per,
        actions: &[Action],
    ) -> Result<Vec<ActivityCount>, StoreError>;
    /// The most frequent reasons of refused or failed requests at or after `since`, most
    /// frequent first, at most `limit`.
    async fn refusal_reasons(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// The accounts a throttle block holds at `now`.
    async fn blocked_users(&self, now: Timestamp) -> Result<Vec<ObjectGuid>, StoreError>;
}

/// What a signed-in operator outside `admin.group_dn` is told at `/admin`.
const ADMINS_ONLY: &str =
    "Only members of the administrators' group (admin.group_dn) can see this.";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The report. Figures about people count the users in scope only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub generated_at: Timestamp,
    /// The activity and refusals counted are from this instant on.
    pub since: Timestamp,
    pub per: Per,
    pub users_in_scope: u64,
    /// Users with at least one confirmed method.
    pub registered: u64,
    /// Users per confirmed method (a user with two methods counts under both).
    pub registered_by_method: Vec<(MethodKind, u64)>,
    /// Registered, but no method confirmed within `registration.reconfirm_days`: they must
    /// confirm again before they can reset.
    pub stale: u64,
    pub never_registered: u64,
    pub activity: Vec<ActivityCount>,
    pub refusals: Vec<(String, u64)>,
    /// Users held by a throttle block now.
    pub blocked_now: u64,
}

impl Report {
    /// The activity summed per action and outcome over the whole period, for a short view.
    pub fn totals(&self) -> BTreeMap<(Action, &'static str), u64> {
        let mut totals = BTreeMap::new();
        for row in &self.activity {
            *totals
                .entry((row.action, row.outcome.as_str()))
                .or_default() += row.count;
        }
        totals
    }
}

pub struct Reports<'a> {
    deps: &'a Deps,
    queries: &'a dyn ReportQueries,
}

impl<'a> Reports<'a> {
    pub fn new(deps: &'a Deps, queries: &'a dyn ReportQueries) -> Self {
        Self { deps, queries }
    }

    /// The report from `since` to now, activity counted `per` day or week.
    pub async fn report(&self, since: Timestamp, per: Per) -> Result<Report, ReportError> {
        let now = self.deps.now();
        let users = self.users_in_scope().await?;
        let in_scope: HashSet<ObjectGuid> = users.iter().map(|u| u.guid).collect();
        let current_since = self
            .deps
            .settings
            .registration
            .reconfirm_after()
            .map(|age| now - age);
        let registered: Vec<RegisteredUser> = self
            .queries
            .registered_users(current_since)
            .await?
            .into_iter()
            .filter(|r| in_scope.contains(&r.guid))
            .collect();
        let mut by_method: HashMap<MethodKind, u64> = HashMap::new();
        for user in &registered {
            for kind in &user.methods {
                *by_method.entry(*kind).or_default() += 1;
            }
        }
        let blocked = self.queries.blocked_users(now).await?;
        let blocked_now = blocked
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|guid| in_scope.contains(guid))
            .count();
        Ok(Report {
            generated_at: now,
            since,
            per,
            users_in_scope: count(in_scope.len()),
            registered: count(registered.len()),
            // Recovery codes are a backup kept beside these, never a registration of their own.
            registered_by_method: MethodKind::ALL
                .into_iter()
                .filter(|kind| *kind != MethodKind::RecoveryCode)
                .map(|kind| (kind, by_method.get(&kind).copied().unwrap_or(0)))
                .collect(),
            stale: count(registered.iter().filter(|r| !r.current).count()),
            never_registered: count(in_scope.len() - registered.len()),
            activity: self.queries.activity(since, per, &Action::ALL).await?,
            refusals: self.queries.refusal_reasons(since, TOP_REFUSALS).await?,
            blocked_now: count(blocked_now),
        })
    }

    /// [`Self::report`] for `/admin`: for the helpdesk operator signed in with `session` (so with
    /// the operator's second factor), when the account is in `admin.group_dn`, checked at each
    /// request. Any other operator is refused ([`FlowError::Forbidden`]); without a session,
    /// [`FlowError::Unauthorized`].
    pub async fn for_admin(
        &self,
        session: &str,
        since: Timestamp,
        per: Per,
    ) -> Result<Report, FlowError> {
        let d = self.deps;
        let operator = Helpdesk::new(d).operator(session).await?;
        let refused = || FlowError::Forbidden(ADMINS_ONLY.to_owned());
        let Some(group) = &d.settings.admin.group_dn else {
            return Err(refused());
        };
        let admin = match d.directory.find_user(operator.sam_account_name()).await? {
            Some(user) if user.guid == operator.user() && !user.is_disabled() => {
                d.directory.is_member_of(&user, group).await?
            }
            _ => false,
        };
        if !admin {
            return Err(refused());
        }
        Ok(self.report(since, per).await?)
    }

    /// The enabled accounts `policy.scope` names, minus the service account, `never_reset` and
    /// protected accounts not allow-listed. Protected is judged by `adminCount`, which AD's
    /// SDProp sets on every member (nested too) of the protected groups: one attribute already
    /// read, where the sign-in rule's `tokenGroups` would cost a directory read per user.
    async fn users_in_scope(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let directory = self.deps.directory.as_ref();
        let eligibility = &self.deps.settings.eligibility;
        let users = match &eligibility.scope {
            Scope::Nobody => return Ok(Vec::new()),
            Scope::All => directory.users(None).await?,
            Scope::Group(dn) => directory.users(Some(dn)).await?,
        };
        let mut kept = Vec::with_capacity(users.len());
        for user in users {
            if eligibility.is_never_reset(&user) {
                continue;
            }
            if user.admin_count
                && !is_allowed(directory, &user, &eligibility.allow_protected).await?
            {
                continue;
            }
            kept.push(user);
        }
        Ok(kept)
    }
}

impl From<ReportError> for FlowError {
    fn from(e: ReportError) -> FlowError {
        match e {
            ReportError::Directory(e) => FlowError::Directory(e),
            ReportError::Store(e) => FlowError::Store(e),
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        let (width, offset) = Per::Week.width_and_offset();
        // 2026-12-07 was a Monday, 2026-12-06 a Sunday (UTC).
        let monday = 1_796_601_600_000_i64;
        let start = |at: i64| ((at + offset) / width) * width - offset;
        assert_eq!(start(monday), monday);
        assert_eq!(start(monday + 6 * DAY_MS + 1), monday);
        assert_eq!(start(monday - 1), monday - 7 * DAY_MS);
        let (width, offset) = Per::Day.width_and_offset();
        assert_eq!(((monday + 5 + offset) / width) * width - offset, monday);
    }

    #[test]
    fn action_names_are_the_audit_kinds() {
        use super::super::store::AuditKind;
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            if action != Action::Change {
                assert!(AuditKind::parse(action.as_str()).is_some(), "{action:?}");
            }
        }
    }
}
