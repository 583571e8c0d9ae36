//! A software passkey authenticator: P-256 / ES256, "none" attestation, user verification
//! always done, answers shaped as a browser's `PublicKeyCredential.toJSON()`. A test can clone
//! it and make the clone answer with a counter that went back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The origin the test apps' `server.public_url` gives.
pub const ORIGIN: &str = "http://localhost:8080";
pub const RP_ID: &str = "localhost";

#[derive(Clone)]
pub struct SoftAuthenticator {
    key: PKey<Private>,
    pub credential_id: Vec<u8>,
    /// The signature counter of the last answer.
    pub counter: u32,
    /// The user handle the relying party gave at registration.
    pub user_handle: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// CBOR head of a major type with a length.
fn cbor_head(major: u8, len: usize) -> Vec<u8> {
    match len {
        0..24 => vec![major << 5 | len as u8],
        24..256 => vec![major << 5 | 24, len as u8],
        _ => {
            let mut head = vec![major << 5 | 25];
            head.extend_from_slice(&(len as u16).to_be_bytes());
            head
        }
    }
}

fn cbor_text(text: &str) -> Vec<u8> {
    let mut out = cbor_head(3, text.len());
    out.extend_from_slice(text.as_bytes());
    out
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = cbor_head(2, bytes.len());
    out.extend_from_slice(bytes);
    out
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        Self {
            key,
            credential_id: rand::random::<[u8; 32]>().to_vec(),
            counter: 0,
            user_handle: Vec::new(),
        }
    }

    /// The COSE_Key of the public key (kty EC2, alg ES256, crv P-256).
    fn cose_key(&self) -> Vec<u8> {
        let ec = self.key.ec_key().unwrap();
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        let mut ctx = BigNumContext::new().unwrap();
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut out = vec![0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        out.extend(cbor_bytes(&x.to_vec_padded(32).unwrap()));
        out.push(0x22);
        out.extend(cbor_bytes(&y.to_vec_padded(32).unwrap()));
        out
    }

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()` with `options` (the `{"publicKey":{…}}` the service gave).
    pub fn create(&mut self, options: &Value) -> Value {
        let public_key = &options["publicKey"];
        assert_eq!(public_key["rp"]["id"], RP_ID, "{options}");
        self.user_handle = unb64(public_key["user"]["id"].as_str().unwrap());
        let client_data =
            Self::client_data("webauthn.create", public_key["challenge"].as_str().unwrap());
        let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
        auth_data.push(0x45); // UP | UV | AT
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]); // AAGUID
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = vec![0xA3];
        attestation.extend(cbor_text("fmt"));
        attestation.extend(cbor_text("none"));
        attestation.extend(cbor_text("attStmt"));
        attestation.push(0xA0);
        attestation.extend(cbor_text("authData"));
        attestation.extend(cbor_bytes(&auth_data));
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "authenticatorData": b64(&auth_data),
                "transports": ["internal", "hybrid"],
                "publicKeyAlgorithm": -7,
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()` with `options`, the counter raised by one (a clone sets
    /// [`Self::counter`] first). It answers whatever credentials the options allow.
    pub fn get(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.sign(options)
    }

    /// An answer with the counter as it is.
    pub fn sign(&self, options: &Value) -> Value {
        let public_key = &options["publicKey"];
        let client_data =
            Self::client_data("webauthn.get", public_key["challenge"].as_str().unwrap());
        let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
        auth_data.push(0x05); // UP | UV
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        signer.update(&signed).unwrap();
        let signature = signer.sign_to_vec().unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
