//! The token endpoint (RFC 6749 3.2, 4.1.3; OIDC Core 3.1.3).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use zapini_core::crypto::{b64url, ct_eq, sha256, token_hash};
use zapini_core::flow::{AuthorizationCode, Grant, ns};

use crate::OidcState;
use crate::clients::{AuthMethod, Client};
use crate::error::{OAuthError, no_store};
use crate::tokens::mint;
use zapini_core::form::Params;

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
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    if let Some(name) = params.first_duplicate() {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name} was sent more than once"
        )));
    }

    let client = authenticate_client(state, headers, &params)?;
    match params.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => authorization_code(state, client, &params).await,
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "this grant type is not supported",
        )),
    }
}

/// Client credentials from the `Authorization: Basic` header: each part is
/// form-urlencoded before base64 (RFC 6749 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    // A raw `&` or `=` cannot appear in a form-urlencoded value; refusing
    // them keeps the decoding exact.
    if decoded.contains(['&', '=']) {
        return Err(OAuthError::invalid_client());
    }
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// RFC 6749 2.3: exactly one authentication method, the one registered.
fn authenticate_client<'a>(
    state: &'a OidcState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a Client, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");

    let (client_id, secret, used) = match (&basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (
                id.as_str(),
                Some(secret.as_str()),
                AuthMethod::ClientSecretBasic,
            )
        }
        (None, Some(secret)) => {
            let id = body_id.ok_or_else(OAuthError::invalid_client)?;
            (id, Some(secret), AuthMethod::ClientSecretPost)
        }
        (None, None) => (
            body_id.ok_or_else(OAuthError::invalid_client)?,
            None,
            AuthMethod::None,
        ),
    };

    let client = state
        .clients
        .get(client_id)
        .ok_or_else(OAuthError::invalid_client)?;
    if client.auth_method != used {
        return Err(OAuthError::invalid_client());
    }
    match secret {
        Some(secret) if !client.secret_matches(secret) => Err(OAuthError::invalid_client()),
        _ => Ok(client),
    }
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
    let eph = state.store.ephemeral();

    // Taking the code is atomic: of concurrent redemptions exactly one wins.
    let taken: Option<AuthorizationCode> = eph
        .take(ns::CODE, &code_key, now)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let Some(record) = taken else {
        revoke_replayed(state, code, &code_key, &grant_id, now).await;
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

    let user = state
        .store
        .users()
        .find(&record.user_id)
        .await
        .map_err(|_| OAuthError::unavailable())?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_grant("the user can no longer sign in"))?;

    let grant = Grant {
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        scope: record.scope.clone(),
        expires_at: now + state.tokens.access_token_ttl,
    };
    eph.put(ns::GRANT, &grant_id, &grant, grant.expires_at)
        .await
        .map_err(|_| OAuthError::unavailable())?;
    // A replay racing this redemption has left its mark by now, or will find
    // the grant and delete it: either way the access token does not stay
    // valid. This redemption still gets its answer, as it would have had it
    // come a moment earlier: exactly one redemption succeeds.
    let replayed = eph.get::<bool>(ns::REPLAYED_CODE, &code_key, now).await;
    if !matches!(replayed, Ok(None)) {
        let _ = eph.delete(ns::GRANT, &grant_id).await;
        tracing::warn!("authorization code replayed during its redemption; tokens revoked");
    }

    let minted = mint(state, client, &record, &user, &grant_id, now).map_err(|err| {
        tracing::error!(error = %err, "signing failed");
        OAuthError::new("server_error", "tokens could not be signed")
    })?;
    tracing::info!(client_id = %client.client_id, user_id = %user.id, "tokens issued for a code");

    let body = json!({
        "access_token": minted.access_token,
        "token_type": "Bearer",
        "expires_in": minted.expires_in,
        "id_token": minted.id_token,
        "scope": record.scope.join(" "),
    });
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
    if let Ok(true) = eph.delete(ns::GRANT, grant_id).await {
        tracing::warn!("authorization code replayed; the tokens issued from it are revoked");
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

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcr+t");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!(id, "my:client");
        assert_eq!(secret, "s+cr t");

        for raw in ["demo:secret&junk", "demo&x=1:secret"] {
            let encoded = STANDARD.encode(raw);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            assert!(basic_credentials(&headers).is_err(), "{raw}");
        }
    }
}
