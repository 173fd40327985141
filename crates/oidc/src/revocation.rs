//! The revocation endpoint (RFC 7009): a client tells the server it no
//! longer needs a token. Revoking a refresh token revokes its family and the
//! access tokens issued from it; revoking an access token revokes its grant,
//! which ends every access token of that token response.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use zapini_core::crypto::token_hash;
use zapini_core::flow::ns;

use crate::OidcState;
use crate::client_auth::{authenticate, read_form};
use crate::clients::Client;
use crate::error::{OAuthError, no_store};
use crate::tokens::{is_self_contained, signed_access_token};

/// Longest token looked up; ours are far shorter.
const MAX_TOKEN_LEN: usize = 8 * 1024;

pub async fn handler(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    match revoke(&state, &headers, &body).await {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(err) => {
            tracing::info!(error = err.code, description = %err.description, "revocation refused");
            err.token_response()
        }
    }
}

/// Whether the `token_type_hint` (RFC 7009 2.1) says to try the access
/// token first. Unknown hints are ignored: the server must look further
/// anyway when a hint does not find the token.
pub(crate) fn access_token_first(hint: Option<&str>) -> bool {
    hint == Some("access_token")
}

async fn revoke(state: &OidcState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let params = read_form(headers, body)?;
    let client = authenticate(state, headers, &params, &state.endpoint("/revoke")).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // RFC 7009 2.2: an invalid or unknown token is answered with 200, like
    // a revoked one, since the client could do nothing with an error.
    if token.len() > MAX_TOKEN_LEN {
        return Ok(());
    }
    let now = state.clock.now();
    if access_token_first(params.get("token_type_hint")) {
        if !revoke_access_token(state, client, token).await? {
            revoke_refresh_token(state, client, token, now).await?;
        }
    } else if !revoke_refresh_token(state, client, token, now).await? {
        revoke_access_token(state, client, token).await?;
    }
    Ok(())
}

/// True if `token` is one of our refresh tokens (whoever it belongs to).
/// Another client's token is left alone and the answer is the same 200:
/// the caller learns nothing about tokens that are not its own.
async fn revoke_refresh_token(
    state: &OidcState,
    client: &Client,
    token: &str,
    now: i64,
) -> Result<bool, OAuthError> {
    let tokens = state.store.refresh_tokens();
    let found = tokens
        .find(&token_hash(token))
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let Some(found) = found else {
        return Ok(false);
    };
    if found.client_id == client.client_id {
        tokens
            .revoke_family(&found.family_id, now)
            .await
            .map_err(|_| OAuthError::unavailable())?;
        tracing::info!(client_id = %client.client_id, "refresh token family revoked");
    }
    Ok(true)
}

/// True if `token` is an access token signed by us. If it was issued to
/// this client, its grant is deleted, or for a token with no stored grant
/// (a client's own, or one from a refresh) a mark is kept until it expires.
async fn revoke_access_token(
    state: &OidcState,
    client: &Client,
    token: &str,
) -> Result<bool, OAuthError> {
    let Some(claims) = signed_access_token(state, token) else {
        return Ok(false);
    };
    let owner = claims.get("client_id").and_then(|v| v.as_str());
    let jti = claims.get("jti").and_then(|v| v.as_str());
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    if let (Some(owner), Some(jti)) = (owner, jti)
        && owner == client.client_id
    {
        let eph = state.store.ephemeral();
        let done = if is_self_contained(&claims) {
            // No grant is stored for these: a mark lasts as long as the token.
            if exp > state.clock.now() {
                eph.put(ns::REVOKED_ACCESS_TOKEN, jti, &true, exp).await
            } else {
                Ok(())
            }
        } else {
            eph.delete(ns::GRANT, jti).await.map(|_| ())
        };
        done.map_err(|_| OAuthError::unavailable())?;
        tracing::info!(client_id = %client.client_id, "access token revoked");
    }
    Ok(true)
}
