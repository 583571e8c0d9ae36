//! Passkeys (WebAuthn) as a verification method: the relying party this service is, and the rules
//! around the library's ceremonies (names, limits, user handles, decoy options, counters).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::{Host, Url};
use webauthn_rs::prelude::{Passkey, Webauthn, WebauthnBuilder};

use super::ObjectGuid;
use super::secrets::Keys;

/// How many passkeys one user may register.
pub const MAX_PASSKEYS: usize = 5;

/// The longest name a passkey may have, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party, when passkeys are on (`server.public_url` names a host, not an IP address).
#[derive(Clone)]
pub struct PasskeySettings {
    party: Option<Arc<Webauthn>>,
    rp_id: Option<String>,
}

impl fmt::Debug for PasskeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeySettings")
            .field("rp_id", &self.rp_id)
            .finish()
    }
}

/// Why passkeys cannot be set up as configured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelyingPartyError {
    #[error("{rp_id:?} is neither the host of server.public_url ({host:?}) nor a domain it is in")]
    NotASuffix { rp_id: String, host: String },
    #[error("the WebAuthn library refused the relying party: {0}")]
    Refused(String),
}

impl PasskeySettings {
    pub fn off() -> Self {
        Self {
            party: None,
            rp_id: None,
        }
    }

    /// The relying party of a site at `public_url`: its id is `rp_id`, or when that is empty the
    /// host; its origin is `public_url`'s. Off (`Ok` with passkeys disabled) where the host is an
    /// IP address, which WebAuthn refuses as a relying-party id.
    pub fn for_site(public_url: &Url, rp_id: &str) -> Result<Self, RelyingPartyError> {
        let host = match public_url.host() {
            Some(Host::Domain(host)) if host.parse::<IpAddr>().is_err() => host.to_lowercase(),
            _ => return Ok(Self::off()),
        };
        let rp_id = match rp_id.trim().trim_end_matches('.').to_lowercase() {
            id if id.is_empty() => host.clone(),
            id => id,
        };
        // A registrable suffix: the host itself, or a domain above it with at least two labels
        // (a browser refuses a public suffix; "com" or "local" alone is never right).
        let suffix = host
            .strip_suffix(&rp_id)
            .is_some_and(|rest| rest.ends_with('.') && rp_id.contains('.'));
        if rp_id != host && !suffix {
            return Err(RelyingPartyError::NotASuffix { rp_id, host });
        }
        let mut origin = public_url.clone();
        origin.set_path("/");
        origin.set_query(None);
        let party = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("sspr-bridge").build())
            .map_err(|e| RelyingPartyError::Refused(e.to_string()))?;
        Ok(Self {
            party: Some(Arc::new(party)),
            rp_id: Some(rp_id),
        })
    }

    pub fn passkeys_enabled(&self) -> bool {
        self.party.is_some()
    }

    /// The relying-party id, when passkeys are on.
    pub fn rp_id(&self) -> Option<&str> {
        self.rp_id.as_deref()
    }

    pub(crate) fn party(&self) -> Option<&Webauthn> {
        self.party.as_deref()
    }
}

/// A passkey's name as the user typed it, trimmed; `None` when empty or too long.
pub fn typed_name(name: &str) -> Option<String> {
    let name = name.trim();
    let chars = name.chars().count();
    ((1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control))
        .then(|| name.to_owned())
}

/// The WebAuthn user handle of an account: a keyed hash of its objectGUID, so a credential does
/// not carry the GUID in clear, and stable, so every passkey of the user carries the same one.
pub fn user_handle(keys: &Keys, user: &ObjectGuid) -> uuid::Uuid {
    let hash = keys.code_hash("passkey-user-handle", user.0.as_bytes(), "");
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Lengths of credential ids that authenticators commonly make (platform authenticators 16 to
/// 32 bytes, security keys 64 and more).
const DECOY_ID_LENGTHS: [usize; 4] = [16, 20, 32, 64];

/// The credential ids a login without passkeys is offered: one or two, from a keyed hash of the
/// normalised login, so they are the same at every request and mean nothing without the key.
pub fn decoy_credential_ids(keys: &Keys, login: &str) -> Vec<Vec<u8>> {
    let login = login.trim().to_lowercase();
    let seed = keys.code_hash("passkey-decoy", login.as_bytes(), "");
    let count = 1 + usize::from(seed[0] % 2);
    (0..count)
        .map(|n| {
            let len = DECOY_ID_LENGTHS[usize::from(seed[1 + n]) % DECOY_ID_LENGTHS.len()];
            let mut id = Vec::with_capacity(len);
            let mut block = 0u8;
            while id.len() < len {
                let part = keys.code_hash("passkey-decoy-id", &seed, &format!("{n}/{block}"));
                id.extend_from_slice(&part[..part.len().min(len - id.len())]);
                block += 1;
            }
            id
        })
        .collect()
}

/// A credential that no authenticator holds, with the id `credential_id`: what a decoy's
/// options are made from, so they come from the same code as a real user's. Its public key is
/// the P-256 base point, whose private key (1) is known to nobody's authenticator.
pub fn decoy_passkey(credential_id: &[u8]) -> Passkey {
    const X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
    const Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
    let bytes = |b64: &str| URL_SAFE_NO_PAD.decode(b64).expect("a constant");
    let credential = serde_json::json!({
        "cred": {
            "cred_id": URL_SAFE_NO_PAD.encode(credential_id),
            "cred": {
                "type_": "ES256",
                "key": {"EC_EC2": {"curve": "SECP256R1", "x": bytes(X), "y": bytes(Y)}}
            },
            "counter": 0,
            "transports": null,
            "user_verified": true,
            "backup_eligible": true,
            "backup_state": true,
            "registration_policy": "required",
            "extensions": {},
            "attestation": {"data": "None", "metadata": "None"},
            "attestation_format": "none"
        }
    });
    serde_json::from_value(credential).expect("the decoy credential is well-formed")
}

/// Removes `transports` from the options' `allowCredentials`: a decoy has none, so a real
/// user's must not show them either.
pub fn strip_transports(options: &mut serde_json::Value) {
    let allowed = options
        .pointer_mut("/publicKey/allowCredentials")
        .and_then(serde_json::Value::as_array_mut);
    for credential in allowed.into_iter().flatten() {
        if let Some(credential) = credential.as_object_mut() {
            credential.remove("transports");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_relying_party_is_the_host_or_a_domain_it_is_in() {
        let on = PasskeySettings::for_site(&url("https://sspr.corp.example.com/x"), "").unwrap();
        assert_eq!(on.rp_id(), Some("sspr.corp.example.com"));
        let up = PasskeySettings::for_site(&url("https://sspr.corp.example.com"), "Example.com");
        assert_eq!(up.unwrap().rp_id(), Some("example.com"));
        let local = PasskeySettings::for_site(&url("http://localhost:8080"), "").unwrap();
        assert!(local.passkeys_enabled());
        for wrong in [
            "other.com",
            "ample.com",
            "com",
            "sspr.corp.example.com.evil",
        ] {
            let refused = PasskeySettings::for_site(&url("https://sspr.corp.example.com"), wrong);
            assert!(refused.is_err(), "{wrong}");
        }
        for ip in ["https://192.0.2.1", "https://[2001:db8::1]:8443"] {
            let off = PasskeySettings::for_site(&url(ip), "").unwrap();
            assert!(!off.passkeys_enabled() && off.rp_id().is_none(), "{ip}");
        }
    }

    #[test]
    fn names_are_trimmed_and_between_1_and_64_characters() {
        assert_eq!(typed_name("  Work phone "), Some("Work phone".to_owned()));
        assert_eq!(typed_name("   "), None);
        assert_eq!(
            typed_name(&"é".repeat(64)).map(|n| n.chars().count()),
            Some(64)
        );
        assert_eq!(typed_name(&"é".repeat(65)), None);
        assert_eq!(typed_name("a\nb"), None);
    }

    #[test]
    fn decoy_ids_are_stable_per_login_and_of_realistic_lengths() {
        let keys = Keys::new(&[3; 32]);
        let ids = decoy_credential_ids(&keys, "JDoe ");
        assert_eq!(ids, decoy_credential_ids(&keys, "jdoe"));
        assert_ne!(ids, decoy_credential_ids(&keys, "asmith"));
        let other_key = decoy_credential_ids(&Keys::new(&[4; 32]), "jdoe");
        assert_ne!(ids, other_key);
        for login in ["a", "b", "c", "d", "e", "f"] {
            let ids = decoy_credential_ids(&keys, login);
            assert!((1..=2).contains(&ids.len()));
            assert!(ids.iter().all(|id| DECOY_ID_LENGTHS.contains(&id.len())));
        }
    }

    #[test]
    fn user_handles_are_keyed_and_stable() {
        let keys = Keys::new(&[3; 32]);
        let guid = ObjectGuid(uuid::Uuid::from_u128(42));
        assert_eq!(user_handle(&keys, &guid), user_handle(&keys, &guid));
        assert_ne!(user_handle(&keys, &guid), guid.0);
        assert_ne!(
            user_handle(&keys, &guid),
            user_handle(&Keys::new(&[4; 32]), &guid)
        );
    }

    #[test]
    fn decoy_options_come_from_the_library_like_real_ones() {
        let party = PasskeySettings::for_site(&url("https://sspr.test"), "").unwrap();
        let decoy = decoy_passkey(&[9; 32]);
        let (options, _) = party
            .party()
            .unwrap()
            .start_passkey_authentication(&[decoy])
            .unwrap();
        let mut options = serde_json::to_value(options).unwrap();
        strip_transports(&mut options);
        let allowed = &options["publicKey"]["allowCredentials"][0];
        assert_eq!(allowed["id"], URL_SAFE_NO_PAD.encode([9; 32]));
        assert!(allowed.get("transports").is_none());
        assert_eq!(options["publicKey"]["userVerification"], "required");
        assert_eq!(options["publicKey"]["rpId"], "sspr.test");
    }
}
