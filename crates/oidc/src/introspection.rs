//! The introspection endpoint (RFC 7662), for confidential clients about
//! their own tokens. A token issued to another client is reported inactive:
//! this server has no separate resource servers yet, and a client has no
//! business learning about tokens it was not given.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use zapini_core::crypto::token_hash;

use crate::OidcState;
use crate::client_auth::{authenticate, read_form};
use crate::clients::Client;
use crate::error::{OAuthError, no_store};
use crate::revocation::access_token_first;
use crate::tokens::active_access_token;

/// Longest token looked up; ours are far shorter.
const MAX_TOKEN_LEN: usize = 8 * 1024;

pub async fn handler(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    match introspect(&state, &headers, &body).await {
        Ok(answer) => (no_store(), Json(answer)).into_response(),
        Err(err) => {
            tracing::info!(error = err.code, description = %err.description, "introspection refused");
            err.token_response()
        }
    }
}

async fn introspect(
    state: &OidcState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let params = read_form(headers, body)?;
    let endpoint = state.endpoint("/introspect");
    let client = authenticate(state, headers, &params, &endpoint).await?;
    // RFC 7662 2.1: the endpoint requires authorization; here, a client
    // that authenticates (a public client proves nothing).
    if client.is_public() {
        return Err(OAuthError::invalid_client());
    }
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    if token.len() > MAX_TOKEN_LEN {
        return Ok(inactive());
    }
    let now = state.clock.now();
    let found = if access_token_first(params.get("token_type_hint")) {
        match access_token(state, client, token, now).await {
            Some(found) => Some(found),
            None => refresh_token(state, client, token, now).await?,
        }
    } else {
        match refresh_token(state, client, token, now).await? {
            Some(found) => Some(found),
            None => access_token(state, client, token, now).await,
        }
    };
    Ok(found.map(Value::Object).unwrap_or_else(inactive))
}

/// RFC 7662 2.2: anything not currently valid is just `active: false`, with
/// no reason given.
fn inactive() -> Value {
    json!({ "active": false })
}

async fn access_token(
    state: &OidcState,
    client: &Client,
    token: &str,
    now: i64,
) -> Option<Map<String, Value>> {
    let (claims, grant) = active_access_token(state, token, now).await?;
    if grant.client_id != client.client_id {
        return None;
    }
    if !grant.for_client {
        let user = state.store.users().find(&grant.user_id).await.ok()??;
        if user.disabled {
            return None;
        }
    }
    let mut answer = Map::new();
    answer.insert("active".into(), true.into());
    answer.insert("scope".into(), grant.scope.join(" ").into());
    answer.insert("token_type".into(), "Bearer".into());
    for name in [
        "client_id",
        "sub",
        "exp",
        "iat",
        "iss",
        "aud",
        "jti",
        "auth_time",
        "acr",
        "amr",
    ] {
        if let Some(value) = claims.get(name) {
            answer.insert(name.into(), value.clone());
        }
    }
    Some(answer)
}

async fn refresh_token(
    state: &OidcState,
    client: &Client,
    token: &str,
    now: i64,
) -> Result<Option<Map<String, Value>>, OAuthError> {
    let found = state
        .store
        .refresh_tokens()
        .find(&token_hash(token))
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let Some(found) = found.filter(|t| t.client_id == client.client_id && t.is_active(now)) else {
        return Ok(None);
    };
    // A revocation marks the rows of a family it sees; one racing a
    // rotation may miss the newest, so the family decides.
    let tokens = state.store.refresh_tokens();
    match tokens.family_revoked(&found.family_id).await {
        Ok(false) => {}
        Ok(true) => return Ok(None),
        Err(_) => return Err(OAuthError::unavailable()),
    }
    let user = state
        .store
        .users()
        .find(&found.user_id)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    if user.is_none_or(|u| u.disabled) {
        return Ok(None);
    }
    let answer = json!({
        "active": true,
        "scope": found.scope.join(" "),
        "client_id": found.client_id,
        "sub": found.user_id,
        "exp": found.expires_at,
        "iat": found.created_at,
        "iss": state.issuer,
        "auth_time": found.auth.time,
        "acr": found.auth.acr().as_str(),
        "amr": found.auth.amr(),
    });
    Ok(answer.as_object().cloned())
}
