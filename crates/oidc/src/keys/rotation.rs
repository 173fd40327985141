//! Rotation: a successor key for every algorithm, published at once and
//! signing only after a delay, so that relying parties that cache the JWKS
//! have fetched it before any token names it. The key it replaces retires
//! at that moment and stays published while tokens it signed can be alive.

use zapini_core::crypto::Sealer;
use zapini_store::{Store, StoreError};

use super::{ALGORITHMS, KeyError, KeyState, new_key_row};

/// A key a rotation created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub alg: &'static str,
    pub kid: String,
    /// When it starts to sign; the key before it retires then.
    pub activates_at: i64,
}

/// Creates the next key of every algorithm, signing from `now + delay`.
///
/// Refused while a key of an earlier rotation still waits to sign: a second
/// successor would retire the first before any token used it, and relying
/// parties could meet a key they have not fetched yet. Everything is
/// written to the store; instances learn of the new keys when they reload.
pub async fn rotate(
    store: &Store,
    sealer: &Sealer,
    now: i64,
    delay: i64,
) -> Result<Vec<Rotated>, KeyError> {
    let rows = store.signing_keys().all().await?;
    let waiting = rows
        .iter()
        .find(|r| KeyState::of(r.active_from, r.retired_at, now, 0) == KeyState::Next);
    if let Some(row) = waiting {
        return Err(KeyError::AlreadyWaiting {
            alg: row.alg.clone(),
            kid: row.kid.clone(),
            activates_at: row.active_from,
        });
    }

    let activates_at = now.saturating_add(delay);
    let mut created = Vec::new();
    for alg in ALGORITHMS {
        let generation = rows.iter().filter(|r| r.alg == alg).count();
        let row = new_key_row(alg, sealer, generation, now, activates_at)?;
        let kid = row.kid.clone();
        match store.signing_keys().insert_successor(row).await {
            Ok(()) => tracing::info!(%kid, alg, activates_at, "created the next signing key"),
            Err(StoreError::Conflict) => return Err(KeyError::RotationRace(alg.to_owned())),
            Err(err) => return Err(err.into()),
        }
        created.push(Rotated {
            alg,
            kid,
            activates_at,
        });
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::keys::KeyRing;

    const RETENTION: i64 = 900;
    const DELAY: i64 = 3_600;

    async fn setup() -> (Store, Sealer, KeyRing) {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let sealer = Sealer::from_master_secret(&zapini_core::Secret::new("test master secret"));
        let ring = KeyRing::load_or_create(&store, &sealer, 1_000, RETENTION)
            .await
            .unwrap();
        (store, sealer, ring)
    }

    fn kids(ring: &KeyRing, now: i64) -> Vec<String> {
        ring.jwks(now)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    fn kid_of(token: &str) -> String {
        let header = token.split('.').next().unwrap();
        let header = zapini_core::crypto::b64url_decode(header).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn the_next_key_is_published_at_once_and_signs_after_the_delay() {
        let (store, sealer, ring) = setup().await;
        let old = ring.signing_kid("RS256", 2_000).unwrap().to_owned();

        let rotated = rotate(&store, &sealer, 2_000, DELAY).await.unwrap();
        assert_eq!(rotated.len(), 3);
        let new = rotated[0].kid.clone();
        let ring = ring.reload(&store, &sealer, 2_000).await.unwrap().unwrap();

        assert!(kids(&ring, 2_000).contains(&new));
        assert_eq!(ring.signing_kid("RS256", 2_000 + DELAY - 1), Some(&*old));
        assert_eq!(ring.signing_kid("RS256", 2_000 + DELAY), Some(&*new));

        // The old key verifies its tokens until they have all expired.
        let token = ring.sign("RS256", "JWT", Map::new(), 2_000).unwrap();
        assert_eq!(kid_of(&token), old);
        let gone = 2_000 + DELAY + RETENTION;
        assert!(ring.verify(&token, gone - 1).is_ok());
        assert!(kids(&ring, gone - 1).contains(&old));
        assert!(ring.verify(&token, gone).is_err());
        assert!(!kids(&ring, gone).contains(&old));
        assert_eq!(kids(&ring, gone).len(), 3);
    }

    #[tokio::test]
    async fn a_second_rotation_waits_for_the_first_to_activate() {
        let (store, sealer, _) = setup().await;
        rotate(&store, &sealer, 2_000, DELAY).await.unwrap();
        let err = rotate(&store, &sealer, 2_500, DELAY).await.unwrap_err();
        assert!(matches!(err, KeyError::AlreadyWaiting { .. }), "{err}");

        let again = rotate(&store, &sealer, 2_000 + DELAY, DELAY).await.unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(store.signing_keys().all().await.unwrap().len(), 9);
    }

    #[tokio::test]
    async fn every_instance_derives_the_same_states_from_the_store() {
        let (store, sealer, _) = setup().await;
        let rotated = rotate(&store, &sealer, 2_000, DELAY).await.unwrap();
        let first = KeyRing::load_or_create(&store, &sealer, 2_100, RETENTION)
            .await
            .unwrap();
        let second = KeyRing::load_or_create(&store, &sealer, 2_200, RETENTION)
            .await
            .unwrap();
        for now in [2_300, 2_000 + DELAY, 2_000 + DELAY + RETENTION] {
            assert_eq!(
                first.signing_kid("EdDSA", now),
                second.signing_kid("EdDSA", now)
            );
            assert_eq!(first.jwks(now), second.jwks(now));
        }
        assert_eq!(
            first.signing_kid("EdDSA", 2_000 + DELAY),
            Some(rotated[2].kid.as_str())
        );
        assert!(
            first
                .reload(&store, &sealer, 2_300)
                .await
                .unwrap()
                .is_none()
        );
    }
}
