//! Adding an authenticator app (TOTP) and confirming it again.

use super::Enrollment;
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::store::{EnrolledMethod, MethodKind};
use crate::domain::totp;

impl Enrollment<'_> {
    /// A new TOTP secret for the user to scan; it replaces any earlier one only once confirmed.
    pub async fn begin_totp(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<totp::Provisioning, FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        let secret = totp::new_secret();
        let sealed = d.keys.seal(&secret, session.user.0.as_bytes());
        d.sessions
            .set_pending_totp(&session.token_hash, Some(&sealed))
            .await?;
        Ok(totp::provisioning(
            &secret,
            &d.settings.registration.totp_issuer,
            &session.sam_account_name,
        ))
    }

    /// The secret [`Self::begin_totp`] showed and that is still to be confirmed, to show again
    /// (a reload of its page); `None` when there is none. It starts no new secret.
    pub async fn pending_totp(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<Option<totp::Provisioning>, FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        let secret = session
            .pending_totp
            .as_deref()
            .and_then(|sealed| d.keys.open(sealed, session.user.0.as_bytes()));
        Ok(secret.map(|secret| {
            totp::provisioning(
                &secret,
                &d.settings.registration.totp_issuer,
                &session.sam_account_name,
            )
        }))
    }

    pub async fn confirm_totp(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        let Some(sealed) = &session.pending_totp else {
            return Err(FlowError::InvalidInput(
                "Start by adding an authenticator app; then type its code.".to_owned(),
            ));
        };
        let secret = d
            .keys
            .open(sealed, session.user.0.as_bytes())
            .ok_or_else(|| FlowError::InvalidInput("Add the authenticator app again.".into()))?;
        let Some(step) = totp::typed_step(&secret, code, d.now()) else {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        };
        let now = d.now();
        d.registrations
            .put_method(
                &session.user,
                &session.sam_account_name,
                &EnrolledMethod {
                    kind: MethodKind::Totp,
                    address: None,
                    secret_sealed: Some(sealed.clone()),
                    // The confirming code is spent: it cannot be replayed for a reset.
                    last_step: Some(step),
                    confirmed_at: Some(now),
                    created_at: now,
                },
            )
            .await?;
        d.sessions
            .set_pending_totp(&session.token_hash, None)
            .await?;
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Totp, None, client)
            .await
    }

    /// Confirms the registered authenticator app again with a current code (spent like any
    /// other), so it counts for resets for another `registration.reconfirm_days`. An email
    /// address is confirmed again by adding it again.
    pub async fn reconfirm_totp(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        let secret = d
            .registrations
            .methods(&session.user)
            .await?
            .into_iter()
            .find(|m| m.kind == MethodKind::Totp && m.confirmed_at.is_some())
            .and_then(|m| m.secret_sealed)
            .and_then(|sealed| d.keys.open(&sealed, session.user.0.as_bytes()));
        let Some(secret) = secret else {
            return Err(FlowError::InvalidInput(
                "There is no authenticator app to confirm; add one.".to_owned(),
            ));
        };
        let now = d.now();
        let step = totp::typed_step(&secret, code, now);
        // Spent atomically, as in a reset: a code seen once is never accepted again.
        let spent = match step {
            Some(step) => {
                d.registrations
                    .advance_totp_step(&session.user, step)
                    .await?
            }
            None => false,
        };
        if !spent {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        }
        d.registrations
            .reconfirm_method(&session.user, MethodKind::Totp, now)
            .await?;
        self.stepped_up(&session).await?;
        d.audit
            .record(
                client,
                Audit {
                    event: AuditKind::EnrollmentReconfirmed,
                    outcome: Outcome::Success,
                    user: Some(session.user),
                    sam_account_name: Some(&session.sam_account_name),
                    method: Some(MethodKind::Totp),
                    reason: None,
                },
            )
            .await?;
        Ok(())
    }
}
