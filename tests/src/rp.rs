//! The relying party: the `openidconnect` crate, configured by discovery,
//! doing everything a real app does (PKCE, nonce, state, ID token checks).

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::{Browser, ClientSpec, SECRET, Server, http, query_param};

/// A discovered client, as the `openidconnect` crate types it.
pub type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovers the server and configures a client like `spec`.
pub async fn discover(server: &Server, spec: &ClientSpec) -> Rp {
    let issuer = IssuerUrl::new(server.base.clone()).expect("issuer URL");
    let metadata = CoreProviderMetadata::discover_async(issuer, &http())
        .await
        .expect("discovery");
    let secret = spec
        .auth_method
        .starts_with("client_secret")
        .then(|| ClientSecret::new(SECRET.into()));
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(spec.id.clone()), secret)
            .set_redirect_uri(RedirectUrl::new(spec.redirect_uri.clone()).expect("redirect URI"));
    match spec.auth_method {
        "client_secret_post" => client.set_auth_type(AuthType::RequestBody),
        _ => client,
    }
}

/// The result of a completed code flow.
pub struct Completed {
    pub token: CoreTokenResponse,
    pub claims: CoreIdTokenClaims,
    /// The ID token's payload as JSON, for claims the typed view omits.
    pub raw_claims: serde_json::Value,
    pub callback: String,
}

/// Options of one authorization request.
pub struct Request<'a> {
    pub scopes: &'a [&'a str],
    pub pkce: bool,
    pub extra: &'a [(&'a str, &'a str)],
}

impl Default for Request<'_> {
    fn default() -> Self {
        Self {
            scopes: &["profile", "email"],
            pkce: true,
            extra: &[],
        }
    }
}

/// [`code_flow`] for `email` with a fresh browser and the default request.
pub async fn sign_in_as(server: &Server, rp: &Rp, email: &str) -> Completed {
    code_flow(
        server,
        rp,
        &mut Browser::new(&server.base),
        email,
        Request::default(),
    )
    .await
}

/// Runs the whole authorization code flow: the library builds the request,
/// the browser signs in with a password, the library redeems the code and
/// verifies the ID token (signature from the JWKS, iss, aud, azp, exp, nonce)
/// and `at_hash`.
pub async fn code_flow(
    server: &Server,
    rp: &Rp,
    browser: &mut Browser,
    email: &str,
    req: Request<'_>,
) -> Completed {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut auth = rp.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in req.scopes {
        auth = auth.add_scope(Scope::new(scope.to_string()));
    }
    for (k, v) in req.extra {
        auth = auth.add_extra_param(*k, *v);
    }
    if req.pkce {
        auth = auth.set_pkce_challenge(challenge);
    }
    let (url, state, nonce) = auth.url();

    let page = browser
        .authorize_with_password(url.as_str(), email, crate::PASSWORD)
        .await;
    let callback = page
        .location
        .unwrap_or_else(|| panic!("no redirect to the client: {} {}", page.status, page.body));
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(server.base.as_str()),
        "RFC 9207 iss"
    );
    let code = query_param(&callback, "code").expect("code in the callback");

    let mut exchange = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint");
    if req.pkce {
        exchange = exchange.set_pkce_verifier(verifier);
    }
    let token = exchange
        .request_async(&http())
        .await
        .expect("token response");
    let id_token = token.id_token().expect("an ID token");
    let id_verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("a valid ID token")
        .clone();
    let alg = id_token.signing_alg().expect("signing alg");
    let key = id_token.signing_key(&id_verifier).expect("signing key");
    let expected = AccessTokenHash::from_token(token.access_token(), alg, key).expect("at_hash");
    assert_eq!(
        claims.access_token_hash(),
        Some(&expected),
        "at_hash matches the access token"
    );

    let raw_claims = crate::jwt_payload(&id_token.to_string());
    Completed {
        token,
        claims,
        raw_claims,
        callback,
    }
}

/// Redeems the code in a callback URL with the PKCE verifier, and verifies
/// the ID token against the nonce; returns the token response and the claims.
pub async fn redeem(
    rp: &Rp,
    callback: &str,
    verifier: openidconnect::PkceCodeVerifier,
    nonce: &Nonce,
) -> (CoreTokenResponse, CoreIdTokenClaims) {
    let code = query_param(callback, "code").expect("code in the callback");
    let token = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("token response");
    let claims = token
        .id_token()
        .expect("an ID token")
        .claims(&rp.id_token_verifier(), nonce)
        .expect("a valid ID token")
        .clone();
    (token, claims)
}

/// The `amr` values of verified ID token claims.
pub fn amr(claims: &CoreIdTokenClaims) -> Vec<String> {
    claims
        .auth_method_refs()
        .map(|v| v.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default()
}
