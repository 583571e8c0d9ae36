//! Looking a caller up and building the card an operator sees.

use super::{Helpdesk, UserCard, ad_mail, block_key, filetime_ms};
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::directory::DirectoryUser;
use crate::domain::error::FlowError;
use crate::domain::notifier::mask_email;
use crate::domain::protection::{is_allowed, is_protected};
use crate::domain::store::MethodKind;

impl Helpdesk<'_> {
    pub(super) async fn target(&self, id: &str) -> Result<DirectoryUser, FlowError> {
        self.deps
            .directory
            .find_user_by(id.trim(), true)
            .await?
            .ok_or(FlowError::NotFound)
    }

    /// Whether the operator may act on `user`: not protected and not a helpdesk member
    /// themselves, unless allow-listed; never the service account or a `directory.never_reset`
    /// account, allow-listed or not.
    pub(super) async fn actionable(&self, user: &DirectoryUser) -> Result<bool, FlowError> {
        let d = self.deps;
        if d.settings.eligibility.is_never_reset(user) {
            return Ok(false);
        }
        let h = &d.settings.helpdesk;
        let directory = d.directory.as_ref();
        let guarded = is_protected(directory, user).await?
            || match &h.group_dn {
                Some(group) => directory.is_member_of(user, group).await?,
                None => false,
            };
        Ok(!guarded || is_allowed(directory, user, &h.allow_protected).await?)
    }

    pub async fn lookup(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<UserCard, FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        let methods = d.registrations.methods(&user.guid).await?;
        let confirmed: Vec<_> = methods
            .iter()
            .filter(|m| m.confirmed_at.is_some())
            .collect();
        // Where the DC keeps no change time for `manager`, the service's first sight of the value
        // is what `helpdesk.manager_min_age` counts from: every look-up records it. The card
        // itself does not depend on it.
        if let Err(e) = self.note_manager(&user).await {
            tracing::warn!(error = %e, "the caller's manager could not be recorded");
        }
        let card = UserCard {
            sam_account_name: user.sam_account_name.clone(),
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            enabled: !user.is_disabled(),
            locked: user.is_locked(),
            locked_since_ms: filetime_ms(user.lockout_time).filter(|_| user.is_locked()),
            must_change_password: user.must_change_password(),
            password_last_set_ms: filetime_ms(user.pwd_last_set),
            totp: confirmed.iter().any(|m| m.kind == MethodKind::Totp),
            email: confirmed
                .iter()
                .find(|m| m.kind == MethodKind::Email)
                .and_then(|m| m.address.as_deref())
                .map(mask_email),
            registered_at_ms: confirmed
                .iter()
                .filter_map(|m| m.confirmed_at)
                .min()
                .map(Timestamp::as_millis),
            actionable: self.actionable(&user).await?,
            ad_mail: ad_mail(&user).map(mask_email),
            verified_by: self.verified_by(&operator, &user).await?,
            blocked_until_ms: d
                .throttle
                .blocked_until(&block_key(&user))
                .await?
                .map(Timestamp::as_millis),
            // Operators' own look-ups would crowd out what the caller did.
            recent_events: d
                .audit
                .for_user(&user.guid, 50)
                .await?
                .into_iter()
                .filter(|r| r.event.event != AuditKind::HelpdeskLookup)
                .take(10)
                .collect(),
        };
        d.audit
            .as_actor(
                client,
                Some(&operator.session.sam_account_name),
                Audit {
                    event: AuditKind::HelpdeskLookup,
                    outcome: Outcome::Success,
                    user: Some(user.guid),
                    sam_account_name: Some(&user.sam_account_name),
                    method: None,
                    reason: None,
                },
            )
            .await?;
        Ok(card)
    }
}
