//! Adding and removing passkeys. Like every method, only in a session that may change methods
//! (its step-up done), audited, mailed to the owner and announced to the registration hook.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rs::prelude::{CredentialID, PasskeyRegistration, RegisterPublicKeyCredential};

use super::Enrollment;
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::passkey::{MAX_PASSKEYS, typed_name, user_handle};
use crate::domain::store::{CeremonyPurpose, MethodKind, Session, StoredPasskey};

/// A registered passkey, as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeySummary {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

fn name_of(name: &str) -> Result<String, FlowError> {
    typed_name(name).ok_or_else(|| {
        FlowError::InvalidInput("Name the passkey in 1 to 64 characters.".to_owned())
    })
}

impl Enrollment<'_> {
    /// The `{"publicKey":{…}}` creation options for `navigator.credentials.create()`: user
    /// verification required, no attestation, the user's passkeys excluded.
    pub async fn begin_passkey(
        &self,
        token: &str,
        name: &str,
        client: &Client,
    ) -> Result<serde_json::Value, FlowError> {
        let d = self.deps;
        name_of(name)?;
        let session = self.changing_session(token, client).await?;
        let party = d.settings.passkeys.party().ok_or_else(|| {
            FlowError::InvalidInput("Passkeys are not available here.".to_owned())
        })?;
        let existing = d.passkeys.passkeys(&session.user).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(FlowError::LimitReached);
        }
        let exclude: Vec<CredentialID> = existing
            .iter()
            .map(|p| CredentialID::from(p.credential_id.clone()))
            .collect();
        let (options, state) = party
            .start_passkey_registration(
                user_handle(&d.keys, &session.user),
                &session.sam_account_name,
                &session.sam_account_name,
                Some(exclude),
            )
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))?;
        let state = serde_json::to_string(&state)
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))?;
        d.passkeys
            .put_ceremony(
                CeremonyPurpose::Registration,
                &session.token_hash,
                &state,
                session.expires_at,
            )
            .await?;
        serde_json::to_value(options)
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))
    }

    /// Registers the passkey that answered [`Self::begin_passkey`]'s challenge (a
    /// `PublicKeyCredential.toJSON()`), under `name`.
    pub async fn confirm_passkey(
        &self,
        token: &str,
        name: &str,
        credential: &serde_json::Value,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let name = name_of(name)?;
        let session = self.changing_session(token, client).await?;
        let party = d.settings.passkeys.party().ok_or_else(|| {
            FlowError::InvalidInput("Passkeys are not available here.".to_owned())
        })?;
        let now = d.now();
        // Taken whatever follows: a challenge is answered once.
        let state = d
            .passkeys
            .take_ceremony(CeremonyPurpose::Registration, &session.token_hash, now)
            .await?
            .and_then(|s| serde_json::from_str::<PasskeyRegistration>(&s).ok());
        let answer = serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone());
        let passkey = match (state, answer) {
            (Some(state), Ok(answer)) => party.finish_passkey_registration(&answer, &state).ok(),
            _ => None,
        };
        let Some(passkey) = passkey else {
            return Err(self
                .refused_passkey(&session, "invalid_credential", client)
                .await?);
        };
        let stored = StoredPasskey {
            id: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            user: session.user,
            name,
            credential_id: passkey.cred_id().as_ref().to_vec(),
            credential: serde_json::to_string(&passkey)
                .map_err(|e| FlowError::InvalidInput(format!("the passkey cannot be kept: {e}")))?,
            sign_count: 0,
            created_at: now,
            last_used_at: None,
        };
        let added = d
            .passkeys
            .add_passkey(&stored, &session.sam_account_name, MAX_PASSKEYS)
            .await?;
        if !added {
            let full = d.passkeys.passkeys(&session.user).await?.len() >= MAX_PASSKEYS;
            let (reason, refusal) = if full {
                ("limit_reached", FlowError::LimitReached)
            } else {
                ("credential_in_use", FlowError::InvalidCredential)
            };
            self.refused_passkey(&session, reason, client).await?;
            return Err(refusal);
        }
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Passkey, None, client)
            .await
    }

    /// Removes the user's passkey `id`; `NotFound` when the user has none of that id.
    pub async fn remove_passkey(
        &self,
        token: &str,
        id: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        if !d.passkeys.remove_passkey(&session.user, id).await? {
            return Err(FlowError::NotFound);
        }
        let notice = MailKind::MethodRemoved {
            method: MethodKind::Passkey,
        };
        self.method_changed(
            &session,
            MethodKind::Passkey,
            AuditKind::EnrollmentRemoved,
            None,
            notice,
            client,
        )
        .await
    }

    pub(super) async fn passkey_summaries(
        &self,
        session: &Session,
    ) -> Result<Vec<PasskeySummary>, FlowError> {
        Ok(self
            .deps
            .passkeys
            .passkeys(&session.user)
            .await?
            .into_iter()
            .map(|p| PasskeySummary {
                id: p.id,
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect())
    }

    /// Audits a refused registration; returns the answer.
    async fn refused_passkey(
        &self,
        session: &Session,
        reason: &str,
        client: &Client,
    ) -> Result<FlowError, FlowError> {
        self.deps
            .audit
            .record(
                client,
                Audit {
                    event: AuditKind::EnrollmentConfirm,
                    outcome: Outcome::Failure,
                    user: Some(session.user),
                    sam_account_name: Some(&session.sam_account_name),
                    method: Some(MethodKind::Passkey),
                    reason: Some(reason),
                },
            )
            .await?;
        Ok(FlowError::InvalidCredential)
    }
}
