//! Signing keys: generated on first start, stored sealed, published in the
//! JWKS, and used to sign ID tokens, access tokens and logout tokens.
//!
//! One signing key per algorithm (RS256 always, the OIDC Core 3.1.3.7
//! default; ES256 and EdDSA for clients that ask). A key's state follows
//! from its stored times and the clock alone ([`KeyState`]), so instances
//! agree on the signing key without talking to each other. Rotation lives
//! in [`rotation`].

mod rotation;

pub use rotation::{Rotated, rotate};

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};
use zapini_core::crypto::{Sealer, b64url};
use zapini_store::{SigningKeyRow, Store, StoreError};

const SEAL_PURPOSE: &str = "signing-key";

/// Errors from key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key table could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key could not be unsealed: the master secret changed.
    #[error("signing key {kid} cannot be unsealed; was the master secret changed?")]
    Unseal { kid: String },
    /// JOSE operation failed.
    #[error("jose: {0}")]
    Jose(#[from] josekit::JoseError),
    /// Randomness or OpenSSL failed.
    #[error(transparent)]
    Crypto(#[from] zapini_core::crypto::CryptoError),
    /// No key can sign with this algorithm now.
    #[error("no active signing key for {0}")]
    NoKey(String),
    /// A rotation was asked for while an earlier one still waits to activate.
    #[error("{alg} key {kid} from an earlier rotation starts signing only at {activates_at}")]
    AlreadyWaiting {
        alg: String,
        kid: String,
        activates_at: i64,
    },
    /// Another rotation inserted the same successor key first.
    #[error("another rotation of the {0} key ran at the same time; see `zapini-id keys list`")]
    RotationRace(String),
}

/// Tolerance for relying parties that accept a token a little after its
/// `exp` (clock skew): a retired key stays published this much longer.
pub const EXPIRY_LEEWAY: i64 = 300;

/// Where a key is in its life, derived from its stored times and `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet (`now < active_from`).
    Next,
    /// Published and signing.
    Active,
    /// Published, no longer signing: tokens it signed may still be alive.
    Retiring,
    /// Past `retired_at` plus the retention: no longer published.
    Retired,
}

impl KeyState {
    /// `retention` is how long a token signed at `retired_at` can stay
    /// valid (see [`crate::TokenSettings::key_retention`]).
    pub fn of(active_from: i64, retired_at: Option<i64>, now: i64, retention: i64) -> Self {
        match retired_at {
            Some(at) if now >= at.saturating_add(retention) => Self::Retired,
            Some(at) if now >= at => Self::Retiring,
            _ if now < active_from => Self::Next,
            _ => Self::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    pub fn is_published(self) -> bool {
        self != Self::Retired
    }
}

/// Why a token presented to us is not one we accept.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed or unsigned by a known key")]
    Invalid,
}

struct LoadedKey {
    kid: String,
    alg: &'static str,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
    public_jwk: Jwk,
    active_from: i64,
    retired_at: Option<i64>,
}

impl LoadedKey {
    fn state(&self, now: i64, retention: i64) -> KeyState {
        KeyState::of(self.active_from, self.retired_at, now, retention)
    }
}

/// What a reload compares to tell whether the stored keys changed.
type RowTimes = Vec<(String, i64, Option<i64>)>;

/// The server's signing keys.
pub struct KeyRing {
    keys: Vec<LoadedKey>,
    retention: i64,
    loaded_from: RowTimes,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| (&k.kid, k.alg)).collect();
        f.debug_struct("KeyRing").field("keys", &kids).finish()
    }
}

/// Every algorithm the server signs with, in the order keys are listed.
pub const ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

fn alg_name(alg: &str) -> Option<&'static str> {
    ALGORITHMS.into_iter().find(|a| *a == alg)
}

fn alg_rank(alg: &str) -> usize {
    ALGORITHMS
        .iter()
        .position(|a| *a == alg)
        .unwrap_or(usize::MAX)
}

fn generate(alg: &'static str) -> Result<(Vec<u8>, Jwk), KeyError> {
    Ok(match alg {
        "RS256" => {
            let pair = RS256.generate_key_pair(2048)?;
            (pair.to_der_private_key(), pair.to_jwk_public_key())
        }
        "ES256" => {
            let pair = ES256.generate_key_pair()?;
            (pair.to_der_private_key(), pair.to_jwk_public_key())
        }
        _ => {
            let pair = EdDSA.generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519)?;
            (pair.to_der_private_key(), pair.to_jwk_public_key())
        }
    })
}

type SignerPair = (Box<dyn JwsSigner>, Box<dyn JwsVerifier>);

fn signer_and_verifier(alg: &str, der: &[u8], jwk: &Jwk) -> Result<SignerPair, KeyError> {
    Ok(match alg {
        "RS256" => (
            Box::new(RS256.signer_from_der(der)?),
            Box::new(RS256.verifier_from_jwk(jwk)?),
        ),
        "ES256" => (
            Box::new(ES256.signer_from_der(der)?),
            Box::new(ES256.verifier_from_jwk(jwk)?),
        ),
        _ => (
            Box::new(EdDSA.signer_from_der(der)?),
            Box::new(EdDSA.verifier_from_jwk(jwk)?),
        ),
    })
}

impl KeyRing {
    /// Loads the stored keys, generating one per algorithm where none exists.
    ///
    /// Several instances may start at once against one empty database. The id
    /// of a generated key is derived from the master secret, the algorithm
    /// and how many keys of it exist, so they all try to insert the same id:
    /// one insert wins, the others conflict, and every instance then reads
    /// back the same key set.
    pub async fn load_or_create(
        store: &Store,
        sealer: &Sealer,
        now: i64,
        retention: i64,
    ) -> Result<Self, KeyError> {
        let rows = store.signing_keys().all().await?;
        let mut created = false;
        for alg in ALGORITHMS {
            if rows.iter().any(|r| r.alg == alg && r.retired_at.is_none()) {
                continue;
            }
            let generation = rows.iter().filter(|r| r.alg == alg).count();
            let row = new_key_row(alg, sealer, generation, now, now)?;
            match store.signing_keys().insert(row.clone()).await {
                Ok(()) => tracing::info!(kid = %row.kid, alg, "generated a new signing key"),
                Err(StoreError::Conflict) => {
                    tracing::info!(kid = %row.kid, alg, "another instance generated this key")
                }
                Err(err) => return Err(err.into()),
            }
            created = true;
        }
        let rows = if created {
            store.signing_keys().all().await?
        } else {
            rows
        };
        Self::from_rows(rows, sealer, now, retention)
    }

    /// Reads the stored keys again; `None` when they are the ones loaded.
    /// Creates nothing: only start-up and rotation add keys.
    pub async fn reload(
        &self,
        store: &Store,
        sealer: &Sealer,
        now: i64,
    ) -> Result<Option<Self>, KeyError> {
        let rows = store.signing_keys().all().await?;
        if row_times(&rows) == self.loaded_from {
            return Ok(None);
        }
        Self::from_rows(rows, sealer, now, self.retention).map(Some)
    }

    /// Unseals every key still published at `now`; retired ones are skipped.
    fn from_rows(
        rows: Vec<SigningKeyRow>,
        sealer: &Sealer,
        now: i64,
        retention: i64,
    ) -> Result<Self, KeyError> {
        let loaded_from = row_times(&rows);
        let mut keys = Vec::new();
        for row in rows {
            let Some(alg) = alg_name(&row.alg) else {
                continue;
            };
            if !KeyState::of(row.active_from, row.retired_at, now, retention).is_published() {
                continue;
            }
            keys.push(unseal(row, alg, sealer)?);
        }
        keys.sort_by_key(|k| (alg_rank(k.alg), k.active_from));
        Ok(Self {
            keys,
            retention,
            loaded_from,
        })
    }

    /// The key ids loaded, for the log.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The keys published at `now` (RFC 7517 JWK Set), each with `kid`,
    /// `use`, `alg`: the next, active and retiring ones.
    pub fn jwks(&self, now: i64) -> Value {
        let keys: Vec<Value> = self
            .published(now)
            .map(|k| Value::Object(k.public_jwk.as_ref().clone()))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The algorithms we can sign with.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<_> = self.keys.iter().map(|k| k.alg).collect();
        algs.dedup();
        algs
    }

    fn published(&self, now: i64) -> impl Iterator<Item = &LoadedKey> {
        self.keys
            .iter()
            .filter(move |k| k.state(now, self.retention).is_published())
    }

    /// The newest published key of `alg` whose `active_from` has passed. When
    /// the stored rows are consistent this is the one [`KeyState::Active`]
    /// key; should this instance not yet have loaded a successor, it goes on
    /// with the key it has, which stays published and so verifiable.
    fn signing_key(&self, alg: &str, now: i64) -> Result<&LoadedKey, KeyError> {
        self.published(now)
            .filter(|k| k.alg == alg && k.active_from <= now)
            .max_by_key(|k| k.active_from)
            .ok_or_else(|| KeyError::NoKey(alg.to_owned()))
    }

    /// The `kid` that signs for `alg` at `now`.
    pub fn signing_kid(&self, alg: &str, now: i64) -> Option<&str> {
        self.signing_key(alg, now).ok().map(|k| k.kid.as_str())
    }

    /// Signs `claims` as a JWT with header `typ` using the newest active key
    /// for `alg`.
    pub fn sign(
        &self,
        alg: &str,
        typ: &str,
        claims: Map<String, Value>,
        now: i64,
    ) -> Result<String, KeyError> {
        let key = self.signing_key(alg, now)?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&key.kid);
        let payload = JwtPayload::from_map(claims)?;
        Ok(jwt::encode_with_signer(
            &payload,
            &header,
            key.signer.as_ref(),
        )?)
    }

    /// Verifies a JWT signed by one of the keys published at `now` and
    /// returns its header type and claims. Expiry and audience are the
    /// caller's to check.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Option<String>, Map<String, Value>), VerifyError> {
        let (payload, header) = jwt::decode_with_verifier_selector(token, |header: &JwsHeader| {
            let key = self.published(now).find(|k| {
                Some(k.kid.as_str()) == header.key_id() && Some(k.alg) == header.algorithm()
            });
            Ok(key.map(|k| k.verifier.as_ref()))
        })
        .map_err(|_| VerifyError::Invalid)?;
        let typ = header.token_type().map(str::to_owned);
        Ok((typ, payload.claims_set().clone()))
    }
}

fn row_times(rows: &[SigningKeyRow]) -> RowTimes {
    rows.iter()
        .map(|r| (r.kid.clone(), r.active_from, r.retired_at))
        .collect()
}

fn unseal(row: SigningKeyRow, alg: &'static str, sealer: &Sealer) -> Result<LoadedKey, KeyError> {
    let der = sealer
        .open(SEAL_PURPOSE, &row.private_sealed)
        .map_err(|_| KeyError::Unseal {
            kid: row.kid.clone(),
        })?;
    let jwk = Jwk::from_bytes(row.public_jwk.as_bytes())?;
    let (signer, verifier) = signer_and_verifier(alg, &der, &jwk)?;
    Ok(LoadedKey {
        kid: row.kid,
        alg,
        signer,
        verifier,
        public_jwk: jwk,
        active_from: row.active_from,
        retired_at: row.retired_at,
    })
}

/// A new key of `alg`, the `generation`-th of that algorithm. Its id is a
/// keyed hash of both, so concurrent creators of the same generation
/// collide on the primary key instead of adding two keys.
fn new_key_row(
    alg: &'static str,
    sealer: &Sealer,
    generation: usize,
    now: i64,
    active_from: i64,
) -> Result<SigningKeyRow, KeyError> {
    let (der, mut jwk) = generate(alg)?;
    let kid: String = sealer
        .keyed_hash("signing-key-id", format!("{alg}:{generation}").as_bytes())?
        .chars()
        .take(16)
        .collect();
    jwk.set_key_id(&kid);
    jwk.set_key_use("sig");
    jwk.set_algorithm(alg);
    Ok(SigningKeyRow {
        kid,
        alg: alg.to_owned(),
        private_sealed: sealer.seal(SEAL_PURPOSE, &der)?,
        public_jwk: jwk.to_string(),
        created_at: now,
        active_from,
        retired_at: None,
    })
}

/// The left half of the hash of `value`, base64url: `at_hash` (OIDC Core
/// 3.1.3.6). The hash is the one of the signing algorithm: SHA-256 for RS256
/// and ES256, SHA-512 for EdDSA with Ed25519.
pub fn half_hash(alg: &str, value: &str) -> String {
    let digest: Vec<u8> = if alg == "EdDSA" {
        zapini_core::crypto::sha512(value.as_bytes()).to_vec()
    } else {
        zapini_core::crypto::sha256(value.as_bytes()).to_vec()
    };
    b64url(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ring() -> (Store, Sealer, KeyRing) {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let sealer = Sealer::from_master_secret(&zapini_core::Secret::new("test master secret"));
        let ring = KeyRing::load_or_create(&store, &sealer, 1_000, 900)
            .await
            .unwrap();
        (store, sealer, ring)
    }

    #[tokio::test]
    async fn keys_are_created_once_and_reloaded() {
        let (store, sealer, ring) = ring().await;
        assert_eq!(ring.algorithms(), ["RS256", "ES256", "EdDSA"]);
        let again = KeyRing::load_or_create(&store, &sealer, 2_000, 900)
            .await
            .unwrap();
        assert_eq!(ring.jwks(2_000), again.jwks(2_000));
    }

    /// Instances started together against one empty database: each sees
    /// no key, each generates one, and all end with the same single set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_starts_end_with_one_key_set() {
        let dir = std::env::temp_dir().join(format!("zid-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/k.db?mode=rwc", dir.display());
        let store = Store::connect(&url, 8).await.unwrap();
        store.migrate().await.unwrap();
        let sealer = Sealer::from_master_secret(&zapini_core::Secret::new("test master secret"));

        let starts: Vec<_> = (0..4)
            .map(|_| {
                let (store, sealer) = (store.clone(), sealer.clone());
                tokio::spawn(
                    async move { KeyRing::load_or_create(&store, &sealer, 1_000, 900).await },
                )
            })
            .collect();
        let mut sets = Vec::new();
        for start in starts {
            sets.push(start.await.unwrap().unwrap().jwks(1_000));
        }
        assert_eq!(sets[0]["keys"].as_array().unwrap().len(), 3);
        assert!(sets.iter().all(|s| *s == sets[0]), "{sets:?}");
        assert_eq!(store.signing_keys().all().await.unwrap().len(), 3);
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn another_master_secret_cannot_load_the_keys() {
        let (store, _, _) = ring().await;
        let other = Sealer::from_master_secret(&zapini_core::Secret::new("another"));
        let err = KeyRing::load_or_create(&store, &other, 2_000, 900)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::Unseal { .. }));
    }

    #[tokio::test]
    async fn jwks_publishes_kid_use_alg_and_no_private_parts() {
        let (_, _, ring) = ring().await;
        let jwks = ring.jwks(1_000);
        for key in jwks["keys"].as_array().unwrap() {
            assert!(key["kid"].is_string() && key["alg"].is_string());
            assert_eq!(key["use"], "sig");
            assert!(key.get("d").is_none() && key.get("p").is_none());
        }
    }

    #[tokio::test]
    async fn signed_tokens_verify_and_tampered_ones_do_not() {
        let (_, _, ring) = ring().await;
        for alg in ["RS256", "ES256", "EdDSA"] {
            let mut claims = Map::new();
            claims.insert("sub".into(), "u1".into());
            let token = ring.sign(alg, "JWT", claims, 1_000).unwrap();
            let (typ, got) = ring.verify(&token, 1_000).unwrap();
            assert_eq!(typ.as_deref(), Some("JWT"));
            assert_eq!(got["sub"], "u1");

            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[1] = b64url(br#"{"sub":"admin"}"#);
            assert!(ring.verify(&parts.join("."), 1_000).is_err(), "{alg}");
        }
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OIDC Core A.3 example: access token and its at_hash.
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(half_hash("RS256", token), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
