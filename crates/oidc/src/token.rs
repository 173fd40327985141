//! The token endpoint (RFC 6749 3.2, 4.1.3, 4.4, 6; OIDC Core 3.1.3, 12).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use zapini_core::Secret;
use zapini_core::crypto::{b64url, ct_eq, random_token, sha256, token_hash};
use zapini_core::flow::{AuthorizationCode, Grant, ns};
use zapini_core::form::Params;
use zapini_core::metrics;

use crate::OidcState;
use crate::client_auth::{authenticate, read_form};
use crate::clients::{Client, GrantType};
use crate::error::{OAuthError, no_store};
use crate::refresh;
use crate::tokens::{UserGrant, mint, mint_for_client};

pub async fn handler(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(response) => response,
        Err(err) => {
            tracing::info!(error = err.code, description = %err.description, "token request refused");
            err.token_response()
        }
    }
}

async fn exchange(
    state: &OidcState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let params = read_form(headers, body)?;
    let client = authenticate(state, headers, &params, &state.endpoint("/token")).await?;
    let grant = match params.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some(name) => GrantType::parse(name).ok_or_else(|| {
            OAuthError::new("unsupported_grant_type", "this grant type is not supported")
        })?,
    };
    // RFC 6749 5.2: a client may use only the grants it is registered for.
    if !client.allows(grant) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use this grant type",
        ));
    }
    let (issued, counted) = match grant {
        GrantType::AuthorizationCode => (
            authorization_code(state, client, &params).await,
            metrics::Grant::AuthorizationCode,
        ),
        GrantType::RefreshToken => (
            refresh::grant(state, client, &params).await,
            metrics::Grant::RefreshToken,
        ),
        GrantType::ClientCredentials => (
            client_credentials(state, client, &params).await,
            metrics::Grant::ClientCredentials,
        ),
    };
    if issued.is_ok() {
        state.counters.token_issued(counted);
    }
    issued
}

/// A random grant id, the `jti` of the access tokens of one token response.
pub(crate) fn new_grant_id() -> Result<String, OAuthError> {
    random_token(32)
        .map(|t| t.expose().to_owned())
        .map_err(|_| OAuthError::new("server_error", "no randomness"))
}

pub(crate) fn signing_failed(err: crate::keys::KeyError) -> OAuthError {
    tracing::error!(error = %err, "signing failed");
    OAuthError::new("server_error", "tokens could not be signed")
}

/// RFC 6749 4.1.3 with RFC 7636 4.6 and the single-use rule of 4.1.2.
async fn authorization_code(
    state: &OidcState,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let now = state.clock.now();
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let code_key = token_hash(code);
    // The grant's id is derived from the code, so that a replay finds it.
    let grant_id = token_hash(&code_key);
    let record = redeem(state, client, params, code, &code_key, &grant_id, now).await?;
    let user = state
        .store
        .users()
        .find(&record.user_id)
        .await
        .map_err(|_| OAuthError::unavailable())?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_grant("the user can no longer sign in"))?;

    // OIDC Core 11: offline_access, granted only to clients allowed refresh
    // tokens, asks for one. Its family is named after the grant, so that a
    // replay of the code revokes it too.
    let refresh_token = if client.allows(GrantType::RefreshToken)
        && record.scope.iter().any(|s| s == "offline_access")
    {
        Some(refresh::issue_first(state, client, &record, &grant_id, now).await?)
    } else {
        None
    };
    let grant = Grant {
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        scope: record.scope.clone(),
        expires_at: now + state.tokens.access_token_ttl,
        family: refresh_token.as_ref().map(|_| grant_id.clone()),
        for_client: false,
        userinfo_claims: record.userinfo_claims.clone(),
    };
    store_grant(state, &grant_id, &grant).await?;
    revoke_if_replayed_meanwhile(state, &code_key, &grant_id, now).await;

    let issued = UserGrant {
        sub: &user.id,
        scope: &record.scope,
        auth: &record.auth,
        sid: &record.sid,
        nonce: record.nonce.as_deref(),
        id_token_claims: Some((&user, &record.id_token_claims)),
    };
    let response = user_tokens(state, client, &issued, &grant_id, refresh_token, now)?;
    tracing::info!(client_id = %client.client_id, user_id = %user.id, "tokens issued for a code");
    Ok(response)
}

/// Takes the code atomically (of concurrent redemptions exactly one wins)
/// and checks it against the request.
async fn redeem(
    state: &OidcState,
    client: &Client,
    params: &Params,
    code: &str,
    code_key: &str,
    grant_id: &str,
    now: i64,
) -> Result<AuthorizationCode, OAuthError> {
    let taken: Option<AuthorizationCode> = state
        .store
        .ephemeral()
        .take(ns::CODE, code_key, now)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let Some(record) = taken else {
        revoke_replayed(state, code, code_key, grant_id, now).await;
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired or already used",
        ));
    };

    if record.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    // RFC 6749 4.1.3: redirect_uri must be identical to the one authorized.
    if params.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    check_pkce(
        record.code_challenge.as_deref(),
        params.get("code_verifier"),
    )?;
    Ok(record)
}

/// A replay racing this redemption has left its mark by now, or will find
/// the grant and delete it: either way the access token does not stay valid.
/// This redemption still gets its answer, as it would have had it come a
/// moment earlier: exactly one redemption succeeds.
async fn revoke_if_replayed_meanwhile(state: &OidcState, code_key: &str, grant_id: &str, now: i64) {
    let eph = state.store.ephemeral();
    let replayed = eph.get::<bool>(ns::REPLAYED_CODE, code_key, now).await;
    if !matches!(replayed, Ok(None)) {
        let _ = eph.delete(ns::GRANT, grant_id).await;
        let refresh = state.store.refresh_tokens();
        let _ = refresh.revoke_family(grant_id, now).await;
        tracing::warn!("authorization code replayed during its redemption; tokens revoked");
    }
}

pub(crate) async fn store_grant(
    state: &OidcState,
    grant_id: &str,
    grant: &Grant,
) -> Result<(), OAuthError> {
    state
        .store
        .ephemeral()
        .put(ns::GRANT, grant_id, grant, grant.expires_at)
        .await
        .map_err(|_| OAuthError::unavailable())
}

/// The successful answer of a user grant (RFC 6749 5.1, OIDC Core 3.1.3.3).
pub(crate) fn user_tokens(
    state: &OidcState,
    client: &Client,
    issued: &UserGrant<'_>,
    grant_id: &str,
    refresh_token: Option<Secret>,
    now: i64,
) -> Result<Response, OAuthError> {
    let minted = mint(state, client, issued, grant_id, now).map_err(signing_failed)?;
    let mut body = json!({
        "access_token": minted.access_token,
        "token_type": "Bearer",
        "expires_in": minted.expires_in,
        "scope": issued.scope.join(" "),
    });
    if let Some(id_token) = minted.id_token {
        body["id_token"] = id_token.into();
    }
    if let Some(token) = refresh_token {
        body["refresh_token"] = token.expose().into();
    }
    Ok((no_store(), Json(body)).into_response())
}

/// RFC 6749 4.4: a confidential client asks for a token for itself. The
/// scope must be among the client's allowed scopes; `openid` and
/// `offline_access` are about a user and a refresh token, which this grant
/// has neither of (4.4.3: no refresh token).
async fn client_credentials(
    state: &OidcState,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let now = state.clock.now();
    // RFC 6749 4.4.2: only for confidential clients.
    if client.is_public() {
        return Err(OAuthError::new(
            "unauthorized_client",
            "a public client cannot use client_credentials",
        ));
    }
    let mut scope: Vec<String> = Vec::new();
    for requested in params.list("scope") {
        let user_scope = requested == "openid" || requested == "offline_access";
        if user_scope || !client.scopes.contains(&requested) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {requested} cannot be granted to this client"),
            ));
        }
        if !scope.contains(&requested) {
            scope.push(requested);
        }
    }

    // Nothing is stored: the token describes itself, and a revocation is
    // what gets written (see `tokens::active_access_token`).
    let jti = new_grant_id()?;
    let access_token = mint_for_client(state, client, &scope, &jti, now).map_err(signing_failed)?;
    tracing::info!(client_id = %client.client_id, "token issued for client credentials");

    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.tokens.access_token_ttl,
    });
    if !scope.is_empty() {
        body["scope"] = scope.join(" ").into();
    }
    Ok((no_store(), Json(body)).into_response())
}

/// RFC 6749 4.1.2 and RFC 9700 4.2.4: a code presented again revokes the
/// tokens issued from it. The mark comes first, and a redemption checks for
/// it after storing its grant, so concurrent redemptions cannot slip between.
async fn revoke_replayed(state: &OidcState, code: &str, code_key: &str, grant_id: &str, now: i64) {
    // Only something shaped like one of our codes leaves a mark, so random
    // guesses do not fill the store.
    let shaped = code.len() == 43
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return;
    }
    let eph = state.store.ephemeral();
    let until = now + state.tokens.access_token_ttl;
    let _ = eph.put(ns::REPLAYED_CODE, code_key, &true, until).await;
    let refresh = state
        .store
        .refresh_tokens()
        .revoke_family(grant_id, now)
        .await;
    if let Ok(true) = eph.delete(ns::GRANT, grant_id).await {
        tracing::warn!("authorization code replayed; the tokens issued from it are revoked");
    } else if let Ok(1..) = refresh {
        tracing::warn!("authorization code replayed; its refresh tokens are revoked");
    }
}

/// RFC 7636 4.6, and RFC 9700 2.1.1: a verifier without a challenge is
/// refused too, so PKCE cannot be downgraded.
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent but no code_challenge was",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is missing")),
        (Some(challenge), Some(verifier)) => {
            // RFC 7636 4.1: 43 to 128 unreserved characters.
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = b64url(&sha256(verifier.as_bytes()));
            if well_formed && ct_eq(computed.as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(check_pkce(Some(challenge), Some(challenge)).is_err());
        assert!(check_pkce(Some(challenge), None).is_err());
        assert!(check_pkce(None, Some(verifier)).is_err());
        assert!(check_pkce(None, None).is_ok());
    }
}
