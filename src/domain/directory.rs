//! What the flows need from Active Directory. `crate::directory` implements it over LDAPS.

use async_trait::async_trait;
use secrecy::SecretString;

use super::ObjectGuid;
use super::policy::PasswordPolicy;

/// userAccountControl / msDS-User-Account-Control-Computed bits (MS-ADTS 2.2.16).
pub mod uac {
    pub const ACCOUNTDISABLE: u32 = 0x0002;
    pub const LOCKOUT: u32 = 0x0010;
    pub const DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;
    pub const PASSWORD_EXPIRED: u32 = 0x80_0000;
}

/// A user account as read from AD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryUser {
    pub guid: ObjectGuid,
    pub dn: String,
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub user_account_control: u32,
    /// msDS-User-Account-Control-Computed: the only place AD reports lockout and expiry as bits.
    pub computed_account_control: u32,
    /// FILETIME (100 ns since 1601); 0 = not locked.
    pub lockout_time: i64,
    /// FILETIME; 0 = must change at next logon.
    pub pwd_last_set: i64,
    /// FILETIME; 0 or i64::MAX = never.
    pub account_expires: i64,
    /// adminCount=1: the account is (or was) protected by AdminSDHolder.
    pub admin_count: bool,
    pub member_of: Vec<String>,
    /// msDS-ResultantPSO: DN of the fine-grained password policy that applies, if any.
    pub resultant_pso: Option<String>,
}

impl DirectoryUser {
    pub fn is_disabled(&self) -> bool {
        self.user_account_control & uac::ACCOUNTDISABLE != 0
    }

    pub fn is_locked(&self) -> bool {
        self.computed_account_control & uac::LOCKOUT != 0
    }

    pub fn must_change_password(&self) -> bool {
        self.pwd_last_set == 0
    }

    pub fn password_expired(&self) -> bool {
        self.computed_account_control & uac::PASSWORD_EXPIRED != 0
    }
}

/// A user's account with the SIDs (`S-1-5-…`) of every group it belongs to, nested ones
/// included: what a reset judges an account by, read together.
#[derive(Clone, Debug)]
pub struct Account {
    pub user: DirectoryUser,
    pub group_sids: Vec<String>,
}

/// A user's AD `manager`, as the user's own entry names it.
#[derive(Clone, Debug)]
pub struct ManagerLink {
    pub dn: String,
    /// When the value was set (Unix ms), from `msDS-ReplValueMetaData` where the DC returns it
    /// (Windows AD). Samba 4.17 returns none for this linked attribute: `None` there.
    pub changed_at_ms: Option<i64>,
    /// The manager's account; `None` when the DN names no user the service may see.
    pub user: Option<DirectoryUser>,
}

/// The answer of a bind as the user, from the data code AD puts in result 49 (invalidCredentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    Valid,
    /// 773: right password, but the user must change it at next logon.
    MustChange,
    /// 532: right password, but it has expired.
    Expired,
    /// 52e (or no such user).
    Wrong,
    /// 533
    Disabled,
    /// 701
    AccountExpired,
    /// 775
    Locked,
    /// 530 / 531: logon hours or workstation restrictions.
    Restricted,
}

impl PasswordCheck {
    /// Whether the password itself was right. 773 and 532 prove knowledge of the password, so such
    /// users may register and reset (that is what they need to do).
    pub fn password_was_right(self) -> bool {
        matches!(self, Self::Valid | Self::MustChange | Self::Expired)
    }
}

/// An account's recent wrong passwords as one domain controller counts them: `badPwdCount` and
/// `badPasswordTime` are kept per DC and never replicated, so they mean something only for the DC
/// that takes the next bind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BadPasswords {
    pub count: u32,
    /// FILETIME (100 ns since 1601) of the last wrong password; 0 = never.
    pub last_at: i64,
}

/// Decides, from what the DC that will take the bind counts and the user's policy, whether a
/// bind as the user may be tried.
pub type BindGuard<'a> = &'a (dyn Fn(BadPasswords, &PasswordPolicy) -> bool + Send + Sync);

/// What a guarded password check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardedCheck {
    /// The bind was made.
    Checked(PasswordCheck),
    /// The guard refused: no bind as the user was made, so the account's count is unchanged.
    Refused,
}

/// One write to an account, sent as a single LDAP modify so that it applies entirely or not at all.
#[derive(Debug, Default)]
pub struct AccountChange<'a> {
    /// Set `unicodePwd` (an administrative reset, not a change with the old password).
    pub new_password: Option<&'a SecretString>,
    /// Set `lockoutTime` to 0.
    pub unlock: bool,
    /// Set `pwdLastSet` to 0: the user must change the password at next logon.
    pub must_change: bool,
}

/// Which domain controller took a write. Replication to the others lags (tens of seconds), so the
/// rest of a flow should stay on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcId(pub String);

/// The state of one domain controller, for `check` and `/readyz`.
#[derive(Clone, Debug)]
pub struct DcStatus {
    pub url: String,
    pub result: Result<DcHealth, DirectoryError>,
}

#[derive(Clone, Debug)]
pub struct DcHealth {
    /// Time to get a bound connection (new or pooled) and read the rootDSE.
    pub latency: std::time::Duration,
    /// Whether the DC supports LDAP_SERVER_POLICY_HINTS, so resets through it respect password
    /// history and minimum age.
    pub policy_hints: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// rc 19 / 0000052D. `detail` is the DC's own reason, for the log and for a better message.
    #[error("the password does not meet the domain's password policy: {detail}")]
    PolicyViolation { detail: String },
    /// 00000056: the old password given to a password change was wrong.
    #[error("the current password is wrong")]
    WrongOldPassword,
    /// rc 53 / 0000001F on a password write, or rc 13 confidentialityRequired.
    #[error("the domain controller refused the operation on an unencrypted connection")]
    InsecureChannel,
    /// rc 50.
    #[error("the service account lacks the rights for this operation: {detail}")]
    InsufficientRights { detail: String },
    /// The URL is not encrypted and StartTLS is off: nothing was sent.
    #[error("{url} is unencrypted; use ldaps:// or StartTLS (directory.starttls = true)")]
    InsecureTransport { url: String },
    /// `directory.policy_hints = "required"` and this DC cannot apply history to a reset.
    #[error(
        "{url} does not support LDAP_SERVER_POLICY_HINTS, which directory.policy_hints = \"required\" demands"
    )]
    PolicyHintsUnsupported { url: String },
    #[error("TLS with {url} failed: {detail}")]
    Tls { url: String, detail: String },
    /// The service account's own bind failed: a configuration problem, not the user's.
    #[error("the service account could not bind to {url}: {detail}")]
    ServiceBind { url: String, detail: String },
    /// No domain controller answered in time, or a connection was lost.
    #[error("the directory is unavailable: {detail}")]
    Unavailable { detail: String },
    /// A write reached the DC (or may have), but its answer did not come back: the connection
    /// broke or the DC stopped answering. The DC may or may not have applied it; a modify is
    /// atomic, so it applied entirely or not at all.
    #[error("the directory did not confirm the write: {detail}")]
    WriteUnconfirmed { detail: String },
    #[error("the directory answered with result {rc}: {detail}")]
    Other { rc: u32, detail: String },
}

#[async_trait]
pub trait Directory: Send + Sync {
    /// Finds a user by sAMAccountName or userPrincipalName.
    async fn find_user(&self, login: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.find_user_by(login, false).await
    }

    /// Finds a user by sAMAccountName or userPrincipalName, and also by `mail` when `or_mail`
    /// (the helpdesk searches by mail; self-service does not, so a known address reveals nothing).
    /// Exactly one match or none: two accounts answering to one value are not returned.
    async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError>;

    /// [`Self::find_user`] with the SIDs of the account's groups. Over LDAP two searches: the DN
    /// by login, then one base-scope read of the attributes and `tokenGroups` (which AD computes
    /// only on a base-scope read).
    async fn find_account(&self, login: &str) -> Result<Option<Account>, DirectoryError> {
        let Some(user) = self.find_user(login).await? else {
            return Ok(None);
        };
        let group_sids = self.group_sids(&user).await?;
        Ok(Some(Account { user, group_sids }))
    }

    /// The user account at `dn` with its groups' SIDs, in one base-scope read: the second half
    /// of [`Self::find_account`], for the account a reset start for an unknown login reads in
    /// its place. `None` where no user matching `directory.user_filter` is (and from a
    /// directory that cannot read by DN).
    async fn account_at(&self, _dn: &str) -> Result<Option<Account>, DirectoryError> {
        Ok(None)
    }

    /// The account with `guid` as it is now, with its groups' SIDs, if it still answers to
    /// `sam_account_name` and is still one of the users self-service may find. Over LDAP one
    /// base-scope read (by GUID: the flow knows no DN).
    async fn account_of(
        &self,
        guid: &ObjectGuid,
        sam_account_name: &str,
    ) -> Result<Option<Account>, DirectoryError> {
        let Some(user) = self
            .find_user(sam_account_name)
            .await?
            .filter(|u| u.guid == *guid)
        else {
            return Ok(None);
        };
        let group_sids = self.group_sids(&user).await?;
        Ok(Some(Account { user, group_sids }))
    }

    /// Every enabled user matching `directory.user_filter` under the base DN and, when
    /// `group_dn` is given, in that group directly or through nested groups. Read a page at a
    /// time, so a domain of any size is read whole (a plain search stops at the DC's MaxPageSize).
    async fn users(&self, group_dn: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError>;

    /// Whether the user is a member of `group_dn`, directly or through nested groups
    /// (LDAP_MATCHING_RULE_IN_CHAIN, 1.2.840.113556.1.4.1941).
    async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError>;

    /// The user's AD `manager` and the account it names, if the attribute is set.
    async fn manager(&self, user: &DirectoryUser) -> Result<Option<ManagerLink>, DirectoryError>;

    /// The SIDs (`S-1-5-…`) of every group the user belongs to, nested ones included, from the
    /// constructed `tokenGroups` attribute.
    async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError>;

    /// Checks a user's current password by binding as them on a fresh connection (never a pooled
    /// one: a bind changes who the connection is).
    async fn check_password(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<PasswordCheck, DirectoryError>;

    /// [`Self::check_password`] that first reads the account's wrong passwords on the DC that
    /// will take the bind, and binds as the user only when `may_bind` allows it. A refusal costs
    /// the same connection and a bind that cannot succeed (see
    /// [`Self::decoy_password_check`]), so it takes as long as a wrong password.
    async fn check_password_guarded(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<GuardedCheck, DirectoryError>;

    /// The work of a guarded password check where there is no account to check (an unknown or
    /// disabled login): the same reads and a fresh connection to the DC the login routes to, and
    /// a bind as a name no account has, which fails without counting against any account.
    async fn decoy_password_check(&self, login: &str) -> Result<(), DirectoryError>;

    /// Applies `change` to the account in one LDAP modify.
    async fn write_account(
        &self,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, DirectoryError>;

    /// Changes the user's password knowing the current one, as AD's own change does: one modify
    /// that deletes the current `unicodePwd` value and adds the new one, on a pooled service
    /// connection (AD grants everyone the right to change a password they know). AD itself checks
    /// the current password, the history and the minimum age; a wrong current password is
    /// [`DirectoryError::WrongOldPassword`] and counts as a wrong password on that DC. So the
    /// account's wrong passwords are read first on the DC that will take the modify, and the
    /// modify is sent only when `may_change` allows it: `Ok(None)` when it did not, and nothing
    /// was sent.
    async fn change_password(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        may_change: BindGuard<'_>,
    ) -> Result<Option<DcId>, DirectoryError>;

    /// The password policy that applies to the user: the resultant fine-grained policy
    /// (msDS-ResultantPSO) if there is one, else the domain's. Cached briefly.
    async fn password_policy(&self, user: &DirectoryUser)
    -> Result<PasswordPolicy, DirectoryError>;

    /// The domain's own password policy, from the domain head object. Cached briefly.
    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError>;

    /// Connects to (or reuses a connection to) every configured DC and reports each.
    async fn probe(&self) -> Vec<DcStatus>;

    /// Whether AD itself holds a password reset to the password history (LDAP_SERVER_POLICY_HINTS
    /// on every DC that may take the write). Where it does not, the service keeps a history of
    /// its own ([`crate::domain::history`]).
    async fn enforces_password_history(&self) -> bool {
        false
    }
}
