//! The challenge a reset or unlock flow answers with a passkey.

use webauthn_rs::prelude::Passkey;

use super::Reset;
use crate::domain::ObjectGuid;
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::passkey::{decoy_credential_ids, decoy_passkey, strip_transports};
use crate::domain::store::CeremonyPurpose;
use crate::domain::throttle::PerAddress;

impl Reset<'_> {
    /// The `{"publicKey":{…}}` request options for `navigator.credentials.get()`, allowing the
    /// user's passkeys. A decoy, and a user without passkeys, get options allowing credentials
    /// derived from the login (stable, of realistic lengths), made by the same library call;
    /// nobody's `transports` are shown, so the two cannot be told apart.
    pub async fn passkey_options(
        &self,
        flow: &str,
        client: &Client,
    ) -> Result<serde_json::Value, FlowError> {
        let d = self.deps;
        let live = self.live(flow).await?;
        let Some(party) = d.settings.passkeys.party() else {
            return Err(FlowError::InvalidInput(
                "Passkeys are not available here.".to_owned(),
            ));
        };
        d.throttle
            .ip_limit(
                client,
                PerAddress::Verifications,
                d.settings.throttle.ip_max_verifications,
            )
            .await?;
        let guid = live.flow.user.unwrap_or(ObjectGuid(uuid::Uuid::nil()));
        let stored = d.passkeys.passkeys(&guid).await?;
        let real: Vec<Passkey> = stored
            .iter()
            .filter(|_| live.flow.user.is_some())
            .filter_map(|p| serde_json::from_str(&p.credential).ok())
            .collect();
        let allowed = if real.is_empty() {
            decoy_credential_ids(&d.keys, &live.flow.login)
                .iter()
                .map(|id| decoy_passkey(id))
                .collect()
        } else {
            real
        };
        let (options, state) = party
            .start_passkey_authentication(&allowed)
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))?;
        let state = serde_json::to_string(&state)
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))?;
        d.passkeys
            .put_ceremony(
                CeremonyPurpose::Authentication,
                &live.id_hash,
                &state,
                live.flow.expires_at,
            )
            .await?;
        let mut options = serde_json::to_value(options)
            .map_err(|e| FlowError::InvalidInput(format!("no passkey challenge: {e}")))?;
        strip_transports(&mut options);
        Ok(options)
    }
}
