//! `private_key_jwt` client authentication (OIDC Core 9, RFC 7523 2.2 and 3):
//! the client signs a short-lived JWT with a key whose public half is in its
//! client file or published at its `jwks_uri`; each assertion is accepted
//! once.
//!
//! Only RS256, ES256 and EdDSA are accepted. `none` and HMAC algorithms are
//! refused: an HMAC would need a shared secret, which is what this method is
//! meant to avoid.

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsVerifier, RS256};
use serde_json::{Map, Value};
use zapini_core::crypto::{b64url_decode, token_hash};
use zapini_core::flow::ns;

use crate::OidcState;
use crate::clients::Client;
use crate::error::OAuthError;

/// The `client_assertion_type` of a JWT assertion (RFC 7523 2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms a client may sign its assertions with.
pub const ASSERTION_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// An assertion may be valid for at most this long from now (RFC 7523 3,
/// item 4: the server may reject JWTs with an unreasonably far `exp`).
const MAX_LIFETIME: i64 = 300;

/// Clock skew tolerated on `iat` and `nbf`.
const SKEW: i64 = 60;

/// Longest assertion read; a few keys' worth of claims is far less.
const MAX_ASSERTION_LEN: usize = 8 * 1024;

const MAX_JTI_LEN: usize = 256;

/// One public key of a client, with the one algorithm it verifies.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub kid: Option<String>,
    pub alg: &'static str,
    verifier: Box<dyn JwsVerifier>,
}

/// Members of a JWK that hold private or secret key material (RFC 7518
/// 6.2.2, 6.3.2 and 6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn has_private_part(key: &Value) -> bool {
    key.as_object()
        .is_some_and(|map| PRIVATE_MEMBERS.iter().any(|f| map.contains_key(*f)))
}

fn keys_of(value: &Value) -> Result<&Vec<Value>, String> {
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("must be a JWK Set: an object with a \"keys\" array")?;
    if keys.is_empty() {
        return Err("has no keys".into());
    }
    Ok(keys)
}

/// Reads a client's JWK Set written in its file (RFC 7517 5): every key
/// must be a public RSA, P-256 or Ed25519 key; an `alg`, if given, must be
/// the one that key type verifies here.
pub fn parse_jwks(value: &Value) -> Result<Vec<ClientKey>, String> {
    keys_of(value)?
        .iter()
        .enumerate()
        .map(|(i, key)| parse_key(key).map_err(|e| format!("key {i}: {e}")))
        .collect()
}

/// Reads the JWK Set a client publishes at its `jwks_uri`. Such a set may
/// also hold its encryption keys (OIDC Core 10.1 and 10.2) and keys of
/// types this server does not verify with; those are left out (RFC 7517
/// 5). Private key material anywhere refuses the whole set, and at least
/// one signing key must remain.
pub fn parse_published_jwks(value: &Value) -> Result<Vec<ClientKey>, String> {
    let keys = keys_of(value)?;
    if let Some(i) = keys.iter().position(has_private_part) {
        return Err(format!(
            "key {i}: contains private key material; publish only public keys"
        ));
    }
    let usable: Vec<ClientKey> = keys.iter().filter_map(|k| parse_key(k).ok()).collect();
    if usable.is_empty() {
        return Err("has no public RSA, EC P-256 or Ed25519 signing key".into());
    }
    Ok(usable)
}

fn parse_key(value: &Value) -> Result<ClientKey, String> {
    let map = value.as_object().ok_or("not a JSON object")?;
    if has_private_part(value) {
        return Err("contains private key material; give only the public key".into());
    }
    if map.get("use").is_some_and(|u| u != "sig") {
        return Err("\"use\" must be \"sig\"".into());
    }
    let jwk = Jwk::from_map(map.clone()).map_err(|e| e.to_string())?;
    let alg = match (jwk.key_type(), jwk.curve()) {
        ("RSA", _) => "RS256",
        ("EC", Some("P-256")) => "ES256",
        ("OKP", Some("Ed25519")) => "EdDSA",
        _ => return Err("must be an RSA, EC P-256 or OKP Ed25519 public key".into()),
    };
    if jwk.algorithm().is_some_and(|a| a != alg) {
        return Err(format!("a key of this type verifies only {alg}"));
    }
    let verifier: Box<dyn JwsVerifier> = match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
        "ES256" => Box::new(ES256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
        _ => Box::new(EdDSA.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?),
    };
    Ok(ClientKey {
        kid: jwk.key_id().map(str::to_owned),
        alg,
        verifier,
    })
}

fn refuse(why: &'static str) -> OAuthError {
    // RFC 7521 4.2.1: an invalid assertion is invalid_client.
    tracing::info!(reason = why, "client assertion refused");
    OAuthError::invalid_client()
}

/// Decodes a compact JWS part without checking anything.
fn unverified_json(part: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&b64url_decode(part)?).ok()
}

/// The client an assertion claims to come from: its `sub` (RFC 7523 3,
/// item 2), read before verification only to find the key to verify with.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let payload = unverified_json(assertion.split('.').nth(1)?)?;
    payload.get("sub")?.as_str().map(str::to_owned)
}

/// Verifies `assertion` for `client`, presented at `endpoint`, and spends
/// its `jti`. Each step is numbered after RFC 7523 3.
pub async fn verify(
    state: &OidcState,
    client: &Client,
    assertion: &str,
    endpoint: &str,
    now: i64,
) -> Result<(), OAuthError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(refuse("too long"));
    }
    let claims = verify_signature(state, client, assertion, now).await?;
    check_claims(state, client, &claims, endpoint, now)?;

    // Item 7: the jti is single use, remembered until the assertion expires.
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    let key = format!("{}:{}", client.client_id, token_hash(jti));
    let first = state
        .store
        .ephemeral()
        .put_if_absent(ns::CLIENT_ASSERTION, &key, &true, exp, now)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    if !first {
        return Err(refuse("jti already used"));
    }
    Ok(())
}

/// Item 5: the signature, by one of the client's keys, with an algorithm
/// this server accepts for that key. The keys are the inline `jwks`, or the
/// set published at the client's `jwks_uri`.
async fn verify_signature(
    state: &OidcState,
    client: &Client,
    assertion: &str,
    now: i64,
) -> Result<Map<String, Value>, OAuthError> {
    let header = assertion
        .split('.')
        .next()
        .and_then(unverified_json)
        .ok_or_else(|| refuse("malformed"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if !ASSERTION_ALGS.contains(&alg) {
        return Err(refuse("algorithm not accepted"));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let fetched;
    let keys: &[ClientKey] = match &client.jwks_uri {
        None => &client.keys,
        Some(uri) => {
            fetched = state
                .remote_keys
                .keys(uri, kid, now)
                .await
                .map_err(|reason| {
                    tracing::warn!(
                        client_id = client.client_id,
                        reason,
                        "client keys unavailable"
                    );
                    refuse("the client's jwks_uri gave no keys")
                })?;
            &fetched
        }
    };
    let mut candidates = keys
        .iter()
        .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid));
    let key = match (kid, candidates.next(), candidates.next()) {
        (_, None, _) => return Err(refuse("no key of the client matches kid and alg")),
        // Without a kid the key must be unambiguous.
        (None, Some(_), Some(_)) => return Err(refuse("kid missing and several keys match")),
        (_, Some(key), _) => key,
    };
    let selector = |_: &JwsHeader| Ok(Some(key.verifier.as_ref()));
    let (payload, _) = josekit::jwt::decode_with_verifier_selector(assertion, selector)
        .map_err(|_| refuse("bad signature"))?;
    Ok(payload.claims_set().clone())
}

fn check_claims(
    state: &OidcState,
    client: &Client,
    claims: &Map<String, Value>,
    endpoint: &str,
    now: i64,
) -> Result<(), OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // Items 1 and 2: iss and sub are the client_id.
    if text("iss") != Some(client.client_id.as_str()) || text("sub") != Some(&client.client_id) {
        return Err(refuse("iss and sub must be the client_id"));
    }
    // Item 3: the audience names this server: its issuer, its token
    // endpoint (OIDC Core 9), or the endpoint the assertion is sent to.
    let accepted = [
        state.issuer.clone(),
        state.endpoint("/token"),
        endpoint.to_owned(),
    ];
    let ours = |v: &Value| v.as_str().is_some_and(|a| accepted.iter().any(|x| x == a));
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(ours),
        Some(one) => ours(one),
        None => false,
    };
    if !aud_ok {
        return Err(refuse("aud does not name this server"));
    }
    // Item 4: exp in the future, and not unreasonably far.
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now && exp <= now + MAX_LIFETIME + SKEW => {}
        _ => return Err(refuse("exp missing, past, or too far ahead")),
    }
    // Items 5 and 6: not before, issued at.
    for name in ["nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(v) if v.as_i64().is_some_and(|t| t <= now + SKEW) => {}
            Some(_) => return Err(refuse("nbf or iat in the future or malformed")),
        }
    }
    // Item 7: a jti is required, so that it can be spent.
    match text("jti") {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Ok(()),
        _ => Err(refuse("jti missing or too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_with_private_parts_hmac_or_other_curves_is_refused() {
        let ec = ES256.generate_key_pair().unwrap();
        let public = Value::Object(ec.to_jwk_public_key().as_ref().clone());
        let private = Value::Object(ec.to_jwk_private_key().as_ref().clone());
        assert_eq!(
            parse_jwks(&serde_json::json!({ "keys": [public] })).unwrap()[0].alg,
            "ES256"
        );
        assert!(parse_jwks(&serde_json::json!({ "keys": [private] })).is_err());
        let oct = serde_json::json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
        assert!(parse_jwks(&oct).is_err());
        let p384 =
            serde_json::json!({ "keys": [{ "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA" }] });
        assert!(parse_jwks(&p384).is_err());
        assert!(parse_jwks(&serde_json::json!({ "keys": [] })).is_err());
        assert!(parse_jwks(&serde_json::json!([])).is_err());
    }

    #[test]
    fn the_claimed_client_is_the_unverified_sub() {
        let payload = zapini_core::crypto::b64url(br#"{"sub":"app","iss":"app"}"#);
        assert_eq!(
            claimed_client(&format!("e30.{payload}.sig")).as_deref(),
            Some("app")
        );
        assert_eq!(claimed_client("garbage"), None);
    }
}
