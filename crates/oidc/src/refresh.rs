//! Refresh tokens (RFC 6749 6, OIDC Core 12, RFC 9700 4.14): opaque,
//! stored by their hash, rotated on every use. A rotated token presented
//! again revokes its whole family, and with it the family's access tokens.

use axum::response::Response;
use zapini_core::Secret;
use zapini_core::crypto::{random_token, token_hash};
use zapini_core::flow::AuthorizationCode;
use zapini_core::form::Params;
use zapini_store::{RefreshToken, Taken};

use crate::OidcState;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::token::{new_grant_id, user_tokens};
use crate::tokens::{UserGrant, refreshed_jti};

/// Our refresh tokens are 43 characters; anything much longer is not one,
/// and is refused before it is hashed and looked up.
const MAX_TOKEN_LEN: usize = 512;

fn new_token() -> Result<Secret, OAuthError> {
    random_token(32).map_err(|_| OAuthError::new("server_error", "no randomness"))
}

/// Issues the first token of a family, for a redeemed code. The family is
/// bounded by the configured lifetime from now; rotation never extends it.
pub(crate) async fn issue_first(
    state: &OidcState,
    client: &Client,
    code: &AuthorizationCode,
    family_id: &str,
    now: i64,
) -> Result<Secret, OAuthError> {
    let token = new_token()?;
    let row = RefreshToken {
        family_id: family_id.to_owned(),
        client_id: client.client_id.clone(),
        user_id: code.user_id.clone(),
        sid: code.sid.clone(),
        scope: code.scope.clone(),
        auth: code.auth.clone(),
        created_at: now,
        expires_at: now + state.tokens.refresh_token_ttl,
        used_at: None,
        revoked_at: None,
    };
    state
        .store
        .refresh_tokens()
        .insert(&token_hash(token.expose()), &row)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    Ok(token)
}

/// RFC 6749 6: the refresh token grant.
pub(crate) async fn grant(
    state: &OidcState,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let now = state.clock.now();
    let presented = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    if presented.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let hash = token_hash(presented);

    // RFC 6749 6: the scope may be narrowed, never widened; omitted, it is
    // the one originally granted. A narrowing is checked before the token
    // is spent, so that a refused request does not cost the client its
    // token.
    if params.get("scope").is_some() {
        let known = state.store.refresh_tokens().find(&hash).await;
        if let Ok(Some(token)) = known
            && token.client_id == client.client_id
            && token.is_active(now)
        {
            narrowed_scope(&token.scope, params)?;
        }
    }
    // A disabled user's token is not spent at all (the store checks the
    // user in the same statement), so no separate read of the user.
    let old = spend(state, client, &hash, now)
        .await?
        .ok_or_else(invalid)?;
    let scope = narrowed_scope(&old.scope, params)?;

    let next = rotate(state, &old, now).await?;
    // No grant is stored for the new access token: its `jti` names the
    // family, whose revocation ends it (see `tokens::active_access_token`).
    let grant_id = refreshed_jti(&old.family_id, &new_grant_id()?);

    // OIDC Core 12.2: the original authentication event, no nonce.
    let issued = UserGrant {
        sub: &old.user_id,
        scope: &scope,
        auth: &old.auth,
        sid: &old.sid,
        nonce: None,
        id_token_claims: None,
    };
    let response = user_tokens(state, client, &issued, &grant_id, Some(next), now)?;
    tracing::info!(client_id = %client.client_id, user_id = %old.user_id, "tokens refreshed");
    Ok(response)
}

/// Spends the presented token. A replay of a spent one revokes its family
/// (RFC 9700 4.14.2) and, like an unknown token, gets nothing.
async fn spend(
    state: &OidcState,
    client: &Client,
    hash: &str,
    now: i64,
) -> Result<Option<RefreshToken>, OAuthError> {
    let tokens = state.store.refresh_tokens();
    let taken = tokens
        .take(hash, &client.client_id, now)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    match taken {
        Taken::Fresh(token) => Ok(Some(token)),
        Taken::Replayed(token) => {
            let _ = tokens.revoke_family(&token.family_id, now).await;
            tracing::warn!(client_id = %client.client_id, user_id = %token.user_id,
                "refresh token replayed; its family is revoked");
            Ok(None)
        }
        Taken::Invalid => Ok(None),
    }
}

/// Stores the successor of a spent token in the same family. A replay that
/// raced this request revokes the family before or after the successor is
/// stored: the store refuses the successor in the first case; in the second
/// the revocation marks it, or on PostgreSQL, where a revocation already
/// running may miss it, the family check when it is spent refuses it (see
/// `RefreshTokens::insert_successor`).
async fn rotate(state: &OidcState, old: &RefreshToken, now: i64) -> Result<Secret, OAuthError> {
    let tokens = state.store.refresh_tokens();
    let next = new_token()?;
    let row = RefreshToken {
        created_at: now,
        used_at: None,
        revoked_at: None,
        ..old.clone()
    };
    let stored = tokens
        .insert_successor(&token_hash(next.expose()), &row)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    if !stored {
        let _ = tokens.revoke_family(&old.family_id, now).await;
        return Err(OAuthError::invalid_grant(
            "the refresh token is invalid, expired or revoked",
        ));
    }
    Ok(next)
}

fn narrowed_scope(granted: &[String], params: &Params) -> Result<Vec<String>, OAuthError> {
    let requested = params.list("scope");
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    let mut scope: Vec<String> = Vec::new();
    for s in requested {
        if !granted.contains(&s) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {s} was not granted originally"),
            ));
        }
        if !scope.contains(&s) {
            scope.push(s);
        }
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted() -> Vec<String> {
        ["openid", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn scope_may_be_narrowed_but_not_widened() {
        let none = Params::parse(b"");
        assert_eq!(narrowed_scope(&granted(), &none).unwrap(), granted());
        let narrow = Params::parse(b"scope=email+email");
        assert_eq!(narrowed_scope(&granted(), &narrow).unwrap(), ["email"]);
        let wide = Params::parse(b"scope=openid+profile");
        assert_eq!(
            narrowed_scope(&granted(), &wide).unwrap_err().code,
            "invalid_scope"
        );
    }
}
