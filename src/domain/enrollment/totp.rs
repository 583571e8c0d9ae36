//! Adding authenticator apps (TOTP), up to [`MAX_TOTP_APPS`], each named, and confirming them
//! again.

use super::Enrollment;
use crate::domain::ObjectGuid;
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::{Client, Deps};
use crate::domain::error::FlowError;
use crate::domain::store::{EnrolledMethod, MAX_TOTP_APPS, MethodKind, new_method_id};
use crate::domain::totp;
use crate::domain::verification::spend_app_code;

/// The longest name of an app, in characters.
pub const MAX_APP_NAME_CHARS: usize = 64;

/// The name a user typed for an app, trimmed: 1 to [`MAX_APP_NAME_CHARS`] characters, none of
/// them control characters (a name goes into mails and pages).
pub fn app_name(typed: &str) -> Result<String, FlowError> {
    let name = typed.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_APP_NAME_CHARS {
        return Err(FlowError::InvalidInput(format!(
            "Give the app a name of 1 to {MAX_APP_NAME_CHARS} characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(FlowError::InvalidInput(
            "The name of the app cannot contain control characters.".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

/// The user's confirmed apps.
async fn confirmed_apps(d: &Deps, user: &ObjectGuid) -> Result<Vec<EnrolledMethod>, FlowError> {
    Ok(d.registrations
        .methods(user)
        .await?
        .into_iter()
        .filter(|m| m.kind == MethodKind::Totp && m.confirmed_at.is_some())
        .collect())
}

impl Enrollment<'_> {
    /// A new TOTP secret for the user to scan, for an app called `name` (`None`: unnamed, shown
    /// as "Authenticator app"). It is added once confirmed; a second call before that replaces
    /// it. `LimitReached` when the user has [`MAX_TOTP_APPS`] already.
    pub async fn begin_totp(
        &self,
        token: &str,
        name: Option<&str>,
        client: &Client,
    ) -> Result<totp::Provisioning, FlowError> {
        let d = self.deps;
        let name = name.map(app_name).transpose()?;
        let session = self.changing_session(token, client).await?;
        if confirmed_apps(d, &session.user).await?.len() >= MAX_TOTP_APPS {
            return Err(FlowError::LimitReached);
        }
        let secret = totp::new_secret();
        let sealed = d.keys.seal(&secret, session.user.0.as_bytes());
        d.sessions
            .set_pending_totp(&session.token_hash, Some(&sealed), name.as_deref())
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
        // Checked before the code, so a code is not spent on an app that cannot be added.
        // Two sessions of one user confirming at the same instant could pass it together; the
        // verification still checks every app, so a sixth would work, not break anything.
        if confirmed_apps(d, &session.user).await?.len() >= MAX_TOTP_APPS {
            return Err(FlowError::LimitReached);
        }
        let Some(step) = totp::typed_step(&secret, code, d.now()) else {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        };
        let now = d.now();
        let app = EnrolledMethod {
            id: new_method_id(),
            kind: MethodKind::Totp,
            name: session.pending_totp_name.clone(),
            address: None,
            secret_sealed: Some(sealed.clone()),
            // The confirming code is spent: it cannot be replayed for a reset.
            last_step: Some(step),
            confirmed_at: Some(now),
            created_at: now,
            last_used_at: None,
        };
        d.registrations
            .put_method(&session.user, &session.sam_account_name, &app)
            .await?;
        d.sessions
            .set_pending_totp(&session.token_hash, None, None)
            .await?;
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Totp, app.name, None, client)
            .await
    }

    /// Confirms a registered authenticator app again with a current code of it (spent like any
    /// other), so that app counts for resets for another `registration.reconfirm_days`. An email
    /// address is confirmed again by adding it again.
    pub async fn reconfirm_totp(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        let apps = confirmed_apps(d, &session.user).await?;
        if apps.is_empty() {
            return Err(FlowError::InvalidInput(
                "There is no authenticator app to confirm; add one.".to_owned(),
            ));
        }
        // The code is checked against every app and spent atomically, as in a reset: a code
        // seen once is never accepted again. Only the app it came from is confirmed again.
        let Some(id) = spend_app_code(d, Some(&session.user), &apps, code, true).await? else {
            return Err(self.wrong_code(&session, MethodKind::Totp, client).await?);
        };
        d.registrations
            .reconfirm_method(&session.user, &id, d.now())
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
