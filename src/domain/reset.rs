//! Password reset and account unlock: start with a username, verify with the registered
//! methods, then write the new password (or only unlock). A start answers the same for every
//! username — unknown, unregistered and disabled users get a decoy flow that behaves like a
//! real one and can never succeed — so the API reveals no account's existence.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ObjectGuid;
use super::directory::{AccountChange, DirectoryUser};
use super::notify::MailKind;
use super::secrets::{self, new_token, normalise_code, token_hash};
use super::selfservice::{Audit, Client, Deps, FlowError, ms};
use super::store::{CodePurpose, MethodKind, PendingCode, ResetFlow};
use super::totp;

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

/// A flow that may continue, with the user it is for (if real).
struct Live {
    flow: ResetFlow,
    id_hash: Vec<u8>,
}

impl Live {
    /// Throttle key for the person behind the flow: the account, or the login of a decoy.
    fn user_key(&self) -> String {
        match &self.flow.user {
            Some(guid) => format!("user:{guid}"),
            None => format!("login:{}", self.flow.login),
        }
    }
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

    async fn live(&self, flow: &str) -> Result<Live, FlowError> {
        let d = self.deps;
        let id_hash = token_hash(flow);
        match d.flows.flow(&id_hash).await? {
            Some(f)
                if f.finished_at_ms.is_none()
                    && f.expires_at_ms > d.now_ms()
                    && f.failures < d.settings.flow_max_failures =>
            {
                Ok(Live { flow: f, id_hash })
            }
            _ => Err(FlowError::FlowNotFound),
        }
    }

    /// Mails a code to the user's confirmed address. A decoy does the same work, minus the mail.
    pub async fn send_email_code(&self, flow: &str, client: &Client) -> Result<(), FlowError> {
        let d = self.deps;
        let live = self.live(flow).await?;
        let Some(mailer) = &d.mailer else {
            return Err(FlowError::MailUnavailable);
        };
        let now = d.now_ms();
        let sent = d
            .throttle
            .hit(
                &format!("{}:mail", live.user_key()),
                now,
                now - ms(d.settings.email_window),
            )
            .await?;
        if sent > d.settings.email_max_sends {
            d.audit_throttled(
                client,
                live.flow.user.zip(live.flow.sam_account_name.as_deref()),
                "email_sends",
            )
            .await?;
            return Err(FlowError::Throttled {
                retry_after: d.settings.email_window,
            });
        }
        let address = match &live.flow.user {
            Some(guid) => d.confirmed_email(guid).await?,
            None => None,
        };
        let code = secrets::new_email_code();
        let purpose = CodePurpose::ResetEmail;
        d.codes
            .put_code(&PendingCode {
                purpose,
                subject: live.id_hash.clone(),
                code_hash: d.keys.code_hash(purpose.as_str(), &live.id_hash, &code),
                address: address.clone().unwrap_or_default(),
                created_at_ms: now,
                expires_at_ms: now + ms(d.settings.code_lifetime),
            })
            .await?;
        if let Some(to) = address {
            let mail = super::notify::Mail {
                to,
                display_name: None,
                locale: live.flow.locale.clone(),
                kind: MailKind::ResetCode {
                    code: SecretString::from(code.to_string()),
                },
            };
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(error = %e, "reset code not sent");
                return Err(FlowError::MailUnavailable);
            }
        }
        d.audit(
            client,
            Audit {
                event: "code_sent",
                outcome: if live.flow.user.is_some() {
                    "success"
                } else {
                    "decoy"
                },
                user: live.flow.user,
                sam_account_name: Some(
                    live.flow
                        .sam_account_name
                        .as_deref()
                        .unwrap_or(&live.flow.login),
                ),
                method: Some(MethodKind::Email),
                reason: None,
            },
        )
        .await?;
        Ok(())
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
        d.ip_limit(client, "verify", d.settings.ip_max_verifications)
            .await?;
        d.check_block(&live.user_key()).await?;

        let accepted = match method {
            MethodKind::Totp => self.check_totp(&live, code).await?,
            MethodKind::Email => self.check_email_code(&live, code).await?,
        };
        let sam = live
            .flow
            .sam_account_name
            .clone()
            .unwrap_or_else(|| live.flow.login.clone());
        if !accepted {
            let failures = d.flows.add_flow_failure(&live.id_hash).await?;
            d.audit(
                client,
                Audit {
                    event: "verification",
                    outcome: "failure",
                    user: live.flow.user,
                    sam_account_name: Some(&sam),
                    method: Some(method),
                    reason: Some(if live.flow.user.is_some() {
                        "wrong_code"
                    } else {
                        "decoy"
                    }),
                },
            )
            .await?;
            d.user_failure(&live.user_key(), client).await?;
            return Err(FlowError::InvalidCode {
                remaining_attempts: (d.settings.flow_max_failures - failures).max(0),
            });
        }
        d.flows
            .mark_verified(&live.id_hash, method, d.now_ms())
            .await?;
        d.audit(
            client,
            Audit {
                event: "verification",
                outcome: "success",
                user: live.flow.user,
                sam_account_name: Some(&sam),
                method: Some(method),
                reason: None,
            },
        )
        .await?;
        let mut verified = live.flow.verified();
        if !verified.contains(&method) {
            verified.push(method);
        }
        Ok(Verified {
            remaining: d.settings.methods_required.saturating_sub(verified.len()),
        })
    }

    async fn check_totp(&self, live: &Live, code: &str) -> Result<bool, FlowError> {
        let d = self.deps;
        let now_secs = u64::try_from(d.now_ms() / 1000).unwrap_or(0);
        let registered = match &live.flow.user {
            Some(guid) => d
                .registrations
                .methods(guid)
                .await?
                .into_iter()
                .find(|m| m.kind == MethodKind::Totp && m.confirmed_at_ms.is_some())
                .and_then(|m| m.secret_sealed)
                .and_then(|sealed| d.keys.open(&sealed, guid.0.as_bytes()))
                .map(|secret| (*guid, secret)),
            None => None,
        };
        // A decoy (or a user without TOTP) is checked against a random secret: same work, no match.
        let secret = registered
            .as_ref()
            .map_or_else(|| totp::new_secret().to_vec(), |(_, s)| s.to_vec());
        let step = normalise_code(code, totp::DIGITS)
            .and_then(|c| totp::matching_step(&secret, &c, now_secs));
        match (step, registered) {
            // The step is spent atomically: a replayed code, or the same code racing on two
            // instances, is refused.
            (Some(step), Some((guid, _))) => {
                Ok(d.registrations.advance_totp_step(&guid, step).await?)
            }
            _ => Ok(false),
        }
    }

    async fn check_email_code(&self, live: &Live, code: &str) -> Result<bool, FlowError> {
        let d = self.deps;
        let purpose = CodePurpose::ResetEmail;
        let pending = d.codes.code(purpose, &live.id_hash).await?;
        let matches = match (&pending, normalise_code(code, 8)) {
            (Some(p), Some(code)) => {
                p.expires_at_ms > d.now_ms()
                    && d.keys
                        .code_matches(purpose.as_str(), &live.id_hash, &code, &p.code_hash)
            }
            _ => false,
        };
        // Decoys store a code too, but for no address: it was never sent, so never matched.
        match pending {
            Some(p) if matches && !p.address.is_empty() && live.flow.user.is_some() => Ok(d
                .codes
                .take_code(purpose, &live.id_hash, &p.code_hash)
                .await?),
            _ => Ok(false),
        }
    }

    /// The verified flow's user, re-read from AD and still the same account.
    async fn verified_user(&self, live: &Live) -> Result<DirectoryUser, FlowError> {
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
        live: &Live,
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
