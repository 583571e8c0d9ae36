//! Secrets at rest and one-time codes. TOTP secrets are sealed with XChaCha20-Poly1305 under a
//! key derived from `security.secret_key`, bound to the user's objectGUID so a sealed secret
//! copied to another row does not open. Emailed codes and bearer tokens are stored only as
//! hashes; codes are compared in constant time.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 24;

/// Keys derived from `security.secret_key`, one per use, so no key serves two purposes.
pub struct Keys {
    seal: XChaCha20Poly1305,
    code_mac: Zeroizing<[u8; 32]>,
    login_mac: Zeroizing<[u8; 32]>,
    csrf_mac: Zeroizing<[u8; 32]>,
    history_secret: Zeroizing<[u8; 32]>,
    history_salt_mac: Zeroizing<[u8; 32]>,
    recovery_code_mac: Zeroizing<[u8; 32]>,
}

/// Bytes of HMAC-SHA256 kept in a login hash: 128 bits, so a collision between two typed logins
/// is out of reach, and the audit column stays short (32 hex digits).
const LOGIN_HASH_BYTES: usize = 16;

fn derive(master: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Keys {
    pub fn new(secret_key: &[u8; 32]) -> Self {
        let seal_key = derive(secret_key, b"sspr-bridge/seal/v1");
        Self {
            seal: XChaCha20Poly1305::new(seal_key.as_ref().into()),
            code_mac: derive(secret_key, b"sspr-bridge/code/v1"),
            login_mac: derive(secret_key, b"sspr-bridge/login/v1"),
            csrf_mac: derive(secret_key, b"sspr-bridge/csrf/v1"),
            history_secret: derive(secret_key, b"sspr-bridge/history/v1"),
            history_salt_mac: derive(secret_key, b"sspr-bridge/history-salt/v1"),
            recovery_code_mac: derive(secret_key, b"sspr-bridge/recovery-code/v1"),
        }
    }

    /// `nonce || ciphertext+tag`; `context` (e.g. the objectGUID) must match when opening.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .seal
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a short secret cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// `None` if the data was altered, sealed for another context, or under another key.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.seal
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// A keyed hash of a code: without the server's key, a stolen database does not let anyone
    /// try the 10^8 possible codes offline.
    pub fn code_hash(&self, purpose: &str, subject: &[u8], code: &str) -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.code_mac.as_ref())
            .expect("HMAC takes any key");
        for part in [purpose.as_bytes(), subject, code.as_bytes()] {
            // Length-prefixed, so ("ab","c") and ("a","bc") hash differently.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// What the audit and the throttles keep of a login that may be no account's name: people
    /// type passwords into username boxes. Keyed, so a stolen database cannot be searched with a
    /// dictionary without the server's key; an operator with the key finds the rows by typing
    /// the same text (`sspr-bridge audit --login`). Trimmed and in lower case, as AD compares
    /// names and the flows normalise them.
    pub fn login_hash(&self, typed: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.login_mac.as_ref())
            .expect("HMAC takes any key");
        mac.update(typed.trim().to_lowercase().as_bytes());
        mac.finalize().into_bytes()[..LOGIN_HASH_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Constant-time comparison of a typed code with the stored hash.
    pub fn code_matches(&self, purpose: &str, subject: &[u8], code: &str, stored: &[u8]) -> bool {
        self.code_hash(purpose, subject, code).ct_eq(stored).into()
    }

    /// What the local password history keeps of a password: Argon2id with the server's key as
    /// its secret and a salt of the account's own (a keyed hash of `subject`, the objectGUID),
    /// so one run gives the value to compare with each of the account's remembered ones, and a
    /// stolen database cannot be attacked offline without the key. Costs [`HISTORY_KDF`]; run
    /// it on a blocking thread.
    pub fn password_history_hash(&self, subject: &[u8], password: &str) -> Zeroizing<[u8; 32]> {
        self.password_history_hash_in(subject, password, &mut Vec::new())
    }

    /// [`Self::password_history_hash`] in `memory`, which is sized on first use and wiped after
    /// each, so a thread that hashes again and again keeps one block of [`HISTORY_KDF`]'s memory
    /// instead of freeing and allocating 19 MiB each time (glibc keeps what was freed).
    pub fn password_history_hash_in(
        &self,
        subject: &[u8],
        password: &str,
        memory: &mut Vec<argon2::Block>,
    ) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.history_salt_mac.as_ref())
            .expect("HMAC takes any key");
        mac.update(subject);
        let salt = mac.finalize().into_bytes();
        let params = argon2::Params::new(HISTORY_KDF.memory_kib, HISTORY_KDF.passes, 1, Some(32))
            .expect("valid Argon2 parameters");
        let kdf = argon2::Argon2::new_with_secret(
            self.history_secret.as_ref(),
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .expect("a 32-byte secret is accepted");
        let blocks = kdf.params().block_count();
        if memory.len() != blocks {
            *memory = vec![argon2::Block::default(); blocks];
        }
        let mut out = Zeroizing::new([0u8; 32]);
        let hashed = kdf.hash_password_into_with_memory(
            password.as_bytes(),
            &salt[..16],
            out.as_mut(),
            memory.as_mut_slice(),
        );
        memory.iter_mut().for_each(zeroize::Zeroize::zeroize);
        hashed.expect("a password of at most 256 characters and a 16-byte salt are accepted");
        out
    }

    /// The form token for a browser's CSRF cookie and the bearer cookie of the area it posts to
    /// (`""` where there is none). Without the server's key nobody can mint one, so a cookie
    /// planted from a sibling host is useless without a token for the victim's own session.
    pub fn csrf_token(&self, cookie: &str, bearer: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.csrf_mac.as_ref())
            .expect("HMAC takes any key");
        for part in [b"csrf".as_slice(), cookie.as_bytes(), bearer.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// What is stored of a recovery code (as [`normalise_recovery_code`] gives it): a keyed
    /// hash bound to the account's objectGUID, so a stolen database gives nobody the ~2^49
    /// codes to try offline, and a row copied to another account matches nothing. A typed code
    /// is found by its hash in one indexed query, which compares the whole value.
    pub fn recovery_code_hash(&self, subject: &[u8], code: &str) -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.recovery_code_mac.as_ref())
            .expect("HMAC takes any key");
        for part in [subject, code.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time check of a posted form token.
    pub fn csrf_matches(&self, cookie: &str, bearer: &str, sent: &str) -> bool {
        self.csrf_token(cookie, bearer)
            .as_bytes()
            .ct_eq(sent.as_bytes())
            .into()
    }
}

/// The cost of [`Keys::password_history_hash`]: OWASP's first Argon2id choice (19 MiB, two
/// passes, one lane). Measured on the 2-core test machine under load: 43 ms in a release build
/// (78 ms with the dev profile), once per reset, since the check's hash is the one remembered.
pub struct HistoryKdf {
    pub memory_kib: u32,
    pub passes: u32,
}

pub const HISTORY_KDF: HistoryKdf = HistoryKdf {
    memory_kib: 19 * 1024,
    passes: 2,
};

/// A new bearer token (for a session or a flow) and the hash that is stored for it.
pub fn new_token() -> (String, Vec<u8>) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// An 8-digit emailed code.
pub fn new_email_code() -> Zeroizing<String> {
    Zeroizing::new(format!("{:08}", rand::random_range(0..100_000_000u32)))
}

/// A temporary password of `len` characters with upper and lower case letters, digits and
/// symbols (AD's complexity rule asks for three of those), without look-alikes (0/O, 1/l/I) that
/// an operator reads out on the phone.
pub fn temporary_password(len: usize) -> Zeroizing<String> {
    use rand::seq::{IndexedRandom, SliceRandom};
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-=?@_";
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut rng = rand::rng();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|class| *class.choose(&mut rng).expect("non-empty"))
        .collect();
    while chars.len() < len.max(4) {
        chars.push(*all.choose(&mut rng).expect("non-empty"));
    }
    chars.shuffle(&mut rng);
    Zeroizing::new(String::from_utf8(chars).expect("ASCII"))
}

/// The characters of a recovery code: Crockford's base 32 without 0 and 1 (and, as in it, without
/// I, L, O and U), so nothing reads as something else; 30 of them, in lower case.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstvwxyz";

/// Characters in a recovery code: 10 of 30 give 49 bits.
const RECOVERY_CODE_LEN: usize = 10;

/// A new recovery code, `xxxxx-xxxxx`, from the thread's CSPRNG (ChaCha, seeded by the OS).
pub fn new_recovery_code() -> Zeroizing<String> {
    use rand::seq::IndexedRandom;
    let mut rng = rand::rng();
    let mut code = Zeroizing::new(String::with_capacity(RECOVERY_CODE_LEN + 1));
    for i in 0..RECOVERY_CODE_LEN {
        if i == RECOVERY_CODE_LEN / 2 {
            code.push('-');
        }
        code.push(char::from(
            *RECOVERY_ALPHABET.choose(&mut rng).expect("non-empty"),
        ));
    }
    code
}

/// A recovery code as typed: case, spaces and dashes ignored; `None` unless it has the length
/// and characters of one.
pub fn normalise_recovery_code(typed: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    (code.len() == RECOVERY_CODE_LEN && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then_some(code)
}

/// A code as typed: spaces and dashes removed; `None` unless exactly `digits` ASCII digits.
pub fn normalise_code(typed: &str, digits: usize) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == digits && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7u8; 32])
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let keys = keys();
        let sealed = keys.seal(b"totp secret", b"user-1");
        assert!(
            !sealed.windows(11).any(|w| w == b"totp secret"),
            "not in clear"
        );
        assert_eq!(
            keys.open(&sealed, b"user-1").unwrap().as_slice(),
            b"totp secret"
        );
        assert!(keys.open(&sealed, b"user-2").is_none());
        assert!(Keys::new(&[8u8; 32]).open(&sealed, b"user-1").is_none());
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(keys.open(&tampered, b"user-1").is_none());
        assert!(keys.open(&sealed[..10], b"user-1").is_none());
        assert_ne!(
            sealed,
            keys.seal(b"totp secret", b"user-1"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn code_hashes_are_keyed_and_bound_to_purpose_and_subject() {
        let keys = keys();
        let stored = keys.code_hash("reset_email", b"flow", "12345678");
        assert!(keys.code_matches("reset_email", b"flow", "12345678", &stored));
        assert!(!keys.code_matches("reset_email", b"flow", "12345679", &stored));
        assert!(!keys.code_matches("enroll_email", b"flow", "12345678", &stored));
        assert!(!keys.code_matches("reset_email", b"other", "12345678", &stored));
        assert_ne!(
            stored,
            Keys::new(&[9u8; 32]).code_hash("reset_email", b"flow", "12345678")
        );
    }

    #[test]
    fn login_hashes_are_keyed_stable_and_normalised() {
        let keys = keys();
        let hash = keys.login_hash("Hunter2-Secret!");
        assert_eq!(hash.len(), 32);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, keys.login_hash("Hunter2-Secret!"), "stable");
        assert_eq!(hash, Keys::new(&[7u8; 32]).login_hash("Hunter2-Secret!"));
        assert_eq!(
            hash,
            keys.login_hash("  hunter2-SECRET! "),
            "trimmed, any case"
        );
        assert_eq!(keys.login_hash("ÉLODIE"), keys.login_hash("élodie"));
        assert_ne!(hash, keys.login_hash("Hunter2-Secret"));
        assert_ne!(
            hash,
            Keys::new(&[8u8; 32]).login_hash("Hunter2-Secret!"),
            "keyed"
        );
    }

    #[test]
    fn a_history_hash_is_keyed_and_salted_per_account() {
        let k = keys();
        let ann = k.password_history_hash(b"ann-guid", "Velvet-Harbour-82");
        // Kept memory gives the same hash, again and again, and is left wiped.
        let mut memory = Vec::new();
        for _ in 0..2 {
            let kept = k.password_history_hash_in(b"ann-guid", "Velvet-Harbour-82", &mut memory);
            assert_eq!(*kept, *ann);
            assert!(memory.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        }
        assert_eq!(
            *ann,
            *k.password_history_hash(b"ann-guid", "Velvet-Harbour-82")
        );
        assert_ne!(
            *ann,
            *k.password_history_hash(b"ann-guid", "Velvet-Harbour-83")
        );
        assert_ne!(
            *ann,
            *k.password_history_hash(b"bob-guid", "Velvet-Harbour-82")
        );
        let other_key = Keys::new(&[8u8; 32]);
        assert_ne!(
            *ann,
            *other_key.password_history_hash(b"ann-guid", "Velvet-Harbour-82")
        );
    }

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let (a, hash) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash, token_hash(&a));
        assert_eq!(hash.len(), 32);
    }

    #[test]
    fn temporary_passwords_meet_complexity_and_avoid_look_alikes() {
        for _ in 0..200 {
            let p = temporary_password(16);
            assert_eq!(p.len(), 16);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| !b.is_ascii_alphanumeric()));
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        }
        assert_ne!(*temporary_password(16), *temporary_password(16));
    }

    #[test]
    fn recovery_codes_are_readable_random_and_typed_forgivingly() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert!(!code.contains(['0', 'o', '1', 'i', 'l']));
        assert_ne!(*code, *new_recovery_code());
        let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
        assert_eq!(
            normalise_recovery_code(&typed)
                .as_deref()
                .map(String::as_str),
            Some(code.replace('-', "").as_str())
        );
        assert_eq!(normalise_recovery_code("abcde-fghj"), None, "too short");
        assert_eq!(
            normalise_recovery_code("abcde-fgh0k"),
            None,
            "not a code character"
        );
        let keys = keys();
        let stored = keys.recovery_code_hash(b"ann", "abcdefghjk");
        assert_ne!(stored, keys.recovery_code_hash(b"bob", "abcdefghjk"));
        assert_ne!(
            stored,
            Keys::new(&[8u8; 32]).recovery_code_hash(b"ann", "abcdefghjk")
        );
    }

    #[test]
    fn codes_have_eight_digits_and_typing_is_forgiving() {
        let code = new_email_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            normalise_code(" 1234 5678 ", 8).as_deref(),
            Some("12345678")
        );
        assert_eq!(normalise_code("123-456", 6).as_deref(), Some("123456"));
        assert_eq!(normalise_code("12345", 6), None);
        assert_eq!(normalise_code("12345a", 6), None);
        assert_eq!(normalise_code("١٢٣٤٥٦", 6), None, "only ASCII digits");
    }
}
