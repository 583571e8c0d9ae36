//! Passkey rules on the in-memory passkey store: who is offered what, and what a start counts.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::harness::Fakes;
use crate::domain::clock::Timestamp;
use crate::domain::fakes::MemoryPasskeys;
use crate::domain::passkey::decoy_passkey;
use crate::domain::reset::Reset;
use crate::domain::store::{FlowStore, MethodKind, PasskeyStore, StoredPasskey};

const OLD: &str = "Old-Password-1";

#[tokio::test]
async fn a_passkey_alone_makes_a_user_registered_and_decoys_look_alike() {
    let mut f = Fakes::new().await;
    let passkeys = Arc::new(MemoryPasskeys::default());
    f.deps.passkeys = passkeys.clone();
    let ann = f.directory.add_user("ann", OLD);
    let credential_id = vec![7u8; 32];
    let stored = StoredPasskey {
        id: "p1".to_owned(),
        user: ann.guid,
        name: "Phone".to_owned(),
        credential_id: credential_id.clone(),
        credential: serde_json::to_string(&decoy_passkey(&credential_id)).unwrap(),
        sign_count: 0,
        created_at: Timestamp::from_millis(0),
        last_used_at: None,
    };
    assert!(passkeys.add_passkey(&stored, "ann", 5).await.unwrap());

    let reset = Reset::new(&f.deps);
    let client = f.client();
    let started = reset.start("ann", &client).await.unwrap();
    assert!(started.methods.contains(&MethodKind::Passkey));
    let flow = f
        .store
        .flow(&crate::domain::secrets::token_hash(&started.flow))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(flow.user, Some(ann.guid), "a passkey alone registers");

    let real = reset.passkey_options(&started.flow, &client).await.unwrap();
    let allowed = &real["publicKey"]["allowCredentials"];
    assert_eq!(allowed[0]["id"], URL_SAFE_NO_PAD.encode(&credential_id));
    let unknown = reset.start("nobody", &client).await.unwrap();
    let decoy = reset.passkey_options(&unknown.flow, &client).await.unwrap();
    let fields = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&real["publicKey"]), fields(&decoy["publicKey"]));
    assert_eq!(
        fields(&allowed[0]),
        fields(&decoy["publicKey"]["allowCredentials"][0])
    );
}
