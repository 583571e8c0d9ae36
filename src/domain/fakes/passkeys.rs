//! Registered passkeys and WebAuthn ceremonies in memory, with the store's rules (the limit,
//! unique credential ids, a counter that only goes up, a ceremony taken once).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{CeremonyPurpose, PasskeyStore, StoreError, StoredPasskey};

/// A ceremony's state and when it ends, by purpose and subject.
type Ceremonies = HashMap<(&'static str, Vec<u8>), (String, Timestamp)>;

#[derive(Default)]
pub struct MemoryPasskeys {
    passkeys: Mutex<Vec<StoredPasskey>>,
    ceremonies: Mutex<Ceremonies>,
}

#[async_trait]
impl PasskeyStore for MemoryPasskeys {
    async fn passkeys(&self, user: &ObjectGuid) -> Result<Vec<StoredPasskey>, StoreError> {
        let all = self.passkeys.lock().unwrap();
        Ok(all.iter().filter(|p| p.user == *user).cloned().collect())
    }

    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        _sam_account_name: &str,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let mut all = self.passkeys.lock().unwrap();
        let theirs = all.iter().filter(|p| p.user == passkey.user).count();
        if theirs >= limit || all.iter().any(|p| p.credential_id == passkey.credential_id) {
            return Ok(false);
        }
        all.push(passkey.clone());
        Ok(true)
    }

    async fn remove_user_passkeys(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let mut all = self.passkeys.lock().unwrap();
        let before = all.len();
        all.retain(|p| p.user != *user);
        Ok((before - all.len()) as u64)
    }

    async fn remove_passkey(&self, user: &ObjectGuid, id: &str) -> Result<bool, StoreError> {
        let mut all = self.passkeys.lock().unwrap();
        let before = all.len();
        all.retain(|p| !(p.user == *user && p.id == id));
        Ok(all.len() < before)
    }

    async fn record_passkey_use(
        &self,
        user: &ObjectGuid,
        credential_id: &[u8],
        sign_count: u32,
        credential: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut all = self.passkeys.lock().unwrap();
        let found = all
            .iter_mut()
            .find(|p| p.user == *user && p.credential_id == credential_id);
        match found {
            Some(p) if p.sign_count < sign_count || (p.sign_count == 0 && sign_count == 0) => {
                p.sign_count = sign_count;
                p.credential = credential.to_owned();
                p.last_used_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn put_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.ceremonies.lock().unwrap().insert(
            (purpose.as_str(), subject.to_vec()),
            (state.to_owned(), expires_at),
        );
        Ok(())
    }

    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let taken = self
            .ceremonies
            .lock()
            .unwrap()
            .remove(&(purpose.as_str(), subject.to_vec()));
        Ok(taken.and_then(|(state, expires)| (expires > now).then_some(state)))
    }
}
