//! Password reset and account unlock: start with a username, verify with the registered
//! methods, then write the new password (or only unlock). A start answers the same for every
//! username — unknown, unregistered and disabled users get a decoy flow that behaves like a
//! real one and can never succeed — so the API reveals no account's existence.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ObjectGuid;
use super::directory::{AccountChange, DirectoryUser};
use super::notify::MailKind;
use super::secrets::{new_token, token_hash};
use super::selfservice::{Audit, Client, Deps, FlowError, ms};
use super::store::{CodePurpose, MethodKind, ResetFlow};
use super::verification::Subject;

/// Longest password accepted (AD itself allows 256 characters in unicodePwd).
pub const MAX_PASSWORD_CHARS: usize = 256;

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
        d.ip_limit(client, "start", d.settings.ip_max_starts)
            .await?;
        let typed = login.trim();
        if typed.is_empty() || typed.chars().count() > 256 {
            return Err(FlowError::InvalidInput(
                "Type your username (e.g. jdoe or jdoe@example.com).".to_owned(),
            ));
        }
        let login = typed.to_lowercase();
        let user = d.directory.find_user(typed).await?;
        // The registration is read for every login, known or not, so every start does the
        // same work and takes the same time.
        let lookup = user
            .as_ref()
            .map_or(ObjectGuid(uuid::Uuid::nil()), |u| u.guid);
        let registered = self.usable_methods(&lookup).await?;
        let (eligible, reason) = match &user {
            None => (None, Some("unknown_user")),
            Some(u) if u.is_disabled() => (None, Some("disabled")),
            Some(_) if registered.len() < d.settings.methods_required => {
                (None, Some("not_registered"))
            }
            Some(u) => (Some(u), None),
        };
        let key = match eligible {
            Some(u) => format!("user:{}", u.guid),
            None => format!("login:{login}"),
        };
        d.check_block(&key).await?;

        let now = d.now_ms();
        let (flow_id, id_hash) = new_token();
        d.flows
            .create_flow(&ResetFlow {
                id_hash,
                user: eligible.map(|u| u.guid),
                login: login.clone(),
                sam_account_name: eligible.map(|u| u.sam_account_name.clone()),
                methods_required: d.settings.methods_required as i64,
                verified_totp_at_ms: None,
                verified_email_at_ms: None,
                failures: 0,
                created_at_ms: now,
                expires_at_ms: now + ms(d.settings.flow_lifetime),
                finished_at_ms: None,
                dc: None,
                locale: client.locale.clone(),
            })
            .await?;
        d.audit(
            client,
            Audit {
                event: "flow_started",
                outcome: if eligible.is_some() {
                    "success"
                } else {
                    "decoy"
                },
                user: user.as_ref().map(|u| u.guid),
                sam_account_name: Some(user.as_ref().map_or(&login, |u| &u.sam_account_name)),
                method: None,
                reason,
            },
        )
        .await?;
        Ok(Started {
            flow: flow_id,
            methods_required: d.settings.methods_required,
            methods: self.offered_methods(),
        })
    }

    /// Confirmed methods a user can verify with here.
    async fn usable_methods(&self, user: &ObjectGuid) -> Result<Vec<MethodKind>, FlowError> {
        let offered = self.offered_methods();
        Ok(self
            .deps
            .registrations
            .methods(user)
            .await?
            .into_iter()
            .filter(|m| m.confirmed_at_ms.is_some() && offered.contains(&m.kind))
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
            remaining: d.settings.methods_required.saturating_sub(verified.len()),
        })
    }

    /// The verified flow's user, re-read from AD and still the same account.
    async fn verified_user(&self, live: &Subject) -> Result<DirectoryUser, FlowError> {
        let d = self.deps;
        let verified = live.flow.verified().len();
        let (Some(guid), Some(sam)) = (&live.flow.user, &live.flow.sam_account_name) else {
            return Err(FlowError::NotVerified);
        };
        if verified
            < d.settings
                .methods_required
                .max(live.flow.methods_required as usize)
        {
            return Err(FlowError::NotVerified);
        }
        match d.directory.find_user(sam).await? {
            Some(user) if user.guid == *guid && !user.is_disabled() => Ok(user),
            // Renamed, deleted, replaced or disabled since the flow started.
            _ => Err(FlowError::FlowNotFound),
        }
    }

    pub async fn set_password(
        &self,
        flow: &str,
        new_password: &SecretString,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let length = new_password.expose_secret().chars().count();
        if length == 0 {
            return Err(FlowError::PasswordRejected(
                "Type a new password.".to_owned(),
            ));
        }
        if length > MAX_PASSWORD_CHARS {
            return Err(FlowError::PasswordRejected(format!(
                "A password can have at most {MAX_PASSWORD_CHARS} characters."
            )));
        }
        let live = self.live(flow).await?;
        let user = self.verified_user(&live).await?;
        let change = AccountChange {
            new_password: Some(new_password),
            unlock: d.settings.unlock_on_reset,
            must_change: false,
        };
        match d.directory.write_account(&user, &change).await {
            Ok(dc) => {
                d.flows.set_flow_dc(&live.id_hash, &dc.0).await?;
                self.finish(
                    &live,
                    &user,
                    "password_reset",
                    MailKind::PasswordReset,
                    client,
                )
                .await
            }
            Err(e) => {
                let reason = e.to_string();
                d.audit(
                    client,
                    Audit {
                        event: "password_reset",
                        outcome: "failure",
                        user: Some(user.guid),
                        sam_account_name: Some(&user.sam_account_name),
                        method: None,
                        reason: Some(&reason),
                    },
                )
                .await?;
                // The flow stays open: the user may try another password.
                Err(e.into())
            }
        }
    }

    pub async fn unlock(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let d = self.deps;
        let live = self.live(flow).await?;
        let user = self.verified_user(&live).await?;
        let change = AccountChange {
            unlock: true,
            ..AccountChange::default()
        };
        d.directory.write_account(&user, &change).await?;
        self.finish(&live, &user, "unlock", MailKind::AccountUnlocked, client)
            .await
    }

    async fn finish(
        &self,
        live: &Subject,
        user: &DirectoryUser,
        event: &str,
        notification: MailKind,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let first = d.flows.finish_flow(&live.id_hash, d.now_ms()).await?;
        d.audit(
            client,
            Audit {
                event,
                outcome: "success",
                user: Some(user.guid),
                sam_account_name: Some(&user.sam_account_name),
                method: None,
                reason: (!first).then_some("concurrent_request"),
            },
        )
        .await?;
        let address = d.confirmed_email(&user.guid).await?;
        d.notify(
            address.as_deref(),
            user.display_name.as_deref(),
            &live.flow.locale,
            notification,
        )
        .await;
        Ok(())
    }
}

/// How long a client should wait before trying again, for `Retry-After`.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
