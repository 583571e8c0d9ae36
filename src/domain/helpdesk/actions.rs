//! What an operator does to an account: reset to a temporary password, unlock, clear
//! registrations, lift a self-service block, hand out a registration code.

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::temporary::temporary_password;
use super::{Action, Helpdesk, block_key};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::{Client, to_the_end};
use crate::domain::directory::{AccountChange, DirectoryUser};
use crate::domain::error::FlowError;
use crate::domain::hooks::{Actor, HookAccount, HookAction};
use crate::domain::notify::{Mail, MailKind};
use crate::domain::registration_code;

/// A helpdesk session keeps the registration code it issued last in the session's slot for a
/// pending secret, sealed to the session and the caller it was issued for.
fn shown_code_context(session: &[u8], id: &str) -> Vec<u8> {
    [
        b"helpdesk-registration-code\0".as_slice(),
        session,
        b"\0",
        id.as_bytes(),
    ]
    .concat()
}

impl Helpdesk<'_> {
    /// Refuses (and audits) acting on an account the helpdesk may not touch.
    pub(super) async fn refuse_protected(
        &self,
        user: &DirectoryUser,
        event: AuditKind,
        actor: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        if self.actionable(user).await? {
            return Ok(());
        }
        self.deps
            .audit
            .as_actor(
                client,
                Some(actor),
                Audit {
                    event,
                    outcome: Outcome::Denied,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some("protected_account"),
                },
            )
            .await?;
        Err(FlowError::Forbidden(
            "This account is protected (an administrator or a helpdesk member); the helpdesk \
             cannot act on it."
                .to_owned(),
        ))
    }

    /// Issues a one-time registration code that stands in for the caller's step-up once (they
    /// lost every method). A code adds methods that reset the password later, so it takes a
    /// verified caller whatever `require_verification` says, and never a protected account.
    pub async fn registration_code(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<Zeroizing<String>, FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.as_str();
        let user = self.target(id).await?;
        self.refuse_protected(&user, AuditKind::RegistrationCodeIssued, actor, client)
            .await?;
        if self.verified_by(&operator, &user).await?.is_none() {
            return Err(FlowError::NotVerified);
        }
        let code = registration_code::issue(d, &user, actor, client).await?;
        let sealed = d.keys.seal(
            code.as_bytes(),
            &shown_code_context(&operator.session.token_hash, id),
        );
        d.sessions
            .set_pending_totp(&operator.session.token_hash, Some(&sealed), None)
            .await?;
        Ok(code)
    }

    /// The registration code this operator last issued for `id` (as they named the caller), to
    /// show its page again (a reload); `None` for another caller or none.
    pub async fn issued_registration_code(
        &self,
        token: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<String>>, FlowError> {
        let operator = self.operator(token).await?;
        let session = &operator.session;
        let code = session
            .pending_totp
            .as_deref()
            .and_then(|sealed| {
                self.deps
                    .keys
                    .open(sealed, &shown_code_context(&session.token_hash, id))
            })
            .and_then(|plain| String::from_utf8(plain.to_vec()).ok());
        Ok(code.map(Zeroizing::new))
    }

    /// Acts on the caller's account. Returns the temporary password when it is to be shown to
    /// the operator (once; it is stored nowhere).
    /// Runs to its end even when the request that asked for it goes away: once the directory
    /// acted, its records follow.
    pub async fn act(
        &self,
        token: &str,
        id: &str,
        action: Action,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<Option<SecretString>, FlowError> {
        let (deps, token, id) = (self.deps.clone(), token.to_owned(), id.to_owned());
        let (reason, client) = (reason.map(str::to_owned), client.clone());
        to_the_end(async move {
            Helpdesk::new(&deps)
                .act_step(&token, &id, action, reason.as_deref(), &client)
                .await
        })
        .await
    }

    async fn act_step(
        &self,
        token: &str,
        id: &str,
        action: Action,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<Option<SecretString>, FlowError> {
        let d = self.deps;
        let h = &d.settings.helpdesk;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.clone();
        let user = self.target(id).await?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());

        self.refuse_protected(&user, action.event(), &actor, client)
            .await?;

        let verified_by = self.verified_by(&operator, &user).await?;
        let method = match (verified_by, reason) {
            (Some(m), _) => m.as_str().to_owned(),
            (None, _) if h.require_verification => return Err(FlowError::NotVerified),
            (None, None) => {
                return Err(FlowError::InvalidInput(
                    "Verify the caller first, or write the reason for acting without verification."
                        .to_owned(),
                ));
            }
            (None, Some(_)) => "unverified".to_owned(),
        };

        let address = d.confirmed_email(&user.guid).await?;
        let (temporary, notification) = match action {
            Action::Reset { deliver_by_email } => {
                if deliver_by_email && address.is_none() {
                    return Err(FlowError::InvalidInput(
                        "This user has no confirmed email address to send the password to."
                            .to_owned(),
                    ));
                }
                let names = [
                    user.sam_account_name.as_str(),
                    user.display_name.as_deref().unwrap_or_default(),
                ];
                let password = SecretString::from(
                    temporary_password(h.temporary_password_length, &names).to_string(),
                );
                d.directory
                    .write_account(
                        &user,
                        &AccountChange {
                            new_password: Some(&password),
                            unlock: true,
                            must_change: true,
                        },
                    )
                    .await?;
                // Remembered, so the user cannot reset back to a password the helpdesk knew.
                let remember = async {
                    if let Err(e) = d.history.remember(&user, &password).await {
                        tracing::warn!(error = %e, "the temporary password is not in the local history");
                    }
                };
                tokio::join!(crate::domain::enrollment::end_sessions(d, &user), remember);
                (Some(password), MailKind::HelpdeskPasswordReset)
            }
            Action::Unlock => {
                d.directory
                    .write_account(
                        &user,
                        &AccountChange {
                            unlock: true,
                            ..AccountChange::default()
                        },
                    )
                    .await?;
                (None, MailKind::HelpdeskUnlocked)
            }
            Action::ClearRegistrations => {
                d.registrations.remove_all(&user.guid).await?;
                // The lost phone may be the stolen bag with the printed codes in it.
                d.recovery_codes.remove_recovery_codes(&user.guid).await?;
                d.passkeys.remove_user_passkeys(&user.guid).await?;
                (None, MailKind::HelpdeskRegistrationsCleared)
            }
        };
        let audit_reason = match reason {
            Some(r) if method == "unverified" => format!("unverified: {r}"),
            Some(r) => r.to_owned(),
            None => String::new(),
        };
        // Done: a database failure from here on is logged, not reported, or the operator would
        // not see the temporary password that the account now has.
        d.audit
            .done(
                client,
                Some(&actor),
                Audit {
                    event: action.event(),
                    outcome: Outcome::Success,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(&format!("verified_by={method}; {audit_reason}")),
                },
            )
            .await;

        let hook = match action {
            Action::Reset { .. } => HookAction::Reset,
            Action::Unlock => HookAction::Unlock,
            Action::ClearRegistrations => HookAction::RegistrationChange,
        };
        d.hooks.after(
            hook,
            HookAccount::of(&user),
            Actor::Helpdesk {
                operator: actor.clone(),
            },
            d.now(),
            None,
            temporary.as_ref(),
        );

        // The password mail first, then the notice of what the helpdesk did.
        let shown = match (action, temporary, &address) {
            (
                Action::Reset {
                    deliver_by_email: true,
                },
                Some(password),
                Some(to),
            ) => self.mail_temporary(&user, to, password, client).await,
            (_, temporary, _) => temporary,
        };
        // `address` was read before the action: after a clear it is told it was removed.
        d.notifier
            .notify_owner(
                client,
                &user,
                address.as_deref(),
                client.locale,
                notification,
            )
            .await;
        Ok(shown)
    }

    /// Lifts the self-service block that wrong codes put on the caller, and forgets those
    /// failures. A block says nothing about who is calling, so a written reason is enough; the
    /// owner is told, so a lift they did not ask for does not go unnoticed.
    pub async fn lift_block(
        &self,
        token: &str,
        id: &str,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.as_str();
        let user = self.target(id).await?;
        let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
            return Err(FlowError::InvalidInput(
                "Write the reason for lifting the block.".to_owned(),
            ));
        };
        let key = block_key(&user);
        let lifted = d.throttle.lift_block(&key).await?;
        d.audit
            .as_actor(
                client,
                Some(actor),
                Audit {
                    event: AuditKind::HelpdeskLiftBlock,
                    outcome: if lifted {
                        Outcome::Success
                    } else {
                        Outcome::NotBlocked
                    },
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(reason),
                },
            )
            .await?;
        if lifted {
            d.notifier
                .notify_owner(
                    client,
                    &user,
                    None,
                    client.locale,
                    MailKind::HelpdeskBlockLifted,
                )
                .await;
        }
        Ok(())
    }

    /// Mails the temporary password; if that fails, returns it so the operator can tell the
    /// caller (it is already set and must be changed at next logon, so losing it helps nobody).
    pub(super) async fn mail_temporary(
        &self,
        user: &DirectoryUser,
        to: &str,
        password: SecretString,
        client: &Client,
    ) -> Option<SecretString> {
        let mail = Mail {
            to: to.to_owned(),
            display_name: user.display_name.clone(),
            locale: client.locale,
            kind: MailKind::TemporaryPassword {
                password: SecretString::from(password.expose_secret().to_owned()),
            },
        };
        let sent = match &self.deps.mailer {
            Some(mailer) => mailer.send(&mail).await.is_ok(),
            None => false,
        };
        if sent {
            None
        } else {
            tracing::warn!("temporary password mail not sent; showing it to the operator");
            Some(password)
        }
    }
}
