//! Manager approval: an operator asks the caller's AD `manager` to confirm, through a mailed
//! link, that the person on the phone is the caller. The page behind the link asks for no
//! password (a mailed link that asks for one teaches people to fall for phishing); the manager
//! proves who they are with their own registered method, and approves or declines.
//!
//! The link's token is stored only as its hash, which is also the id of the reset flow that holds
//! the manager's verification: expiry, single use and wrong-code accounting are those of every
//! verification ([`Subject`]). An approval marks the operator's `manager` check of the caller
//! verified, which the card shows as `verified_by: "manager"`.

use std::time::Duration;

use secrecy::SecretString;

use super::{CallerCheck, Helpdesk, Operator, verification_id};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::clock::Timestamp;
use crate::domain::deps::{Client, Deps};
use crate::domain::directory::{DirectoryUser, ManagerLink};
use crate::domain::error::{FlowError, ManagerRefusal};
use crate::domain::notify::{About, Mail, MailKind, Purpose, Queued};
use crate::domain::secrets::{new_token, token_hash};
use crate::domain::store::{CodePurpose, ManagerApproval, MethodKind, Person, ResetFlow};
use crate::domain::throttle::Limit;
use crate::domain::verification::Subject;

/// How long an approval link works.
pub const APPROVAL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// What the approval page shows the manager.
#[derive(Clone, Debug)]
pub struct ApprovalView {
    pub operator: String,
    pub caller_sam: String,
    pub caller_name: Option<String>,
    pub manager_sam: String,
    /// The manager's own methods that can confirm.
    pub totp: bool,
    pub email: bool,
    pub expires_at_ms: i64,
}

/// What the manager does with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Approve { method: MethodKind },
    Decline,
}

impl Helpdesk<'_> {
    /// The caller's manager, if the service may ask them: refused (with the reason) when the
    /// link or the manager cannot vouch for the caller. A `manager` value younger than
    /// `helpdesk.manager_min_age` does not count: by the DC's own change time where it reports
    /// one, else by when this service first saw the value.
    async fn approving_manager(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
    ) -> Result<DirectoryUser, FlowError> {
        let d = self.deps;
        let refuse = |r: ManagerRefusal| Err(FlowError::ManagerRefused(r));
        let Some((link, since)) = self.note_manager(user).await? else {
            return refuse(ManagerRefusal::NoManager);
        };
        // A user named as their own manager has nobody to vouch for them.
        let Some(manager) = link.user.filter(|m| m.guid != user.guid) else {
            return refuse(ManagerRefusal::NoManager);
        };
        // The approval is a second person's word; the operator's own would be none.
        if manager.guid == operator.session.user {
            return refuse(ManagerRefusal::ManagerIsOperator);
        }
        if manager.is_disabled() {
            return refuse(ManagerRefusal::ManagerDisabled);
        }
        if super::ad_mail(&manager).is_none() {
            return refuse(ManagerRefusal::ManagerWithoutMail);
        }
        let methods = d.registrations.methods(&manager.guid).await?;
        if !methods.iter().any(|m| m.confirmed_at.is_some()) {
            return refuse(ManagerRefusal::ManagerNotRegistered);
        }
        if since + d.settings.helpdesk.manager_min_age > d.now() {
            return refuse(ManagerRefusal::ManagerTooRecent);
        }
        Ok(manager)
    }

    /// Reads the caller's `manager` and records the value as seen (for DCs that do not say when
    /// it changed). Returns it with the time it counts from: the DC's change time where it
    /// reports one (Windows AD), else the service's first sight of the value (Samba).
    pub(super) async fn note_manager(
        &self,
        user: &DirectoryUser,
    ) -> Result<Option<(ManagerLink, Timestamp)>, FlowError> {
        let d = self.deps;
        let Some(link) = d.directory.manager(user).await? else {
            return Ok(None);
        };
        let seen = d
            .approvals
            .manager_seen_since(&user.guid, &link.dn.to_lowercase(), d.now())
            .await?;
        let since = link
            .changed_at_ms
            .map(Timestamp::from_millis)
            .unwrap_or(seen);
        Ok(Some((link, since)))
    }

    /// Mails the caller's AD manager a link to approve (or decline) that the operator's caller is
    /// who they say.
    pub async fn request_manager_approval(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let actor = operator.session.sam_account_name.as_str();
        let user = self.target(id).await?;
        self.allowed(CallerCheck::Manager)?;
        self.refuse_protected(&user, AuditKind::ManagerApprovalRequested, actor, client)
            .await?;
        if d.mailer.is_none() {
            return Err(FlowError::MailUnavailable);
        }
        let manager = match self.approving_manager(&operator, &user).await {
            Ok(manager) => manager,
            Err(FlowError::ManagerRefused(refusal)) => {
                self.audit_request(client, actor, &user, Outcome::Denied, refusal.code())
                    .await?;
                return Err(FlowError::ManagerRefused(refusal));
            }
            Err(other) => return Err(other),
        };
        // A manager's mailbox gets no more approval links than codes (`throttle.email_max_sends`
        // per `email_window`, counted with the codes mailed to them), however many operators ask.
        let quota = d
            .throttle
            .code_mails(Person::User(manager.guid), Limit::ManagerApprovalMails);
        let who = Some((manager.guid, manager.sam_account_name.as_str()));
        d.throttle.take(client, quota, who).await?;
        let now = d.now();
        let (link_token, id_hash) = new_token();
        let expires = now + APPROVAL_LIFETIME;
        d.flows
            .create_flow(&ResetFlow {
                id_hash: id_hash.clone(),
                user: Some(manager.guid),
                login: manager.sam_account_name.to_lowercase(),
                sam_account_name: Some(manager.sam_account_name.clone()),
                methods_required: 1,
                verified_totp_at: None,
                verified_email_at: None,
                verified_passkey_at: None,
                failures: 0,
                created_at: now,
                expires_at: expires,
                finished_at: None,
                dc: None,
                locale: client.locale,
            })
            .await?;
        d.approvals
            .create_approval(&ManagerApproval {
                id_hash,
                check_id_hash: check_id(&operator, &user),
                operator: actor.to_owned(),
                caller: user.guid,
                caller_sam: user.sam_account_name.clone(),
                caller_name: user.display_name.clone(),
                manager: manager.guid,
                manager_sam: manager.sam_account_name.clone(),
                created_at: now,
                expires_at: expires,
            })
            .await?;
        // Queued like a notice, but given up with the link: a mail that could only arrive after
        // the link ended would send the manager to a dead page.
        let queued = Queued {
            mail: Mail {
                to: super::ad_mail(&manager).unwrap_or_default().to_owned(),
                display_name: manager.display_name.clone(),
                locale: client.locale,
                kind: MailKind::ManagerApprovalRequest {
                    token: SecretString::from(link_token),
                    operator: actor.to_owned(),
                    caller: caller_label(&user.sam_account_name, user.display_name.as_deref()),
                },
            },
            purpose: Purpose::Notice,
            about: About::new(
                Some(manager.guid),
                &manager.sam_account_name,
                Some(actor),
                client.ip,
            ),
            decoy: false,
        };
        d.notifier.queue_until(&queued, expires).await?;
        self.audit_request(
            client,
            actor,
            &user,
            Outcome::Success,
            &manager.sam_account_name,
        )
        .await?;
        Ok(())
    }

    async fn audit_request(
        &self,
        client: &Client,
        actor: &str,
        user: &DirectoryUser,
        outcome: Outcome,
        reason: &str,
    ) -> Result<(), FlowError> {
        self.deps
            .audit
            .as_actor(
                client,
                Some(actor),
                Audit {
                    event: AuditKind::ManagerApprovalRequested,
                    outcome,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: Some(reason),
                },
            )
            .await?;
        Ok(())
    }
}

fn check_id(operator: &Operator, user: &DirectoryUser) -> Vec<u8> {
    verification_id(
        &operator.session.token_hash,
        &user.guid,
        CallerCheck::Manager,
    )
}

/// How mails and pages name the caller: "Display Name (sam)", or the sam alone.
pub fn caller_label(sam: &str, display_name: Option<&str>) -> String {
    match display_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} ({sam})"),
        None => sam.to_owned(),
    }
}

/// The manager's side: what the page behind an approval link does.
pub struct Approvals<'a> {
    deps: &'a Deps,
}

impl<'a> Approvals<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }

    /// The approval behind `token` and the manager's verification, while both may go on;
    /// otherwise [`FlowError::FlowNotFound`] (unknown, used, declined, expired, or ended by wrong
    /// codes), the same answer for each.
    async fn live(&self, token: &str) -> Result<(ManagerApproval, Subject), FlowError> {
        let d = self.deps;
        let id_hash = token_hash(token.trim());
        let approval = d
            .approvals
            .approval(&id_hash)
            .await?
            .ok_or(FlowError::FlowNotFound)?;
        let subject = Subject::live(d, id_hash, CodePurpose::HelpdeskEmail)
            .await?
            .ok_or(FlowError::FlowNotFound)?;
        if approval.expires_at <= d.now() {
            return Err(FlowError::FlowNotFound);
        }
        Ok((approval, subject))
    }

    pub async fn view(&self, token: &str) -> Result<ApprovalView, FlowError> {
        let (approval, _) = self.live(token).await?;
        let methods = self.deps.registrations.methods(&approval.manager).await?;
        let has = |kind| {
            methods
                .iter()
                .any(|m| m.kind == kind && m.confirmed_at.is_some())
        };
        Ok(ApprovalView {
            operator: approval.operator,
            caller_sam: approval.caller_sam,
            caller_name: approval.caller_name,
            manager_sam: approval.manager_sam,
            totp: has(MethodKind::Totp),
            email: has(MethodKind::Email),
            expires_at_ms: approval.expires_at.as_millis(),
        })
    }

    /// Mails the manager a code at their confirmed address, to confirm with.
    pub async fn send_code(&self, token: &str, client: &Client) -> Result<(), FlowError> {
        let (_, mut subject) = self.live(token).await?;
        // In the language of the manager's page, not of the operator who asked.
        subject.flow.locale = client.locale;
        subject
            .send_code(
                self.deps,
                |code| MailKind::ManagerApprovalCode { code },
                client,
                None,
            )
            .await
    }

    /// The manager's answer. Approving takes a code of the manager's own registered method
    /// (wrong ones count like in any verification, and end the approval); declining takes none
    /// (the link reached the manager's mailbox, and a refusal grants nothing). Either way the
    /// link is spent.
    pub async fn answer(
        &self,
        token: &str,
        answer: Answer,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let (approval, subject) = self.live(token).await?;
        let manager = approval.manager_sam.as_str();
        if let Answer::Approve { method } = answer {
            subject
                .verify(d, method, code, client, Some(manager))
                .await?;
        }
        let now = d.now();
        if !d.flows.finish_flow(&subject.id_hash, now).await? {
            return Err(FlowError::FlowNotFound);
        }
        let (outcome, method) = match answer {
            Answer::Approve { method } => {
                self.verify_check(&approval, method, now, client).await?;
                (Outcome::Approved, Some(method))
            }
            Answer::Decline => (Outcome::Declined, None),
        };
        d.audit
            .as_actor(
                client,
                Some(manager),
                Audit {
                    event: AuditKind::ManagerApproval,
                    outcome,
                    user: Some(approval.caller),
                    sam_account_name: Some(&approval.caller_sam),
                    method,
                    reason: Some(&format!("operator={}", approval.operator)),
                },
            )
            .await?;
        if answer == Answer::Decline {
            self.tell_caller_of_decline(&approval, client).await?;
        }
        Ok(())
    }

    /// Marks the operator's `manager` check of the caller verified. The check starts now, so
    /// the operator has all of `helpdesk.verification_lifetime` to act, however long the manager
    /// took; one an earlier approval started is only marked again.
    async fn verify_check(
        &self,
        approval: &ManagerApproval,
        method: MethodKind,
        now: Timestamp,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let id_hash = &approval.check_id_hash;
        if d.flows.flow(id_hash).await?.is_none() {
            let created = d
                .flows
                .create_flow(&ResetFlow {
                    id_hash: id_hash.clone(),
                    user: Some(approval.caller),
                    login: approval.caller_sam.to_lowercase(),
                    sam_account_name: Some(approval.caller_sam.clone()),
                    methods_required: 1,
                    verified_totp_at: None,
                    verified_email_at: None,
                    verified_passkey_at: None,
                    failures: 0,
                    created_at: now,
                    expires_at: now + d.settings.helpdesk.verification_lifetime,
                    finished_at: None,
                    dc: None,
                    locale: client.locale,
                })
                .await;
            // Two approvals of one operator's check at once: the other one created it.
            if let Err(e) = created
                && d.flows.flow(id_hash).await?.is_none()
            {
                return Err(e.into());
            }
        }
        d.flows.mark_verified(id_hash, method, now).await?;
        Ok(())
    }

    /// A decline is told to the caller's AD `mail`: if someone else was on the phone as them,
    /// the owner learns of it.
    async fn tell_caller_of_decline(
        &self,
        approval: &ManagerApproval,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let Some(caller) = d.directory.find_user(&approval.caller_sam).await? else {
            return Ok(());
        };
        if caller.guid != approval.caller {
            return Ok(());
        }
        d.notifier
            .notify(
                client,
                (caller.guid, &caller.sam_account_name),
                super::ad_mail(&caller),
                caller.display_name.as_deref(),
                client.locale,
                MailKind::ManagerApprovalDeclined {
                    manager: approval.manager_sam.clone(),
                },
            )
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_named_with_their_account() {
        assert_eq!(caller_label("jdoe", Some("Jane Doe")), "Jane Doe (jdoe)");
        assert_eq!(caller_label("jdoe", Some("  ")), "jdoe");
        assert_eq!(caller_label("jdoe", None), "jdoe");
    }

    #[test]
    fn every_refusal_has_its_own_code() {
        let all = [
            ManagerRefusal::NoManager,
            ManagerRefusal::ManagerDisabled,
            ManagerRefusal::ManagerWithoutMail,
            ManagerRefusal::ManagerNotRegistered,
            ManagerRefusal::ManagerTooRecent,
            ManagerRefusal::ManagerIsOperator,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
