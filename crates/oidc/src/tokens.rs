//! Minting and checking the tokens we issue: ID tokens (OIDC Core 2) and JWT
//! access tokens (RFC 9068).

use serde_json::{Map, Value, json};
use zapini_core::flow::{AuthorizationCode, Grant, ns};
use zapini_core::user::User;

use crate::OidcState;
use crate::clients::Client;
use crate::keys::{KeyError, half_hash};

/// What one successful code exchange returns.
pub struct Minted {
    pub access_token: String,
    pub id_token: String,
    pub expires_in: i64,
}

fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Signs the access token and ID token for a redeemed code. `grant_id`
/// becomes the access token's `jti`, the handle by which it is revoked.
pub fn mint(
    state: &OidcState,
    client: &Client,
    code: &AuthorizationCode,
    user: &User,
    grant_id: &str,
    now: i64,
) -> Result<Minted, KeyError> {
    let ttl = state.tokens.access_token_ttl;
    let auth = &code.auth;
    // RFC 9068 2.2: iss, exp, aud, sub, client_id, iat, jti; plus the
    // authentication information of 2.2.1 so resource servers can demand a
    // level (RFC 9470).
    let access = claims(json!({
        "iss": state.issuer,
        "sub": user.id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "exp": now + ttl,
        "iat": now,
        "jti": grant_id,
        "scope": code.scope.join(" "),
        "auth_time": auth.time,
        "acr": auth.acr().as_str(),
        "amr": auth.amr(),
        "sid": code.sid,
    }));
    let access_token = state
        .keys
        .sign(&client.access_token_alg, "at+jwt", access, now)?;

    // OIDC Core 2 and 3.1.3.6.
    let mut id = claims(json!({
        "iss": state.issuer,
        "sub": user.id,
        "aud": client.client_id,
        "azp": client.client_id,
        "exp": now + state.tokens.id_token_ttl,
        "iat": now,
        "auth_time": auth.time,
        "sid": code.sid,
        "at_hash": half_hash(&client.id_token_alg, &access_token),
        "amr": auth.amr(),
        "acr": auth.acr().as_str(),
    }));
    if let Some(nonce) = &code.nonce {
        id.insert("nonce".into(), nonce.clone().into());
    }
    let id_token = state.keys.sign(&client.id_token_alg, "JWT", id, now)?;

    Ok(Minted {
        access_token,
        id_token,
        expires_in: ttl,
    })
}

/// An access token we issued that is still good.
#[derive(Debug)]
pub struct AccessToken {
    pub sub: String,
    pub client_id: String,
    pub scope: Vec<String>,
}

/// Checks a bearer token: our signature, `typ: at+jwt` (RFC 9068 4), our
/// issuer, not expired, and its grant not revoked.
pub async fn check_access_token(state: &OidcState, token: &str, now: i64) -> Option<AccessToken> {
    let (typ, claims) = state.keys.verify(token).ok()?;
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
        return None;
    }
    if claims.get("iss")?.as_str()? != state.issuer {
        return None;
    }
    if claims.get("exp")?.as_i64()? <= now {
        return None;
    }
    let jti = claims.get("jti")?.as_str()?;
    let grant: Grant = state
        .store
        .ephemeral()
        .get(ns::GRANT, jti, now)
        .await
        .ok()??;
    let sub = claims.get("sub")?.as_str()?.to_owned();
    if grant.user_id != sub {
        return None;
    }
    Some(AccessToken {
        sub,
        client_id: grant.client_id,
        scope: grant.scope,
    })
}
