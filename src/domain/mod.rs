//! The flows and rules of self-service password reset. Nothing in here knows about HTTP, SQL or
//! LDAP: it talks to the directory, the store and the mailer through the small traits in
//! [`directory`] and [`store`], so every rule can be unit-tested with in-memory fakes while the
//! integration tests use the real Samba DC, SMTP server and databases.

pub mod audit;
pub mod banned;
pub mod change;
pub mod client;
pub mod clock;
pub mod deps;
pub mod directory;
pub mod enrollment;
pub mod error;
#[cfg(test)]
pub mod fakes;
pub mod helpdesk;
pub mod history;
pub mod hooks;
pub mod licence;
pub mod locale;
pub mod network;
pub mod notifier;
pub mod notify;
pub mod passkey;
pub mod policy;
pub mod protection;
pub mod registration_code;
pub mod reminders;
pub mod report;
pub mod reset;
pub mod scope;
pub mod secrets;
pub mod settings;
pub mod signin;
pub mod store;
pub mod throttle;
pub mod totp;
pub mod verification;

use std::fmt;

/// An AD object's `objectGUID`. Registrations are keyed by it because a user's DN changes when the
/// account is renamed or moved, and the sAMAccountName can be reused after deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectGuid(pub uuid::Uuid);

impl ObjectGuid {
    /// AD stores a GUID as 16 bytes with the first three fields little-endian (MS-DTYP 2.3.4.2).
    pub fn from_ad_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        Some(Self(uuid::Uuid::from_bytes_le(bytes)))
    }
}

impl fmt::Display for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ObjectGuid {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_uses_microsoft_byte_order() {
        // objectGUID of a Samba user as returned over LDAP, and the string `samba-tool` prints.
        let raw = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let guid = ObjectGuid::from_ad_bytes(&raw).unwrap();
        assert_eq!(guid.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(
            guid,
            "00112233-4455-6677-8899-aabbccddeeff".parse().unwrap()
        );
        assert!(ObjectGuid::from_ad_bytes(&raw[..15]).is_none());
    }
}
