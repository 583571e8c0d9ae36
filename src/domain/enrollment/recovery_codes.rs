//! Recovery codes: a set of single-use codes the user keeps on paper, made (and made again,
//! which voids the old set) and removed like any method.

use zeroize::Zeroizing;

use super::Enrollment;
use crate::domain::audit::AuditKind;
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::secrets;
use crate::domain::store::MethodKind;

/// Codes in a set.
pub const RECOVERY_CODES: usize = 10;

/// A new set, shown once: only the codes' keyed hashes are kept.
pub struct RecoveryCodes {
    pub codes: Vec<Zeroizing<String>>,
    pub created_at: Timestamp,
}

/// Never shows the codes: logs and test failures see only how many there are.
impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("codes", &self.codes.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Enrollment<'_> {
    /// Makes a new set of recovery codes, voiding the old one in the same transaction. Takes a
    /// session that may change methods, and another confirmed method: the codes are a backup.
    pub async fn new_recovery_codes(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<RecoveryCodes, FlowError> {
        let d = self.deps;
        self.recovery_codes_on()?;
        let session = self.changing_session(token, client).await?;
        let methods = d.registrations.methods(&session.user).await?;
        let passkeys = d.passkeys.passkeys(&session.user).await?;
        if !methods.iter().any(|m| m.confirmed_at.is_some()) && passkeys.is_empty() {
            return Err(FlowError::MethodRequired);
        }
        let codes: Vec<_> = (0..RECOVERY_CODES)
            .map(|_| secrets::new_recovery_code())
            .collect();
        let hashes: Vec<Vec<u8>> = codes
            .iter()
            .map(|code| {
                let typed = secrets::normalise_recovery_code(code).expect("a code as made");
                d.keys.recovery_code_hash(session.user.0.as_bytes(), &typed)
            })
            .collect();
        let created_at = d.now();
        d.recovery_codes
            .replace_recovery_codes(&session.user, &hashes, created_at)
            .await?;
        self.method_changed(
            &session,
            MethodKind::RecoveryCode,
            AuditKind::EnrollmentAdded,
            None,
            MailKind::RecoveryCodesCreated,
            client,
        )
        .await?;
        Ok(RecoveryCodes { codes, created_at })
    }

    /// Voids the user's recovery codes, if they have any.
    pub async fn remove_recovery_codes(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        if d.recovery_codes
            .remove_recovery_codes(&session.user)
            .await?
            > 0
        {
            let kind = MethodKind::RecoveryCode;
            self.method_changed(
                &session,
                kind,
                AuditKind::EnrollmentRemoved,
                None,
                MailKind::MethodRemoved {
                    method: kind,
                    name: None,
                },
                client,
            )
            .await?;
        }
        Ok(())
    }

    fn recovery_codes_on(&self) -> Result<(), FlowError> {
        if self.deps.settings.registration.recovery_codes {
            Ok(())
        } else {
            Err(FlowError::Forbidden(
                "Recovery codes are not offered here.".to_owned(),
            ))
        }
    }
}
