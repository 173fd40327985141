//! Small cryptographic helpers: random tokens, hashing, constant-time
//! comparison, and sealing secrets at rest with AES-256-GCM.
//!
//! Everything goes through OpenSSL, which the JOSE signing code links anyway,
//! so the product has one provider for randomness and symmetric crypto.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::Secret;

/// Errors from the helpers in this module.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// OpenSSL refused an operation (should not happen with valid inputs).
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// A sealed value was tampered with, truncated or sealed with another key.
    #[error("sealed value cannot be opened with this key")]
    Unseal,
}

/// `n` random bytes from the operating system's CSPRNG via OpenSSL.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(buf)
}

/// A random token of `bytes` bytes of entropy, base64url without padding.
///
/// Base64url uses only RFC 3986 unreserved characters, so the token needs no
/// escaping in URLs, forms or the `client_secret_basic` encoding.
pub fn random_token(bytes: usize) -> Result<Secret, CryptoError> {
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(random_bytes(bytes)?)))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// SHA-512 of `data`.
pub fn sha512(data: &[u8]) -> [u8; 64] {
    openssl::sha::sha512(data)
}

/// SHA-256 of `data`, base64url without padding: how single-use tokens are
/// keyed in the store, so a database dump reveals no usable token.
pub fn token_hash(data: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(data.as_bytes()))
}

/// Constant-time equality; the length is not secret (callers compare digests).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data.as_bytes()).ok()
}

/// Seals and opens secrets stored at rest (signing keys, TOTP seeds).
///
/// The key is SHA-256 over a domain label and the operator's master secret.
/// Each sealed value is `v1.` + base64url(nonce ‖ ciphertext ‖ tag); the
/// purpose string is authenticated as associated data, so a value sealed as a
/// signing key cannot be replayed as a TOTP seed.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl Sealer {
    pub fn from_master_secret(master: &Secret) -> Self {
        let mut input = b"zapini-id sealing key v1\0".to_vec();
        input.extend_from_slice(master.expose().as_bytes());
        Self {
            key: sha256(&input),
        }
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let nonce = random_bytes(NONCE_LEN)?;
        let mut tag = [0u8; TAG_LEN];
        let cipher = Cipher::aes_256_gcm();
        let body = encrypt_aead(
            cipher,
            &self.key,
            Some(&nonce),
            purpose.as_bytes(),
            plaintext,
            &mut tag,
        )?;

        let mut out = nonce;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        Ok(format!("v1.{}", b64url(&out)))
    }

    /// A keyed hash (HMAC-SHA-256 under a key derived for `purpose`) of
    /// `data`, base64url: for short secrets such as recovery codes, so that a
    /// copy of the database alone does not allow guessing them offline.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> Result<String, CryptoError> {
        let mut label = self.key.to_vec();
        label.extend_from_slice(purpose.as_bytes());
        let key = openssl::pkey::PKey::hmac(&sha256(&label))?;
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
        signer.update(data)?;
        Ok(b64url(&signer.sign_to_vec()?))
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(b64url_decode)
            .ok_or(CryptoError::Unseal)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Unseal);
        }

        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let cipher = Cipher::aes_256_gcm();
        decrypt_aead(
            cipher,
            &self.key,
            Some(nonce),
            purpose.as_bytes(),
            body,
            tag,
        )
        .map_err(|_| CryptoError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(master: &str) -> Sealer {
        Sealer::from_master_secret(&Secret::new(master))
    }

    #[test]
    fn sealed_value_opens_with_same_key_and_purpose() {
        let s = sealer("master one");
        let sealed = s.seal("signing-key", b"private").unwrap();
        assert_eq!(s.open("signing-key", &sealed).unwrap(), b"private");
    }

    #[test]
    fn sealed_value_refuses_other_key_other_purpose_and_tampering() {
        let s = sealer("master one");
        let sealed = s.seal("signing-key", b"private").unwrap();
        assert!(sealer("master two").open("signing-key", &sealed).is_err());
        assert!(s.open("totp-seed", &sealed).is_err());

        let mut raw = b64url_decode(&sealed[3..]).unwrap();
        raw[NONCE_LEN] ^= 1;
        let tampered = format!("v1.{}", b64url(&raw));
        assert!(s.open("signing-key", &tampered).is_err());
        assert!(s.open("signing-key", "v1.AAAA").is_err());
    }

    #[test]
    fn keyed_hashes_depend_on_key_purpose_and_data() {
        let s = sealer("one");
        let h = s.keyed_hash("recovery", b"abcd").unwrap();
        assert_eq!(h, s.keyed_hash("recovery", b"abcd").unwrap());
        assert_ne!(h, s.keyed_hash("other", b"abcd").unwrap());
        assert_ne!(h, s.keyed_hash("recovery", b"abce").unwrap());
        assert_ne!(h, sealer("two").keyed_hash("recovery", b"abcd").unwrap());
    }

    #[test]
    fn random_tokens_differ_and_use_unreserved_characters() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
