//! Verifying with a passkey: the answer to the challenge [`crate::domain::reset::Reset::passkey_options`]
//! gave, checked by the WebAuthn library, then held to this service's own rules (the user handle,
//! a counter that goes up).

use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PublicKeyCredential, WebauthnError};

use super::Subject;
use crate::domain::ObjectGuid;
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::{Client, Deps};
use crate::domain::error::FlowError;
use crate::domain::passkey::user_handle;
use crate::domain::store::{CeremonyPurpose, MethodKind};

impl Subject {
    /// Whether `answer` (a `PublicKeyCredential.toJSON()`) answers this verification's pending
    /// challenge with one of the user's passkeys; its use is recorded only when `!blocked`. A
    /// decoy's challenge allows only credentials nobody holds: the same checks, no match.
    pub(super) async fn check_passkey(
        &self,
        d: &Deps,
        answer: &str,
        blocked: bool,
        client: &Client,
        actor: Option<&str>,
    ) -> Result<bool, FlowError> {
        let Some(party) = d.settings.passkeys.party() else {
            return Ok(false);
        };
        let now = d.now();
        let state = d
            .passkeys
            .take_ceremony(CeremonyPurpose::Authentication, &self.id_hash, now)
            .await?
            .and_then(|s| serde_json::from_str::<PasskeyAuthentication>(&s).ok());
        let credential = serde_json::from_str::<PublicKeyCredential>(answer).ok();
        // Read for a decoy too (of the nil GUID), so its answer takes as long.
        let guid = self.flow.user.unwrap_or(ObjectGuid(uuid::Uuid::nil()));
        let stored = d.passkeys.passkeys(&guid).await?;
        let (Some(state), Some(credential)) = (state, credential) else {
            return Ok(false);
        };
        let result = match party.finish_passkey_authentication(&credential, &state) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                self.possible_clone(d, client, actor).await?;
                return Ok(false);
            }
            Err(_) => return Ok(false),
        };
        let Some(guid) = self.flow.user else {
            return Ok(false);
        };
        let Some(row) = stored
            .into_iter()
            .find(|p| p.credential_id.as_slice() == result.cred_id().as_ref())
        else {
            return Ok(false);
        };
        // The handle the passkey was made with, when the authenticator returns it, must be this
        // user's: it is a keyed hash of the objectGUID, never the GUID itself.
        let handle = user_handle(&d.keys, &guid);
        let handle_matches = credential
            .response
            .user_handle
            .as_ref()
            .is_none_or(|h| h.as_ref() == handle.as_bytes());
        if !handle_matches || !result.user_verified() || blocked {
            return Ok(false);
        }
        let Ok(mut passkey) = serde_json::from_str::<Passkey>(&row.credential) else {
            return Ok(false);
        };
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey).map_err(|e| {
            FlowError::InvalidInput(format!("the passkey cannot be stored again: {e}"))
        })?;
        // The library compares the counter with the one read when the challenge was made; this
        // compares it with the stored one at the moment of use, so a clone racing the original
        // (or a second instance) cannot use the same count twice.
        let recorded = d
            .passkeys
            .record_passkey_use(&guid, &row.credential_id, result.counter(), &updated, now)
            .await?;
        if !recorded {
            self.possible_clone(d, client, actor).await?;
        }
        Ok(recorded)
    }

    /// A passkey's signature counter did not go up: two authenticators may hold its key.
    async fn possible_clone(
        &self,
        d: &Deps,
        client: &Client,
        actor: Option<&str>,
    ) -> Result<(), FlowError> {
        tracing::warn!("a passkey's signature counter went back: it may have been copied");
        self.audit(
            d,
            client,
            actor,
            Audit {
                event: AuditKind::Verification,
                outcome: Outcome::Failure,
                user: self.flow.user,
                sam_account_name: None,
                method: Some(MethodKind::Passkey),
                reason: Some("possible_clone"),
            },
        )
        .await
    }
}
