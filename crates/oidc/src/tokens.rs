//! Minting and checking the tokens we issue: ID tokens (OIDC Core 2) and JWT
//! access tokens (RFC 9068).

use serde_json::{Map, Value, json};
use zapini_core::Authentication;
use zapini_core::flow::{Grant, ns};
use zapini_core::user::User;

use crate::OidcState;
use crate::clients::{Client, GrantType};
use crate::keys::{KeyError, half_hash};

/// What one successful user grant returns.
pub struct Minted {
    pub access_token: String,
    /// Only when the scope holds `openid`: a refresh may narrow it away.
    pub id_token: Option<String>,
    pub expires_in: i64,
}

/// What tokens issued for a user say about them and their sign-in.
pub struct UserGrant<'a> {
    /// The user's id: the tokens' `sub`.
    pub sub: &'a str,
    pub scope: &'a [String],
    /// The authentication event of the sign-in; a refresh keeps the
    /// original one (OIDC Core 12.2: `auth_time` is the original's).
    pub auth: &'a Authentication,
    pub sid: &'a str,
    /// Only on the code exchange; OIDC Core 12.2: a refreshed ID token
    /// should carry none.
    pub nonce: Option<&'a str>,
    /// User claims asked for in the ID token by the `claims` parameter
    /// (OIDC Core 5.5), with the user they are read from; only on the code
    /// exchange.
    pub id_token_claims: Option<(&'a User, &'a [String])>,
}

fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Signs the access token and ID token of a user grant. `grant_id` becomes
/// the access token's `jti`, the handle by which it is revoked.
pub fn mint(
    state: &OidcState,
    client: &Client,
    grant: &UserGrant<'_>,
    grant_id: &str,
    now: i64,
) -> Result<Minted, KeyError> {
    let ttl = state.tokens.access_token_ttl;
    let auth = grant.auth;
    // RFC 9068 2.2: iss, exp, aud, sub, client_id, iat, jti; plus the
    // authentication information of 2.2.1 so resource servers can demand a
    // level (RFC 9470).
    let access = claims(json!({
        "iss": state.issuer,
        "sub": grant.sub,
        "aud": client.client_id,
        "client_id": client.client_id,
        "exp": now + ttl,
        "iat": now,
        "jti": grant_id,
        "scope": grant.scope.join(" "),
        "auth_time": auth.time,
        "acr": auth.acr().as_str(),
        "amr": auth.amr(),
        "sid": grant.sid,
    }));
    let access_token = state
        .keys
        .sign(&client.access_token_alg, "at+jwt", access, now)?;

    let id_token = if grant.scope.iter().any(|s| s == "openid") {
        Some(id_token(state, client, grant, &access_token, now)?)
    } else {
        None
    };
    Ok(Minted {
        access_token,
        id_token,
        expires_in: ttl,
    })
}

/// OIDC Core 2 and 3.1.3.6.
fn id_token(
    state: &OidcState,
    client: &Client,
    grant: &UserGrant<'_>,
    access_token: &str,
    now: i64,
) -> Result<String, KeyError> {
    let auth = grant.auth;
    let mut id = claims(json!({
        "iss": state.issuer,
        "sub": grant.sub,
        "aud": client.client_id,
        "azp": client.client_id,
        "exp": now + state.tokens.id_token_ttl,
        "iat": now,
        "auth_time": auth.time,
        "sid": grant.sid,
        "at_hash": half_hash(&client.id_token_alg, access_token),
        "amr": auth.amr(),
        "acr": auth.acr().as_str(),
    }));
    if let Some(nonce) = grant.nonce {
        id.insert("nonce".into(), nonce.into());
    }
    if let Some((user, names)) = grant.id_token_claims {
        crate::claims::user_claims(user, names, &mut id);
    }
    state.keys.sign(&client.id_token_alg, "JWT", id, now)
}

/// Signs an access token a client gets for itself (RFC 6749 4.4): RFC 9068
/// 2.2 says `sub` is then the client's identifier, and no user or
/// authentication event is described.
pub fn mint_for_client(
    state: &OidcState,
    client: &Client,
    scope: &[String],
    grant_id: &str,
    now: i64,
) -> Result<String, KeyError> {
    let access = claims(json!({
        "iss": state.issuer,
        "sub": client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "exp": now + state.tokens.access_token_ttl,
        "iat": now,
        "jti": grant_id,
        "scope": scope.join(" "),
    }));
    state
        .keys
        .sign(&client.access_token_alg, "at+jwt", access, now)
}

/// An access token we issued that is still good.
#[derive(Debug)]
pub struct AccessToken {
    pub sub: String,
    pub client_id: String,
    pub scope: Vec<String>,
    /// Issued to a client for itself: there is no user to describe.
    pub for_client: bool,
    /// Claims asked for UserInfo by the `claims` parameter.
    pub userinfo_claims: Vec<String>,
}

/// The claims of an access token signed by us: our signature, `typ:
/// at+jwt` (RFC 9068 4) and our issuer. Expiry and revocation are not
/// checked here.
pub fn signed_access_token(state: &OidcState, token: &str) -> Option<Map<String, Value>> {
    let (typ, claims) = state.keys.verify(token, state.clock.now()).ok()?;
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
        return None;
    }
    if claims.get("iss")?.as_str()? != state.issuer {
        return None;
    }
    Some(claims)
}

/// Checks an access token fully: signed by us, not expired, its grant not
/// revoked, nor the refresh-token family it belongs to. Returns its claims
/// and its grant.
///
/// Three kinds of access token, told apart by their claims:
/// - from a code exchange: its grant is stored under its `jti`, since it
///   also holds what UserInfo must answer for the `claims` parameter;
/// - from a refresh: its `jti` is `<family>.<random>` and nothing else is
///   stored; the refresh-token family decides;
/// - a client's token for itself: nothing is stored (see [`client_grant`]).
///
/// The last two stay good unless revoked one by one, which leaves a mark
/// under the `jti` until they expire.
pub async fn active_access_token(
    state: &OidcState,
    token: &str,
    now: i64,
) -> Option<(Map<String, Value>, Grant)> {
    let claims = signed_access_token(state, token)?;
    if claims.get("exp")?.as_i64()? <= now {
        return None;
    }
    let jti = claims.get("jti")?.as_str()?;
    let grant = if is_client_token(&claims) {
        client_grant(state, &claims, now).await?
    } else if let Some(family) = refreshed_family(jti) {
        if marked_revoked(state, jti, now).await {
            return None;
        }
        Grant {
            client_id: claims.get("client_id")?.as_str()?.to_owned(),
            user_id: claims.get("sub")?.as_str()?.to_owned(),
            scope: scope_of(&claims)?,
            expires_at: claims.get("exp")?.as_i64()?,
            family: Some(family.to_owned()),
            for_client: false,
            userinfo_claims: Vec::new(),
        }
    } else {
        state
            .store
            .ephemeral()
            .get(ns::GRANT, jti, now)
            .await
            .ok()??
    };
    if grant.user_id != claims.get("sub")?.as_str()? {
        return None;
    }
    if let Some(family) = &grant.family {
        let revoked = state.store.refresh_tokens().family_revoked(family).await;
        if !matches!(revoked, Ok(false)) {
            return None;
        }
    }
    Some((claims, grant))
}

/// The `jti` of an access token issued by a refresh of `family`.
pub(crate) fn refreshed_jti(family: &str, random: &str) -> String {
    format!("{family}.{random}")
}

/// The refresh-token family named in an access token's `jti`, if it was
/// issued by a refresh. Grant ids and families are base64url, without dots.
fn refreshed_family(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(family, _)| family)
}

/// Whether an access token has no stored grant and is checked by its
/// claims, its family and revocation marks instead.
pub(crate) fn is_self_contained(claims: &Map<String, Value>) -> bool {
    is_client_token(claims)
        || claims
            .get("jti")
            .and_then(Value::as_str)
            .is_some_and(|jti| refreshed_family(jti).is_some())
}

/// Whether a revocation (RFC 7009) marked this token; an unreadable store
/// counts as revoked.
async fn marked_revoked(state: &OidcState, jti: &str, now: i64) -> bool {
    let mark = state
        .store
        .ephemeral()
        .get::<bool>(ns::REVOKED_ACCESS_TOKEN, jti, now)
        .await;
    !matches!(mark, Ok(None))
}

fn scope_of(claims: &Map<String, Value>) -> Option<Vec<String>> {
    let scope = claims.get("scope")?.as_str()?;
    Some(
        scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Whether the claims are those of a token a client got for itself: RFC
/// 9068 2.2 makes its `sub` the client's id, and it describes no sign-in,
/// where every token for a user carries `auth_time`.
pub(crate) fn is_client_token(claims: &Map<String, Value>) -> bool {
    claims.get("auth_time").is_none()
        && claims.get("sub").is_some()
        && claims.get("sub") == claims.get("client_id")
}

/// The grant of a client's token for itself, rebuilt from its claims:
/// nothing is stored when one is issued, since a signature check is all
/// most uses need. It stays good while the client is still registered,
/// confidential, for `client_credentials` with every scope in it, and the
/// client has not
/// revoked it (RFC 7009), which leaves a mark until it expires.
async fn client_grant(state: &OidcState, claims: &Map<String, Value>, now: i64) -> Option<Grant> {
    let client_id = claims.get("client_id")?.as_str()?;
    let jti = claims.get("jti")?.as_str()?;
    let client = state.clients.get(client_id)?;
    // As at issue (RFC 6749 4.4.2): a confidential client allowed this grant.
    if client.is_public() || !client.allows(GrantType::ClientCredentials) {
        return None;
    }
    let scope = scope_of(claims)?;
    if !scope.iter().all(|s| client.scopes.contains(s)) {
        return None;
    }
    if marked_revoked(state, jti, now).await {
        return None;
    }
    Some(Grant {
        client_id: client_id.to_owned(),
        user_id: client_id.to_owned(),
        scope,
        expires_at: claims.get("exp")?.as_i64()?,
        family: None,
        for_client: true,
        userinfo_claims: Vec::new(),
    })
}

/// Checks a bearer token for a protected resource (see
/// [`active_access_token`]).
pub async fn check_access_token(state: &OidcState, token: &str, now: i64) -> Option<AccessToken> {
    let (_, grant) = active_access_token(state, token, now).await?;
    Some(AccessToken {
        sub: grant.user_id,
        client_id: grant.client_id,
        scope: grant.scope,
        for_client: grant.for_client,
        userinfo_claims: grant.userinfo_claims,
    })
}
