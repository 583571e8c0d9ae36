//! Password reset and account unlock: start with a username, verify with the registered
//! methods, then write the new password (or only unlock). A start answers the same for every
//! username — unknown, unregistered and disabled users get a decoy flow that behaves like a
//! real one and can never succeed — so the API reveals no account's existence.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Outcome};
use super::deps::{Client, Deps};
use super::directory::{AccountChange, DcId, DirectoryError, DirectoryUser};
use super::error::FlowError;
use super::notify::MailKind;
use super::policy::{AccountNames, PasswordPolicy, Requirement, Violation, after_write};
use super::scope::StandIn;
use super::secrets::{new_token, token_hash};
use super::store::{CodePurpose, FlowOwner, MethodKind, Person, ResetFlow};
use super::throttle::PerAddress;
use super::verification::Subject;

pub use super::policy::MAX_PASSWORD_CHARS;

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
struct Owner {
    sam_account_name: String,
    display_name: Option<String>,
    mail: Option<String>,
}

impl Owner {
    fn of(user: &DirectoryUser) -> Self {
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
        let user = d.directory.find_user(typed).await?;
        // Every start finds one account and misses one, then judges an account that exists, so
        // the directory does the same work for every login: a found entry (with its constructed
        // attributes) and tokenGroups of a real account each cost the test DC ~0.3 ms more than
        // a miss and the rootDSE, which made an unknown login's start 20% faster
        // (tests/it/hostile.rs). A known login is followed by a search for a name nobody has, an
        // unknown one by a search for the stand-in, a real account an earlier start found.
        let stand_in = match &user {
            Some(found) => {
                d.stand_in.remember(&found.sam_account_name);
                let _ = d.directory.find_user(StandIn::NOBODY).await;
                None
            }
            None => d
                .directory
                .find_user(&d.stand_in.login())
                .await
                .ok()
                .flatten(),
        };
        // The registration is read for every login, known or not, so every start does the
        // same work and takes the same time.
        let lookup = user
            .as_ref()
            .map_or(ObjectGuid(uuid::Uuid::nil()), |u| u.guid);
        let registered = self.usable_methods(&lookup).await?;
        // Judged for every login too (an unknown one through the stand-in): out of scope and
        // protected accounts get a decoy, like unknown ones.
        let excluded = d
            .settings
            .eligibility
            .judge(d.directory.as_ref(), user.as_ref(), stand_in.as_ref())
            .await?
            .and_then(|s| s.excluded);
        let (eligible, reason) = match (&user, excluded) {
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
        let login_hash = d.keys.login_hash(&login);
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
                login: login.clone(),
                sam_account_name: eligible.map(|u| u.sam_account_name.clone()),
                methods_required: d.settings.reset.methods_required as i64,
                verified_totp_at: None,
                verified_email_at: None,
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
            user: user.as_ref().map(|u| u.guid),
            sam_account_name: user.as_ref().map(|u| u.sam_account_name.as_str()),
            method: None,
            reason,
        };
        match &user {
            Some(_) => d.audit.record(client, started).await?,
            None => {
                d.audit
                    .typed_login(client, None, login_hash, started)
                    .await?
            }
        }
        Ok(Started {
            flow: flow_id,
            methods_required: d.settings.reset.methods_required,
            methods: self.offered_methods(),
        })
    }

    /// Confirmed methods, not due for re-confirmation, that a user can verify with here.
    async fn usable_methods(&self, user: &ObjectGuid) -> Result<Vec<MethodKind>, FlowError> {
        let offered = self.offered_methods();
        Ok(self
            .deps
            .current_methods(user)
            .await?
            .into_iter()
            .filter(|m| offered.contains(&m.kind))
            .map(|m| m.kind)
            .collect())
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
        let user = match d.directory.find_user(sam).await? {
            Some(user) if user.guid == guid && !user.is_disabled() => user,
            // Renamed, deleted, replaced or disabled since the flow started.
            _ => return Err(FlowError::FlowNotFound),
        };
        let standing = d
            .settings
            .eligibility
            .standing(d.directory.as_ref(), &user)
            .await?;
        if standing.excluded.is_some() {
            // Taken out of scope, or made an administrator, since the flow started.
            return Err(FlowError::FlowNotFound);
        }
        Ok((user, standing.protected))
    }

    /// The policy and the names a new password is judged by in this flow. The user's own only
    /// once verified: before that, and always in a decoy, the domain's policy and the login as
    /// typed, so the answer tells nobody whether the account exists or has its own policy.
    async fn password_context(&self, live: &Subject) -> Result<(PasswordPolicy, Owner), FlowError> {
        let d = self.deps;
        if self.is_verified(live) {
            let (user, _) = self.verified_user(live).await?;
            let policy = d.directory.password_policy(&user).await?;
            return Ok((policy, Owner::of(&user)));
        }
        let login = &live.flow.login;
        let owner = Owner {
            sam_account_name: login.split('@').next().unwrap_or(login).to_owned(),
            display_name: None,
            mail: None,
        };
        Ok((d.directory.domain_password_policy().await?, owner))
    }

    /// The rules a new password must meet in this flow (see `password_context` for whose).
    pub async fn password_policy(&self, flow: &str) -> Result<PasswordPolicy, FlowError> {
        let live = self.live(flow).await?;
        Ok(self.password_context(&live).await?.0)
    }

    /// The rules a new password must meet in this flow, to show before one is typed.
    pub async fn requirements(&self, flow: &str) -> Result<Vec<Requirement>, FlowError> {
        let policy = self.password_policy(flow).await?;
        Ok(self.deps.settings.password_rules.requirements(&policy))
    }

    /// The rules `password` breaks in this flow, without writing anything.
    pub async fn check_password(
        &self,
        flow: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<Vec<Violation>, FlowError> {
        let d = self.deps;
        // Each check may cost a directory lookup and zxcvbn's CPU: limited like verifications.
        d.throttle
            .ip_limit(
                client,
                PerAddress::Verifications,
                d.settings.throttle.ip_max_verifications,
            )
            .await?;
        reject_overlong(password)?;
        let live = self.live(flow).await?;
        let (policy, owner) = self.password_context(&live).await?;
        Ok(self.broken_rules(password, owner, policy).await)
    }

    /// Runs the checks on a blocking thread: zxcvbn takes milliseconds of CPU.
    async fn broken_rules(
        &self,
        password: &SecretString,
        owner: Owner,
        policy: PasswordPolicy,
    ) -> Vec<Violation> {
        let rules = self.deps.settings.password_rules.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            rules.check(password.expose_secret(), owner.names(), &policy)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn audit_refusal(
        &self,
        user: &DirectoryUser,
        reason: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        self.deps
            .audit
            .record(
                client,
                Audit {
                    event: AuditKind::PasswordReset,
                    outcome: Outcome::Failure,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(reason),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn set_password(
        &self,
        flow: &str,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        // Bounds first, before any lookup or zxcvbn (which is superlinear in the length).
        reject_overlong(new_password)?;
        let live = self.live(flow).await?;
        let result = self.write_password(&live, new_password, client).await;
        self.audit_directory_failure(&live, AuditKind::PasswordReset, &result, client)
            .await;
        result
    }

    async fn write_password(
        &self,
        live: &Subject,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let (user, protected) = self.verified_user(live).await?;
        let policy = d.directory.password_policy(&user).await?;
        // The flow stays open after a refusal: the user may try another password.
        let broken = self
            .broken_rules(new_password, Owner::of(&user), policy.clone())
            .await;
        if !broken.is_empty() {
            let refused = FlowError::PasswordRejected(broken);
            self.audit_refusal(&user, &refused.to_string(), client)
                .await?;
            return Err(refused);
        }
        let change = AccountChange {
            new_password: Some(new_password),
            unlock: d.settings.reset.unlock_on_reset,
            must_change: false,
        };
        match self.claim_and_write(live, &user, &change).await {
            Ok(dc) => {
                // Side by side, not one after another: a database that died after the write
                // costs each of these its own acquire timeout, and the user would wait for all.
                let record_dc = async {
                    if let Err(e) = d.flows.set_flow_dc(&live.id_hash, &dc.0).await {
                        tracing::warn!(error = %e, "the DC that took the reset is not recorded");
                    }
                };
                tokio::join!(
                    record_dc,
                    super::enrollment::end_sessions(d, &user),
                    self.finish(
                        live,
                        &user,
                        AuditKind::PasswordReset,
                        MailKind::PasswordReset,
                        client,
                    ),
                );
                if protected {
                    self.tell_admins(live, &user, client).await;
                }
                Ok(())
            }
            // Every rule that can be checked in advance passed: what AD still refuses for is
            // history or minimum age.
            Err(FlowError::Directory(e @ DirectoryError::PolicyViolation { .. })) => {
                self.audit_refusal(&user, &e.to_string(), client).await?;
                Err(FlowError::PasswordRejected(vec![after_write(&policy)]))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn unlock(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let live = self.live(flow).await?;
        let result = self.write_unlock(&live, client).await;
        self.audit_directory_failure(&live, AuditKind::Unlock, &result, client)
            .await;
        result
    }

    async fn write_unlock(&self, live: &Subject, client: &Client) -> Result<(), FlowError> {
        let (user, _) = self.verified_user(live).await?;
        let change = AccountChange {
            unlock: true,
            ..AccountChange::default()
        };
        self.claim_and_write(live, &user, &change).await?;
        self.finish(
            live,
            &user,
            AuditKind::Unlock,
            MailKind::AccountUnlocked,
            client,
        )
        .await;
        Ok(())
    }

    /// Writes `change` with the flow claimed first. The claim (the flow marked finished, which
    /// only one request can do) keeps the flow single use however many requests race for it, and
    /// proves the database takes writes before AD is touched: a database that is down or
    /// read-only stops the step before it acts, not after, when the change could no longer be
    /// recorded. A write that failed gives the flow back for another attempt.
    async fn claim_and_write(
        &self,
        live: &Subject,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, FlowError> {
        let d = self.deps;
        let claimed_at = d.now();
        if !d.flows.finish_flow(&live.id_hash, claimed_at).await? {
            // Another request of this flow got there first.
            return Err(FlowError::FlowNotFound);
        }
        match d.directory.write_account(user, change).await {
            Ok(dc) => Ok(dc),
            Err(e) => {
                if let Err(reopen) = d.flows.reopen_flow(&live.id_hash, claimed_at).await {
                    tracing::warn!(
                        error = %reopen,
                        "the flow stays finished after a failed write; the user must start again"
                    );
                }
                Err(e.into())
            }
        }
    }

    /// Puts on record a step of a verified flow that the directory failed, before or during the
    /// write, so every attempt has its audit row. An unconfirmed write is `unknown`: AD may have
    /// taken it. The user still gets the directory's error if the row cannot be written (it is
    /// logged then, see `Auditor::as_actor`).
    async fn audit_directory_failure(
        &self,
        live: &Subject,
        event: AuditKind,
        result: &Result<(), FlowError>,
        client: &Client,
    ) {
        let Err(FlowError::Directory(e)) = result else {
            return;
        };
        let outcome = match e {
            DirectoryError::WriteUnconfirmed { .. } => Outcome::Unknown,
            _ => Outcome::Failure,
        };
        let reason = e.to_string();
        let failed = Audit {
            event,
            outcome,
            user: live.flow.user,
            sam_account_name: live.flow.sam_account_name.as_deref(),
            method: None,
            reason: Some(&reason),
        };
        self.deps.audit.done(client, None, failed).await;
    }

    /// Records a change AD has made, and tells the user. The change stands whatever happens here,
    /// so a database failure is logged rather than reported: the user hears that it worked.
    async fn finish(
        &self,
        live: &Subject,
        user: &DirectoryUser,
        event: AuditKind,
        notification: MailKind,
        client: &Client,
    ) {
        let d = self.deps;
        let done = Audit {
            event,
            outcome: Outcome::Success,
            user: Some(user.guid),
            sam_account_name: Some(&user.sam_account_name),
            method: None,
            reason: None,
        };
        tokio::join!(
            d.audit.done(client, None, done),
            d.notifier
                .notify_owner(client, user, None, live.flow.locale, notification),
        );
    }

    /// A protected account reset its own password (it is allow-listed, or it would not have got
    /// here): the administrators hear of each one, in the language of the flow.
    async fn tell_admins(&self, live: &Subject, user: &DirectoryUser, client: &Client) {
        let d = self.deps;
        for address in &d.settings.admin_addresses {
            let kind = MailKind::ProtectedAccountReset {
                account: user.sam_account_name.clone(),
            };
            d.notifier
                .notify(
                    client,
                    (user.guid, &user.sam_account_name),
                    Some(address),
                    None,
                    live.flow.locale,
                    kind,
                )
                .await;
        }
    }
}

/// How long a client should wait before trying again, for `Retry-After`.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Refuses a password longer than AD accepts, before any other work.
fn reject_overlong(password: &SecretString) -> Result<(), FlowError> {
    if password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
        return Err(FlowError::PasswordRejected(vec![Violation::TooLong {
            max: MAX_PASSWORD_CHARS,
        }]));
    }
    Ok(())
}
