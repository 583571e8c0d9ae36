//! Proving who someone is with a registered method: the code checks, their failure accounting
//! and their audit rows. Shared by self-service reset flows and by helpdesk operators verifying
//! a caller, so both follow the same rules: a TOTP step is spent once, emailed codes are single
//! use and compared in constant time, wrong codes end the verification and block the user.

use secrecy::SecretString;

use super::ObjectGuid;
use super::notify::{Mail, MailKind};
use super::secrets::{self, normalise_code};
use super::selfservice::{Audit, Client, Deps, FlowError, ms};
use super::store::{CodePurpose, EnrolledMethod, MethodKind, PendingCode, ResetFlow};
use super::totp;

/// A verification in progress (a reset flow, or an operator's check of a caller), known to be
/// unfinished, unexpired and not ended by wrong codes.
pub struct Subject {
    pub flow: ResetFlow,
    pub id_hash: Vec<u8>,
    /// What emailed codes for this verification are for.
    pub purpose: CodePurpose,
    /// Where emailed codes go instead of the confirmed address (the helpdesk's check of the
    /// account's AD `mail`); `None`: the confirmed address.
    pub address: Option<String>,
}

impl Subject {
    /// The verification stored under `id_hash`, if it may continue.
    pub async fn live(
        d: &Deps,
        id_hash: Vec<u8>,
        purpose: CodePurpose,
    ) -> Result<Option<Subject>, FlowError> {
        Ok(d.flows.flow(&id_hash).await?.and_then(|flow| {
            (flow.finished_at_ms.is_none()
                && flow.expires_at_ms > d.now_ms()
                && flow.failures < d.settings.flow_max_failures)
                .then_some(Subject {
                    flow,
                    id_hash,
                    purpose,
                    address: None,
                })
        }))
    }

    /// Throttle key for the person being verified: the account, or the login of a decoy.
    pub fn user_key(&self) -> String {
        match &self.flow.user {
            Some(guid) => format!("user:{guid}"),
            None => format!("login:{}", self.flow.login),
        }
    }

    fn sam(&self) -> &str {
        self.flow
            .sam_account_name
            .as_deref()
            .unwrap_or(&self.flow.login)
    }

    /// The user's confirmed method of `kind`, if it may be used here. A self-service reset
    /// takes it only while it is not due for re-confirmation (`registration.reconfirm_days`);
    /// a helpdesk operator, who judges the caller too, takes any confirmed one.
    async fn method(
        &self,
        d: &Deps,
        kind: MethodKind,
    ) -> Result<Option<EnrolledMethod>, FlowError> {
        // A decoy reads the registrations too, of the nil GUID (no account's), so its checks
        // take as long as a real user's: without that read a wrong code took a decoy 9% less
        // time (tests/it/hostile.rs).
        let guid = self.flow.user.unwrap_or(ObjectGuid(uuid::Uuid::nil()));
        let methods = if self.purpose == CodePurpose::ResetEmail {
            d.current_methods(&guid).await?
        } else {
            d.registrations.methods(&guid).await?
        };
        Ok(methods
            .into_iter()
            .find(|m| m.kind == kind && m.confirmed_at_ms.is_some())
            .filter(|_| self.flow.user.is_some()))
    }

    /// Mails a code to the user's confirmed address, as `kind` says. A decoy does the same work,
    /// minus the mail.
    pub async fn send_code(
        &self,
        d: &Deps,
        kind: fn(SecretString) -> MailKind,
        client: &Client,
        actor: Option<&str>,
    ) -> Result<(), FlowError> {
        let Some(mailer) = &d.mailer else {
            return Err(FlowError::MailUnavailable);
        };
        let now = d.now_ms();
        let sent = d
            .throttle
            .hit(
                &format!("{}:mail", self.user_key()),
                now,
                now - ms(d.settings.email_window),
            )
            .await?;
        if sent > d.settings.email_max_sends {
            d.audit_throttled(client, self.flow.user.zip(Some(self.sam())), "email_sends")
                .await?;
            return Err(FlowError::Throttled {
                retry_after: d.settings.email_window,
            });
        }
        let address = match &self.address {
            Some(to) => Some(to.clone()),
            None => self
                .method(d, MethodKind::Email)
                .await?
                .and_then(|m| m.address),
        };
        let code = secrets::new_email_code();
        let pending = PendingCode {
            purpose: self.purpose,
            subject: self.id_hash.clone(),
            code_hash: d
                .keys
                .code_hash(self.purpose.as_str(), &self.id_hash, &code),
            address: address.clone().unwrap_or_default(),
            created_at_ms: now,
            expires_at_ms: now + ms(d.settings.code_lifetime),
        };
        d.codes.put_code(&pending).await?;
        if let Some(to) = address {
            let mail = Mail {
                to,
                display_name: None,
                locale: self.flow.locale.clone(),
                kind: kind(SecretString::from(code.to_string())),
            };
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(error = %e, "verification code not sent");
                let who = (self.flow.user, self.sam());
                d.code_not_sent(&pending, who, client, actor).await;
                return Err(FlowError::MailUnavailable);
            }
        }
        d.audit_as(
            client,
            actor,
            Audit {
                event: "code_sent",
                outcome: if self.flow.user.is_some() {
                    "success"
                } else {
                    "decoy"
                },
                user: self.flow.user,
                sam_account_name: Some(self.sam()),
                method: Some(MethodKind::Email),
                reason: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Checks a typed code. A wrong one counts against the verification and the user (and is
    /// audited); a right one is recorded. Returns every method verified so far.
    pub async fn verify(
        &self,
        d: &Deps,
        method: MethodKind,
        code: &str,
        client: &Client,
        actor: Option<&str>,
    ) -> Result<Vec<MethodKind>, FlowError> {
        // Operators checking callers have their own limits (helpdesk.operator_max_actions), not
        // the per-address one of the users they help.
        if self.purpose != CodePurpose::HelpdeskEmail {
            d.ip_limit(client, "verify", d.settings.ip_max_verifications)
                .await?;
        }
        d.check_block(&self.user_key()).await?;

        let accepted = match method {
            MethodKind::Totp => self.check_totp(d, code).await?,
            MethodKind::Email => self.check_email_code(d, code).await?,
        };
        if !accepted {
            let failures = d.flows.add_flow_failure(&self.id_hash).await?;
            d.audit_as(
                client,
                actor,
                Audit {
                    event: "verification",
                    outcome: "failure",
                    user: self.flow.user,
                    sam_account_name: Some(self.sam()),
                    method: Some(method),
                    reason: Some(if self.flow.user.is_some() {
                        "wrong_code"
                    } else {
                        "decoy"
                    }),
                },
            )
            .await?;
            d.user_failure(&self.user_key(), client).await?;
            return Err(FlowError::InvalidCode {
                remaining_attempts: (d.settings.flow_max_failures - failures).max(0),
            });
        }
        d.flows
            .mark_verified(&self.id_hash, method, d.now_ms())
            .await?;
        d.audit_as(
            client,
            actor,
            Audit {
                event: "verification",
                outcome: "success",
                user: self.flow.user,
                sam_account_name: Some(self.sam()),
                method: Some(method),
                reason: None,
            },
        )
        .await?;
        let mut verified = self.flow.verified();
        if !verified.contains(&method) {
            verified.push(method);
        }
        Ok(verified)
    }

    async fn check_totp(&self, d: &Deps, code: &str) -> Result<bool, FlowError> {
        let method = self.method(d, MethodKind::Totp).await?;
        let registered = match (&self.flow.user, method) {
            (Some(guid), Some(method)) => method
                .secret_sealed
                .and_then(|sealed| d.keys.open(&sealed, guid.0.as_bytes()))
                .map(|secret| (*guid, secret)),
            _ => None,
        };
        // A decoy (or a user without TOTP) is checked against a random secret, sealed where a
        // registered one is opened (~80 µs in a debug build): same work, no match.
        let secret = registered.as_ref().map_or_else(
            || {
                let secret = totp::new_secret();
                d.keys.seal(&secret, uuid::Uuid::nil().as_bytes());
                secret.to_vec()
            },
            |(_, s)| s.to_vec(),
        );
        let step = totp::typed_step(&secret, code, d.now_ms());
        match (step, registered) {
            // The step is spent atomically: a replayed code, or the same code racing on two
            // instances, is refused.
            (Some(step), Some((guid, _))) => {
                Ok(d.registrations.advance_totp_step(&guid, step).await?)
            }
            _ => Ok(false),
        }
    }

    async fn check_email_code(&self, d: &Deps, code: &str) -> Result<bool, FlowError> {
        let purpose = self.purpose;
        let pending = d.codes.code(purpose, &self.id_hash).await?;
        let matches = match (&pending, normalise_code(code, 8)) {
            (Some(p), Some(code)) => {
                p.expires_at_ms > d.now_ms()
                    && d.keys
                        .code_matches(purpose.as_str(), &self.id_hash, &code, &p.code_hash)
            }
            _ => false,
        };
        // Decoys store a code too, but for no address: it was never sent, so never matched.
        match pending {
            Some(p) if matches && !p.address.is_empty() && self.flow.user.is_some() => Ok(d
                .codes
                .take_code(purpose, &self.id_hash, &p.code_hash)
                .await?),
            _ => Ok(false),
        }
    }
}
