//! The licence gate. Microsoft's own on-premises password writeback (Entra SSPR) requires an
//! Azure AD Premium licence; sspr-bridge mirrors that: self-service (registration, reset, unlock)
//! runs only when the operator has declared the licence. The helpdesk works either way, since
//! administrators may always reset passwords.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LicenceGate {
    azure_ad_premium: bool,
}

/// Self-service was asked for while the gate is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Self-service password reset is not enabled: on-premises password writeback requires an Azure AD \
     Premium licence. An administrator enables it by setting licence.azure_ad_premium = true \
     (or SSPR__LICENCE__AZURE_AD_PREMIUM=true). Until then, please contact the helpdesk."
)]
pub struct LicenceRequired;

impl LicenceGate {
    pub fn new(azure_ad_premium: bool) -> Self {
        Self { azure_ad_premium }
    }

    pub fn self_service_enabled(self) -> bool {
        self.azure_ad_premium
    }

    pub fn require_self_service(self) -> Result<(), LicenceRequired> {
        if self.azure_ad_premium {
            Ok(())
        } else {
            Err(LicenceRequired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_opens_only_with_the_licence() {
        assert_eq!(
            LicenceGate::new(false).require_self_service(),
            Err(LicenceRequired)
        );
        assert_eq!(LicenceGate::new(true).require_self_service(), Ok(()));
        let message = LicenceRequired.to_string();
        assert!(message.contains("Azure AD Premium"));
        assert!(message.contains("licence.azure_ad_premium"));
    }
}
