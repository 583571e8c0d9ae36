//! Password reset and account unlock: start with a username, verify with the registered
//! methods, then write the new password (or only unlock). A start answers the same for every
//! username — unknown, unregistered and disabled users get a decoy flow that behaves like a
//! real one and can never succeed — so the API reveals no account's existence.

use std::time::Duration;

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Outcome};
use super::deps::{Client, Deps};
use super::directory::DirectoryUser;
use super::error::FlowError;
use super::notify::MailKind;
use super::policy::AccountNames;
use super::scope::{Exclusion, StandIn};
use super::secrets::{new_token, token_hash};
use super::store::{CodePurpose, FlowOwner, MethodKind, Person, ResetFlow};
use super::throttle::PerAddress;
use super::verification::Subject;

pub use super::policy::MAX_PASSWORD_CHARS;

mod passkey;
mod write;

pub(in crate::domain) use write::{broken_rules, reject_overlong};

#[derive(Clone, Debug)]
pub struct Started {
    pub flow: String,
    pub methods_required: usize,
    /// The methods this service offers — the same for every user, registered or not.
    pub methods: Vec<MethodKind>,
}

#[derive(Clone, Debug)]
pub struct Verified {
    /// Methods still to verify before the password can be set.
    pub remaining: usize,
}

/// Whose password is checked, owned so the check can run on a blocking thread.
pub(in crate::domain) struct Owner {
    sam_account_name: String,
    display_name: Option<String>,
    mail: Option<String>,
}

impl Owner {
    pub(in crate::domain) fn of(user: &DirectoryUser) -> Self {
        Self {
            sam_account_name: user.sam_account_name.clone(),
            display_name: user.display_name.clone(),
            mail: user.mail.clone(),
        }
    }

    fn names(&self) -> AccountNames<'_> {
        AccountNames {
            sam_account_name: &self.sam_account_name,
            display_name: self.display_name.as_deref(),
            mail: self.mail.as_deref(),
        }
    }
}

pub struct Reset<'a> {
    deps: &'a Deps,
}

impl<'a> Reset<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }

    fn offered_methods(&self) -> Vec<MethodKind> {
        let mut methods = vec![MethodKind::Totp];
        if self.deps.mailer.is_some() {
            methods.push(MethodKind::Email);
        }
        if self.deps.settings.passkeys.passkeys_enabled() {
            methods.push(MethodKind::Passkey);
        }
        if self.deps.settings.registration.recovery_codes {
            methods.push(MethodKind::RecoveryCode);
        }
        methods
    }

    pub async fn start(&self, login: &str, client: &Client) -> Result<Started, FlowError> {
        let d = self.deps;
        d.throttle
            .ip_limit(
                client,
                PerAddress::Starts,
                d.settings.throttle.ip_max_starts,
            )
            .await?;
        let typed = login.trim();
        if typed.is_empty() || typed.chars().count() > 256 {
            return Err(FlowError::InvalidInput(
                "Type your username (e.g. jdoe or jdoe@example.com).".to_owned(),
            ));
        }
        let login = typed.to_lowercase();
        let account = d
            .directory
            .find_account(crate::domain::signin::lookup_name(
                typed,
                &d.settings.signin.domains,
            ))
            .await?;
        // Every start finds one account, misses one and reads one with its groups, so the
        // directory does the same work for every login: a search that finds an entry costs the
        // test DC ~0.3 ms more than one that finds none, which made a known login's start 5 %
        // slower than an unknown one's when only the known one found anything
        // (tests/it/hostile.rs, p 0.001). A known login is followed by a search for a name nobody
        // has; an unknown one by the stand-in's, a real account an earlier start found, read with
        // its groups as a known login's own account is.
        let stand_in = match &account {
            Some(found) => {
                d.stand_in.remember(&found.user.sam_account_name);
                let _ = d.directory.find_account(StandIn::NOBODY).await;
                None
            }
            None => match d.stand_in.login() {
                Some(login) => d.directory.find_account(&login).await.ok().flatten(),
                None => d.directory.account_at("").await.ok().flatten(),
            },
        };
        let user = account.as_ref().map(|a| &a.user);
        // Judged for every login (an unknown one through the stand-in): out of scope and
        // protected accounts get a decoy, like unknown ones. The directory's work ends here;
        // what follows is the database's, in one transaction.
        let excluded = d
            .settings
            .eligibility
            .judge(d.directory.as_ref(), account.as_ref(), stand_in.as_ref())
            .await?
            .and_then(|s| s.excluded);
        let flow_id = d
            .in_one_step(self.open_flow(user, excluded, &login, client))
            .await?;
        Ok(Started {
            flow: flow_id,
            methods_required: d.settings.reset.methods_required,
            methods: self.offered_methods(),
        })
    }

    /// The flow of a start: a real one for an eligible, registered and unblocked user, else a
    /// decoy; audited. `excluded` says why the account may not use self-service, if it may not.
    async fn open_flow(
        &self,
        user: Option<&DirectoryUser>,
        excluded: Option<Exclusion>,
        login: &str,
        client: &Client,
    ) -> Result<String, FlowError> {
        let d = self.deps;
        // The registration is read for every login, known or not, so every start does the
        // same work and takes the same time.
        let lookup = user.map_or(ObjectGuid(uuid::Uuid::nil()), |u| u.guid);
        let registered = self.usable_methods(&lookup).await?;
        let (eligible, reason) = match (user, excluded) {
            (None, _) => (None, Some("unknown_user")),
            (Some(u), _) if u.is_disabled() => (None, Some("disabled")),
            (Some(_), Some(why)) => (None, Some(why.reason())),
            (Some(_), None) if registered.len() < d.settings.reset.methods_required => {
                (None, Some("not_registered"))
            }
            (Some(u), None) => (Some(u), None),
        };
        // Hashed for every login, so one without an account takes no longer: what the throttle
        // and the audit keep of a login that names none.
        let login_hash = d.keys.login_hash(login);
        let key = match eligible {
            Some(u) => Person::User(u.guid),
            None => Person::Login(login_hash.clone()),
        };
        // Read for every login, and told to nobody: a blocked account's start answers like any
        // other (its verifications fail like wrong codes), so no spelling of a name shows a
        // block. Only the audit notes it.
        let blocked = d.throttle.is_blocked(&key).await?;
        let reason = match (eligible, blocked) {
            (Some(_), true) => Some("user_blocked"),
            _ => reason,
        };

        let now = d.now();
        let (flow_id, id_hash) = new_token();
        d.flows
            .create_flow(&ResetFlow {
                id_hash,
                user: eligible.map(|u| u.guid),
                login: login.to_owned(),
                sam_account_name: eligible.map(|u| u.sam_account_name.clone()),
                methods_required: d.settings.reset.methods_required as i64,
                verified_totp_at: None,
                verified_email_at: None,
                verified_recovery_code_at: None,
                verified_passkey_at: None,
                failures: 0,
                created_at: now,
                expires_at: now + d.settings.reset.flow_lifetime,
                finished_at: None,
                dc: None,
                locale: client.locale,
            })
            .await?;
        let started = Audit {
            event: AuditKind::FlowStarted,
            outcome: if eligible.is_some() {
                Outcome::Success
            } else {
                Outcome::Decoy
            },
            user: user.map(|u| u.guid),
            sam_account_name: user.map(|u| u.sam_account_name.as_str()),
            method: None,
            reason,
        };
        match user {
            Some(_) => d.audit.record(client, started).await?,
            None => {
                d.audit
                    .typed_login(client, None, login_hash, started)
                    .await?
            }
        }
        Ok(flow_id)
    }

    /// The kinds of confirmed methods, not due for re-confirmation, that a user can verify with
    /// here: each kind once, as `reset.methods_required` counts kinds (two apps are one).
    async fn usable_methods(&self, user: &ObjectGuid) -> Result<Vec<MethodKind>, FlowError> {
        let offered = self.offered_methods();
        let mut kinds = Vec::new();
        for method in self.deps.current_methods(user).await? {
            if offered.contains(&method.kind) && !kinds.contains(&method.kind) {
                kinds.push(method.kind);
            }
        }
        // Read for every login (the nil GUID's for one without an account), so every start
        // does the same work.
        if !self.deps.passkeys.passkeys(user).await?.is_empty()
            && offered.contains(&MethodKind::Passkey)
        {
            kinds.push(MethodKind::Passkey);
        }
        if self.deps.recovery_codes_left(user).await? > 0 {
            kinds.push(MethodKind::RecoveryCode);
        }
        Ok(kinds)
    }

    async fn live(&self, flow: &str) -> Result<Subject, FlowError> {
        Subject::live(self.deps, token_hash(flow), CodePurpose::ResetEmail)
            .await?
            .ok_or(FlowError::FlowNotFound)
    }

    /// Mails a code to the user's confirmed address. A decoy does the same work, minus the mail.
    pub async fn send_email_code(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let live = self.live(flow).await?;
        live.send_code(self.deps, |code| MailKind::ResetCode { code }, client, None)
            .await
    }

    pub async fn verify(
        &self,
        flow: &str,
        method: MethodKind,
        code: &str,
        client: &Client,
    ) -> Result<Verified, FlowError> {
        let d = self.deps;
        let live = self.live(flow).await?;
        let verified = live.verify(d, method, code, client, None).await?;
        Ok(Verified {
            remaining: d
                .settings
                .reset
                .methods_required
                .saturating_sub(verified.len()),
        })
    }

    /// Whether the flow belongs to a real user who verified enough methods.
    fn is_verified(&self, live: &Subject) -> bool {
        let required = self
            .deps
            .settings
            .reset
            .methods_required
            .max(live.flow.methods_required as usize);
        matches!(live.flow.owner(), FlowOwner::User { .. })
            && live.flow.verified().len() >= required
    }

    /// The verified flow's user, re-read from AD: still the same account, and still allowed
    /// self-service. With whether it is protected (and so allow-listed).
    async fn verified_user(&self, live: &Subject) -> Result<(DirectoryUser, bool), FlowError> {
        let d = self.deps;
        let FlowOwner::User {
            guid,
            sam_account_name: sam,
        } = live.flow.owner()
        else {
            return Err(FlowError::NotVerified);
        };
        if !self.is_verified(live) {
            return Err(FlowError::NotVerified);
        }
        // By GUID, in one read with the groups: the account as it is now, whatever happened to
        // it since the start.
        let account = match d.directory.account_of(&guid, sam).await? {
            Some(account) if !account.user.is_disabled() => account,
            // Renamed, deleted, moved away or disabled since the flow started.
            _ => return Err(FlowError::FlowNotFound),
        };
        let user = account.user;
        let standing = d
            .settings
            .eligibility
            .standing_of(d.directory.as_ref(), &user, &account.group_sids)
            .await?;
        if standing.excluded.is_some() {
            // Taken out of scope, or made an administrator, since the flow started.
            return Err(FlowError::FlowNotFound);
        }
        Ok((user, standing.protected))
    }
}

/// How long a client should wait before trying again, for `Retry-After`.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
