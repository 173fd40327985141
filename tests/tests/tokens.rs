//! Refresh tokens, revocation, introspection, client_credentials and
//! private_key_jwt, against the real server with the `openidconnect` crate's
//! own request builders where it has them, and raw requests for the cases a
//! library would never send.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use josekit::jwk::Jwk;
use josekit::jws::{ES256, HS256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use openidconnect::core::{CoreErrorResponseType, CoreTokenResponse};
use openidconnect::{
    AuthType, IntrospectionUrl, Nonce, OAuth2TokenResponse, RefreshToken, RequestTokenError, Scope,
    StandardErrorResponse, TokenIntrospectionResponse, TokenResponse,
};
use serde_json::{Value, json};
use zapini_id_tests::rp::{Completed, Request, Rp, code_flow, discover};
use zapini_id_tests::totp::ServerClock;
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, SECRET, Server, http, jwt_payload, userinfo};

const EMAIL: &str = "ana@example.com";

const OFFLINE: &str = "grant_types = [\"authorization_code\", \"refresh_token\"]\n\
    scopes = [\"openid\", \"profile\", \"email\", \"offline_access\"]\n";

const MACHINE: &str = "grant_types = [\"client_credentials\"]\nscopes = [\"profile\", \"email\"]\n";

fn app() -> ClientSpec {
    ClientSpec::confidential("app").with_extra(OFFLINE)
}

fn start(clients: &[ClientSpec]) -> Server {
    let server = Server::start(clients, "");
    server.add_user(EMAIL, "Ana Lima");
    server
}

/// Signs in through `browser` asking for `offline_access`.
async fn sign_in(server: &Server, rp: &Rp, browser: &mut Browser) -> Completed {
    let req = Request {
        scopes: &["offline_access", "email"],
        ..Request::default()
    };
    code_flow(server, rp, browser, EMAIL, req).await
}

fn refresh_token_of(token: &CoreTokenResponse) -> RefreshToken {
    token
        .refresh_token()
        .expect("a refresh token for offline_access")
        .clone()
}

type TokenError = RequestTokenError<
    openidconnect::HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// The error code of a refused token request.
fn error_code(err: TokenError) -> String {
    match err {
        RequestTokenError::ServerResponse(e) => e.error().as_ref().to_owned(),
        other => panic!("not an OAuth error response: {other:?}"),
    }
}

async fn refresh(
    rp: &Rp,
    token: &RefreshToken,
    scopes: &[&str],
) -> Result<CoreTokenResponse, String> {
    let mut request = rp.exchange_refresh_token(token).expect("token endpoint");
    for s in scopes {
        request = request.add_scope(Scope::new(s.to_string()));
    }
    request.request_async(&http()).await.map_err(error_code)
}

async fn userinfo_status(server: &Server, access_token: &str) -> u16 {
    http()
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A raw back-channel POST, with `client_secret_basic` for `basic`.
async fn post(
    server: &Server,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<&str>,
) -> (u16, Value) {
    let mut request = http().post(server.url(path)).form(form);
    if let Some(id) = basic {
        request = request.basic_auth(id, Some(SECRET));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn raw_refresh(server: &Server, client: &str, token: &str) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    post(server, "/token", &form, Some(client)).await
}

async fn introspect(server: &Server, client: &str, token: &str, hint: &str) -> Value {
    let form = [("token", token), ("token_type_hint", hint)];
    let (status, body) = post(server, "/introspect", &form, Some(client)).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn oidcc_refresh_token() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let first = refresh_token_of(&done.token);
    let scope = done.token.scopes().expect("scope in the response");
    assert!(scope.iter().any(|s| s.as_str() == "offline_access"));

    let refreshed = refresh(&rp, &first, &[]).await.expect("refresh");
    let second = refresh_token_of(&refreshed);
    assert_ne!(first.secret(), second.secret(), "rotated on use");
    let access = refreshed.access_token().secret();
    assert_eq!(userinfo_status(&server, access).await, 200);

    // OIDC Core 12.2: the new ID token is about the same user, for the same
    // client, and carries no nonce.
    let no_nonce = |n: Option<&Nonce>| n.is_none().then_some(()).ok_or("a nonce".to_owned());
    let id_token = refreshed.id_token().expect("an ID token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), no_nonce)
        .expect("a valid ID token");
    assert_eq!(claims.subject(), done.claims.subject());
    assert_eq!(claims.audiences(), done.claims.audiences());

    // The rotated token keeps working, once.
    let third = refresh(&rp, &second, &[]).await.expect("second refresh");
    assert_ne!(refresh_token_of(&third).secret(), second.secret());
}

#[tokio::test]
async fn refresh_keeps_the_original_auth_time_amr_and_acr() {
    let spec = app();
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(std::slice::from_ref(&spec), "", clock.start());
    server.add_user(EMAIL, "Ana Lima");
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let original = jwt_payload(done.token.access_token().secret());

    clock.advance_ten_minutes(&server);
    let refreshed = refresh(&rp, &refresh_token_of(&done.token), &[])
        .await
        .expect("refresh");
    let access = jwt_payload(refreshed.access_token().secret());
    let id = jwt_payload(&refreshed.id_token().expect("an ID token").to_string());
    assert!(access["iat"].as_i64() >= Some(original["iat"].as_i64().unwrap() + 600));
    for claims in [&access, &id] {
        assert_eq!(
            claims["auth_time"], done.raw_claims["auth_time"],
            "{claims}"
        );
        assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");
        assert_eq!(claims["acr"], "pwd", "{claims}");
        assert_eq!(claims["sid"], done.raw_claims["sid"], "{claims}");
    }
    assert!(id.get("nonce").is_none(), "no nonce on refresh");

    // Ten minutes on, the first access token has expired: inactive, while
    // the refreshed one is active.
    let old = done.token.access_token().secret();
    assert_eq!(
        introspect(&server, "app", old, "").await,
        json!({ "active": false })
    );
    let new = refreshed.access_token().secret();
    assert_eq!(introspect(&server, "app", new, "").await["active"], true);
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_whole_family() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let first = refresh_token_of(&done.token);
    let refreshed = refresh(&rp, &first, &[]).await.expect("refresh");
    let second = refresh_token_of(&refreshed);
    let access = refreshed.access_token().secret().clone();
    assert_eq!(userinfo_status(&server, &access).await, 200);

    // RFC 9700 4.14.2: the rotated token comes back; the whole family goes.
    assert_eq!(
        refresh(&rp, &first, &[]).await.unwrap_err(),
        "invalid_grant"
    );
    assert_eq!(
        refresh(&rp, &second, &[]).await.unwrap_err(),
        "invalid_grant"
    );
    assert_eq!(userinfo_status(&server, &access).await, 401);
    let answer = introspect(&server, "app", second.secret(), "refresh_token").await;
    assert_eq!(answer, json!({ "active": false }));
}

#[tokio::test]
async fn ten_concurrent_refreshes_with_one_token_succeed_at_most_once() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let token = refresh_token_of(&done.token).secret().clone();

    let url = server.url("/token");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let form = [("grant_type", "refresh_token"), ("refresh_token", &token)];
                let response = http()
                    .post(url)
                    .basic_auth("app", Some(SECRET))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    // At most one: the first to spend the token may still lose, when a
    // replay revokes the family before its successor is confirmed.
    assert!(winners.len() <= 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 400 && b["error"] == "invalid_grant"),
        "{results:?}"
    );
    // The losers were replays: whatever the winner got is revoked too.
    for (_, body) in winners {
        let next = body["refresh_token"].as_str().unwrap();
        let (status, _) = raw_refresh(&server, "app", next).await;
        assert_eq!(status, 400);
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(userinfo_status(&server, access).await, 401);
    }
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_not_widen_it() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let token = refresh_token_of(&done.token);

    // RFC 6749 6: "profile" was not granted, so asking for it is refused,
    // and the refused request does not spend the token.
    let wide = refresh(&rp, &token, &["openid", "profile"]).await;
    assert_eq!(wide.unwrap_err(), "invalid_scope");

    let narrow = refresh(&rp, &token, &["openid"]).await.expect("narrowed");
    let scopes: Vec<_> = narrow
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["openid"]);
    assert_eq!(
        jwt_payload(narrow.access_token().secret())["scope"],
        "openid"
    );
    let info: Value = userinfo(&server, narrow.access_token().secret()).await;
    assert!(
        info.get("email").is_none(),
        "email was narrowed away: {info}"
    );

    // The family keeps the original scope: the next refresh may have email.
    let next = refresh_token_of(&narrow);
    let back = refresh(&rp, &next, &["email"])
        .await
        .expect("original scope");
    assert_eq!(jwt_payload(back.access_token().secret())["scope"], "email");
}

#[tokio::test]
async fn oidcc_refresh_token_revocation() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let token = refresh_token_of(&done.token);
    let access = done.token.access_token().secret().clone();
    assert_eq!(userinfo_status(&server, &access).await, 200);

    // The `openidconnect` crate's `revoke_token` refuses a revocation
    // endpoint that is not https (RFC 7009 2 requires TLS), and this test
    // server is plain http on loopback, so the request is made by hand,
    // as the library would form it.
    let form = [
        ("token", token.secret().as_str()),
        ("token_type_hint", "refresh_token"),
    ];
    let (status, body) = post(&server, "/revoke", &form, Some("app")).await;
    assert_eq!(
        (status, body),
        (200, Value::Null),
        "RFC 7009 2.2: 200, no content"
    );

    assert_eq!(
        refresh(&rp, &token, &[]).await.unwrap_err(),
        "invalid_grant"
    );
    // RFC 7009 2.1: the access tokens of the same grant go with it.
    assert_eq!(userinfo_status(&server, &access).await, 401);
}

#[tokio::test]
async fn access_tokens_are_revoked_only_by_their_own_client() {
    let specs = [app(), ClientSpec::confidential("other")];
    let server = start(&specs);
    let rp = discover(&server, &specs[0]).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let access = done.token.access_token().secret().clone();
    let refresh_token = refresh_token_of(&done.token).secret().clone();

    // RFC 7009 2.2: unknown tokens and other clients' tokens are answered
    // 200, and nothing happens to the latter.
    for token in [access.as_str(), refresh_token.as_str(), "not-a-token"] {
        let form = [("token", token)];
        let (status, _) = post(&server, "/revoke", &form, Some("other")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(userinfo_status(&server, &access).await, 200);

    let form = [
        ("token", access.as_str()),
        ("token_type_hint", "access_token"),
    ];
    let (status, _) = post(&server, "/revoke", &form, Some("app")).await;
    assert_eq!(status, 200);
    assert_eq!(userinfo_status(&server, &access).await, 401);
    // The refresh token is another matter, and still works.
    let (status, body) = raw_refresh(&server, "app", &refresh_token).await;
    assert_eq!(status, 200, "{body}");

    // An access token from a refresh has no grant of its own stored; it is
    // revoked the same way, and only by its client.
    let refreshed = body["access_token"].as_str().expect("access token");
    let form = [("token", refreshed), ("token_type_hint", "access_token")];
    assert_eq!(post(&server, "/revoke", &form, Some("other")).await.0, 200);
    assert_eq!(userinfo_status(&server, refreshed).await, 200);
    assert_eq!(post(&server, "/revoke", &form, Some("app")).await.0, 200);
    assert_eq!(userinfo_status(&server, refreshed).await, 401);
    let next = body["refresh_token"].as_str().expect("rotated token");
    let (status, body) = raw_refresh(&server, "app", next).await;
    assert_eq!(status, 200, "{body}");

    // Without client authentication nothing is revoked.
    let (status, body) = post(&server, "/revoke", &[("token", "x")], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = post(&server, "/revoke", &[], Some("app")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn introspection_says_active_only_for_live_tokens_of_the_caller() {
    let specs = [
        app(),
        ClientSpec::confidential("other"),
        ClientSpec::confidential("spa").with_auth("none"),
    ];
    let server = start(&specs);
    let rp = discover(&server, &specs[0]).await;
    let done = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let access = done.token.access_token().clone();
    let refresh_token = refresh_token_of(&done.token);

    let inspecting = rp
        .clone()
        .set_introspection_url(IntrospectionUrl::new(server.url("/introspect")).unwrap());
    let answer = inspecting
        .introspect(&access)
        .set_token_type_hint("access_token")
        .request_async(&http())
        .await
        .expect("introspection");
    assert!(answer.active());
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some("app"));
    assert_eq!(answer.sub(), Some(done.claims.subject().as_str()));
    assert!(answer.exp().is_some_and(|e| e.timestamp() > now()));
    let scopes: Vec<_> = answer
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(scopes.contains(&"offline_access".to_owned()), "{scopes:?}");

    let raw = introspect(&server, "app", access.secret(), "access_token").await;
    assert_eq!(raw["iss"], server.base.as_str());
    assert_eq!(raw["token_type"], "Bearer");
    assert_eq!(raw["auth_time"], done.raw_claims["auth_time"]);
    assert_eq!((&raw["acr"], &raw["amr"]), (&json!("pwd"), &json!(["pwd"])));

    let raw = introspect(&server, "app", refresh_token.secret(), "refresh_token").await;
    assert_eq!(raw["active"], true, "{raw}");
    assert_eq!(raw["sub"], done.claims.subject().as_str());
    assert_eq!(raw["client_id"], "app");

    // Another client, an unknown token, a wrong hint on a good token.
    let inactive = json!({ "active": false });
    assert_eq!(
        introspect(&server, "other", access.secret(), "").await,
        inactive
    );
    assert_eq!(introspect(&server, "app", "nonsense", "").await, inactive);
    let hinted = introspect(&server, "app", refresh_token.secret(), "access_token").await;
    assert_eq!(hinted["active"], true, "a hint only orders the search");

    // Public clients and unauthenticated callers may not introspect.
    let form = [("token", access.secret().as_str()), ("client_id", "spa")];
    let (status, body) = post(&server, "/introspect", &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = post(&server, "/introspect", &form[..1], None).await;
    assert_eq!(status, 401);

    // After revocation, inactive.
    let form = [("token", refresh_token.secret().as_str())];
    assert_eq!(post(&server, "/revoke", &form, Some("app")).await.0, 200);
    let raw = introspect(&server, "app", refresh_token.secret(), "refresh_token").await;
    assert_eq!(raw, inactive);
    assert_eq!(
        introspect(&server, "app", access.secret(), "").await,
        inactive
    );
}

#[tokio::test]
async fn client_credentials_gives_a_client_token_and_nothing_else() {
    let spec = ClientSpec::confidential("machine").with_extra(MACHINE);
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;

    let token = rp
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("profile".into()))
        .request_async(&http())
        .await
        .expect("client_credentials");
    assert!(token.refresh_token().is_none(), "RFC 6749 4.4.3");
    assert!(token.id_token().is_none());
    let claims = jwt_payload(token.access_token().secret());
    assert_eq!(claims["sub"], "machine", "RFC 9068 2.2: sub is the client");
    assert_eq!(claims["client_id"], "machine");
    assert_eq!(claims["scope"], "profile");
    assert!(claims.get("auth_time").is_none() && claims.get("amr").is_none());
    let header = jwt_payload(&format!(
        "x.{}",
        token.access_token().secret().split('.').next().unwrap()
    ));
    assert_eq!(header["typ"], "at+jwt");

    // No user behind it: UserInfo refuses it; introspection describes it.
    assert_eq!(
        userinfo_status(&server, token.access_token().secret()).await,
        401
    );
    let raw = introspect(&server, "machine", token.access_token().secret(), "").await;
    assert_eq!(
        (&raw["active"], &raw["sub"]),
        (&json!(true), &json!("machine"))
    );

    // Nothing is stored when such a token is issued; revoking one
    // (RFC 7009 2.1) ends that token and no other, on every endpoint.
    let form = [("grant_type", "client_credentials")];
    let (_, second) = post(&server, "/token", &form, Some("machine")).await;
    let second = second["access_token"].as_str().expect("a second token");
    let first = token.access_token().secret().as_str();
    let form = [("token", first), ("token_type_hint", "access_token")];
    assert_eq!(
        post(&server, "/revoke", &form, Some("machine")).await.0,
        200
    );
    let inactive = json!({ "active": false });
    assert_eq!(introspect(&server, "machine", first, "").await, inactive);
    let raw = introspect(&server, "machine", second, "access_token").await;
    assert_eq!(raw["active"], json!(true), "{raw}");

    for scope in ["openid", "offline_access", "profile admin"] {
        let form = [("grant_type", "client_credentials"), ("scope", scope)];
        let (status, body) = post(&server, "/token", &form, Some("machine")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{scope}"
        );
    }
}

#[tokio::test]
async fn client_credentials_is_refused_to_public_and_unlisted_clients() {
    let specs = [
        ClientSpec::confidential("app"),
        ClientSpec::confidential("spa").with_auth("none"),
    ];
    let server = start(&specs);
    let form = [("grant_type", "client_credentials")];
    let (status, body) = post(&server, "/token", &form, Some("app")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let form = [("grant_type", "client_credentials"), ("client_id", "spa")];
    let (status, body) = post(&server, "/token", &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // A client not allowed refresh tokens gets none, and cannot refresh.
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    let (status, body) = post(&server, "/token", &form, Some("app")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

/// A client's key pair for `private_key_jwt`, made by the test.
struct ClientKey {
    private: Jwk,
    public: Jwk,
}

impl ClientKey {
    fn new(kid: &str) -> Self {
        let pair = ES256.generate_key_pair().unwrap();
        let mut private = pair.to_jwk_private_key();
        let mut public = pair.to_jwk_public_key();
        private.set_key_id(kid);
        public.set_key_id(kid);
        Self { private, public }
    }

    fn spec(&self, id: &str) -> ClientSpec {
        ClientSpec::confidential(id)
            .with_auth("private_key_jwt")
            .with_extra(format!(
                "{MACHINE}jwks = '{{\"keys\":[{}]}}'\n",
                self.public
            ))
    }

    /// An assertion for `client` with `claims` merged over the usual ones.
    fn assertion(&self, server: &Server, client: &str, claims: Value) -> String {
        let mut payload = json!({
            "iss": client,
            "sub": client,
            "aud": server.url("/token"),
            "jti": format!("jti-{}", random_id()),
            "iat": now(),
            "exp": now() + 60,
        });
        for (k, v) in claims.as_object().unwrap() {
            payload[k] = v.clone();
        }
        let payload = JwtPayload::from_map(payload.as_object().unwrap().clone()).unwrap();
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        if let Some(kid) = self.private.key_id() {
            header.set_key_id(kid);
        }
        let signer = ES256.signer_from_jwk(&self.private).unwrap();
        jwt::encode_with_signer(&payload, &header, &signer).unwrap()
    }
}

/// A `jti` no other assertion of this test run has.
fn random_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn with_assertion(
    server: &Server,
    path: &str,
    assertion: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut all = vec![
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    all.extend_from_slice(form);
    post(server, path, &all, None).await
}

#[tokio::test]
async fn private_key_jwt_authenticates_at_token_introspection_and_revocation() {
    let key = ClientKey::new("k1");
    let spec = key.spec("signer");
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec)
        .await
        .set_auth_type(AuthType::RequestBody);

    // The library's own client_credentials request, with the assertion as
    // extra parameters (it has no private_key_jwt of its own).
    let assertion = key.assertion(&server, "signer", json!({}));
    let token = rp
        .exchange_client_credentials()
        .unwrap()
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", assertion)
        .request_async(&http())
        .await
        .expect("a token for a private_key_jwt client");
    let access = token.access_token().secret().clone();

    // The audience may also be the issuer, or the endpoint itself.
    let at_issuer = key.assertion(&server, "signer", json!({ "aud": server.base }));
    let form = [("token", access.as_str())];
    let (status, body) = with_assertion(&server, "/introspect", &at_issuer, &form).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");

    let aud = json!({ "aud": [server.url("/revoke")] });
    let at_revoke = key.assertion(&server, "signer", aud);
    let (status, _) = with_assertion(&server, "/revoke", &at_revoke, &form).await;
    assert_eq!(status, 200);
    let again = key.assertion(&server, "signer", json!({}));
    let (_, body) = with_assertion(&server, "/introspect", &again, &form).await;
    assert_eq!(body, json!({ "active": false }));
}

#[tokio::test]
async fn private_key_jwt_refuses_bad_assertions() {
    let key = ClientKey::new("k1");
    let server = start(&[key.spec("signer")]);
    let cc = [("grant_type", "client_credentials")];
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
    };

    // Replay: the same jti is accepted once.
    let once = key.assertion(&server, "signer", json!({}));
    assert_eq!(with_assertion(&server, "/token", &once, &cc).await.0, 200);
    refused(with_assertion(&server, "/token", &once, &cc).await);

    let bad_claims = [
        json!({ "aud": "https://elsewhere.example/token" }),
        json!({ "aud": [] }),
        json!({ "exp": now() - 10 }),
        json!({ "exp": now() + 3600 }),
        json!({ "iss": "someone-else" }),
        json!({ "jti": "" }),
        json!({ "iat": now() + 3600 }),
    ];
    for claims in bad_claims {
        let assertion = key.assertion(&server, "signer", claims.clone());
        let answer = with_assertion(&server, "/token", &assertion, &cc).await;
        assert_eq!(answer.0, 401, "{claims}");
        refused(answer);
    }

    // An unknown kid, and a key the client never registered under its kid.
    refused(
        with_assertion(
            &server,
            "/token",
            &ClientKey::new("k2").assertion(&server, "signer", json!({})),
            &cc,
        )
        .await,
    );
    refused(
        with_assertion(
            &server,
            "/token",
            &ClientKey::new("k1").assertion(&server, "signer", json!({})),
            &cc,
        )
        .await,
    );

    // alg none, and HS256 keyed with the public key (algorithm confusion).
    let good = key.assertion(&server, "signer", json!({}));
    let body = good.split('.').nth(1).unwrap();
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","kid":"k1"}"#));
    refused(with_assertion(&server, "/token", &none, &cc).await);
    let mut header = JwsHeader::new();
    header.set_key_id("k1");
    let hmac = HS256
        .signer_from_bytes(key.public.to_string().as_bytes())
        .unwrap();
    let claims = jwt_payload(&good);
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    let forged = jwt::encode_with_signer(&payload, &header, &hmac).unwrap();
    refused(with_assertion(&server, "/token", &forged, &cc).await);
    refused(with_assertion(&server, "/token", "not.a.jwt", &cc).await);

    // Half an assertion, or an assertion and a secret, are malformed requests.
    let fresh = key.assertion(&server, "signer", json!({}));
    let form = [
        ("client_assertion", fresh.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let (status, body) = post(&server, "/token", &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = {
        let all = [
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", fresh.as_str()),
            ("grant_type", "client_credentials"),
        ];
        post(&server, "/token", &all, Some("signer")).await
    };
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // None of that spent the fresh assertion.
    assert_eq!(with_assertion(&server, "/token", &fresh, &cc).await.0, 200);
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[tokio::test]
async fn password_change_sign_out_and_disable_revoke_refresh_tokens() {
    let spec = app();
    let server = start(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;

    // Password change: every refresh token of the user.
    let mut browser = Browser::new(&server.base);
    let done = sign_in(&server, &rp, &mut browser).await;
    let elsewhere = sign_in(&server, &rp, &mut Browser::new(&server.base)).await;
    let page = browser.get("/account/security").await;
    let csrf = zapini_id_tests::browser::hidden_input(&page.body, "csrf").expect("csrf");
    let new_password = "a brand new password for ana";
    let changed = browser
        .post_form(
            "/account/security/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert!(changed.status < 400, "{}", changed.body);
    for token in [&done.token, &elsewhere.token] {
        let (status, _) = raw_refresh(&server, "app", refresh_token_of(token).secret()).await;
        assert_eq!(status, 400, "revoked by the password change");
    }

    // Signing out: the tokens of that session only.
    let password_cli = server.cli(
        &[
            "users",
            "add",
            "--email",
            "bo@example.com",
            "--name",
            "Bo",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(password_cli.status.success());
    let mut one = Browser::new(&server.base);
    let req = || Request {
        scopes: &["offline_access"],
        ..Request::default()
    };
    let first = code_flow(&server, &rp, &mut one, "bo@example.com", req()).await;
    let second = code_flow(
        &server,
        &rp,
        &mut Browser::new(&server.base),
        "bo@example.com",
        req(),
    )
    .await;
    let page = one.get("/account/security").await;
    let csrf = zapini_id_tests::browser::hidden_input(&page.body, "csrf").expect("csrf");
    let out = one.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    let (status, _) = raw_refresh(&server, "app", refresh_token_of(&first.token).secret()).await;
    assert_eq!(status, 400, "revoked by signing out");
    let kept = refresh_token_of(&second.token);
    let (status, body) = raw_refresh(&server, "app", kept.secret()).await;
    assert_eq!(status, 200, "another session's token stays: {body}");

    // Disabling the user: everything left.
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let disabled = server.cli(&["users", "disable", "--email", "bo@example.com"], "");
    assert!(disabled.status.success());
    let (status, body) = raw_refresh(&server, "app", &next).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn discovery_lists_the_new_endpoints_grants_and_methods() {
    let server = start(&[app()]);
    let doc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["revocation_endpoint"], server.url("/revoke"));
    assert_eq!(doc["introspection_endpoint"], server.url("/introspect"));
    assert_eq!(
        doc["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("private_key_jwt")));
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
    let introspection = doc["introspection_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(
        !introspection.contains(&json!("none")),
        "public clients cannot introspect"
    );
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("offline_access"))
    );

    // Every advertised endpoint answers a bad request with an OAuth error,
    // never a server error.
    for path in ["/revoke", "/introspect", "/token"] {
        let response = http()
            .post(server.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
        let duplicated = http()
            .post(server.url(path))
            .basic_auth("app", Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=a&token=b&grant_type=refresh_token&refresh_token=x&refresh_token=y")
            .send()
            .await
            .unwrap();
        assert_eq!(duplicated.status().as_u16(), 400, "{path}");
    }
}

/// A client's `jwks_uri`, played by a small server on 127.0.0.1 that
/// counts its fetches.
struct KeyHost {
    uri: String,
    set: Arc<std::sync::Mutex<(u16, String)>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl KeyHost {
    async fn start() -> Self {
        use axum::http::{StatusCode, header};
        let set = Arc::new(std::sync::Mutex::new((200, String::new())));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, f) = (set.clone(), fetches.clone());
        let serve = move || {
            let (s, f) = (s.clone(), f.clone());
            async move {
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, body) = s.lock().unwrap().clone();
                let location = (status == 302).then_some("http://127.0.0.1:9/other");
                let mut response = axum::response::Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .header(header::CONTENT_TYPE, "application/jwk-set+json")
                    .header(header::CACHE_CONTROL, "max-age=900");
                if let Some(to) = location {
                    response = response.header(header::LOCATION, to);
                }
                response.body(axum::body::Body::from(body)).unwrap()
            }
        };
        let app = axum::Router::new().route("/jwks", axum::routing::get(serve));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            uri: format!("http://127.0.0.1:{port}/jwks"),
            set,
            fetches,
        }
    }

    fn publish(&self, keys: &[&ClientKey]) {
        let keys: Vec<String> = keys.iter().map(|k| k.public.to_string()).collect();
        *self.set.lock().unwrap() = (200, format!("{{\"keys\":[{}]}}", keys.join(",")));
    }

    fn answer(&self, status: u16, body: impl Into<String>) {
        *self.set.lock().unwrap() = (status, body.into());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn spec(&self, id: &str) -> ClientSpec {
        ClientSpec::confidential(id)
            .with_auth("private_key_jwt")
            .with_extra(format!("{MACHINE}jwks_uri = \"{}\"\n", self.uri))
    }
}

/// Claims that are valid on the server's (test) clock.
fn timed(clock: &ServerClock) -> Value {
    json!({ "iat": clock.now(), "exp": clock.now() + 60 })
}

#[tokio::test]
async fn private_key_jwt_keys_come_from_the_clients_jwks_uri_and_follow_its_rotation() {
    let host = KeyHost::start().await;
    let (old, new) = (ClientKey::new("old"), ClientKey::new("new"));
    host.publish(&[&old]);
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(&[host.spec("fetcher")], "", clock.start());
    server.add_user(EMAIL, "Ana Lima");
    let cc = [("grant_type", "client_credentials")];

    // The set is fetched once and kept for its max-age (900 s).
    for _ in 0..3 {
        let assertion = old.assertion(&server, "fetcher", timed(&clock));
        let (status, body) = with_assertion(&server, "/token", &assertion, &cc).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(host.fetches(), 1);

    // The client rotates: an assertion under the new kid makes the server
    // fetch again before the max-age is up (OIDC Core 10.1.1), and is
    // accepted.
    host.publish(&[&old, &new]);
    clock.advance_ten_minutes(&server);
    let assertion = new.assertion(&server, "fetcher", timed(&clock));
    let (status, body) = with_assertion(&server, "/token", &assertion, &cc).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(host.fetches(), 2);

    // A kid that is not published is refused, and asking again at once
    // does not make the server fetch again.
    for _ in 0..3 {
        let stranger = ClientKey::new("stranger").assertion(&server, "fetcher", timed(&clock));
        let (status, body) = with_assertion(&server, "/token", &stranger, &cc).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    assert_eq!(host.fetches(), 2);

    // Past its max-age the set is fetched again: the old key is gone.
    host.publish(&[&new]);
    clock.advance_ten_minutes(&server);
    clock.advance_ten_minutes(&server);
    let assertion = old.assertion(&server, "fetcher", timed(&clock));
    let (status, _) = with_assertion(&server, "/token", &assertion, &cc).await;
    assert_eq!(status, 401);
    assert_eq!(host.fetches(), 3);
    let assertion = new.assertion(&server, "fetcher", timed(&clock));
    assert_eq!(
        with_assertion(&server, "/token", &assertion, &cc).await.0,
        200
    );
    assert_eq!(host.fetches(), 3);

    // When the URL fails, the set fetched minutes ago keeps working.
    host.answer(500, "down");
    clock.advance_ten_minutes(&server);
    clock.advance_ten_minutes(&server);
    let assertion = new.assertion(&server, "fetcher", timed(&clock));
    let (status, body) = with_assertion(&server, "/token", &assertion, &cc).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(host.fetches(), 4);
}

#[tokio::test]
async fn a_jwks_uri_that_fails_or_misbehaves_gives_invalid_client() {
    let key = ClientKey::new("k1");
    let host = KeyHost::start().await;
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(&[host.spec("fetcher")], "", clock.start());
    let cc = [("grant_type", "client_credentials")];
    let private = {
        let mut jwk = key.private.clone();
        jwk.set_key_id("k1");
        format!("{{\"keys\":[{jwk}]}}")
    };
    let too_long = format!(
        "{{\"keys\":[{}],\"pad\":\"{}\"}}",
        key.public,
        "x".repeat(70_000)
    );
    let answers = [
        (500, "{}".to_owned()),
        (302, String::new()),
        (200, "not json".to_owned()),
        (200, "{\"keys\":[]}".to_owned()),
        (200, private),
        (200, too_long),
    ];
    for (status, body) in answers {
        host.answer(status, body.clone());
        // Past the wait between fetches, so each answer is really fetched.
        clock.advance_ten_minutes(&server);
        let before = host.fetches();
        let assertion = key.assertion(&server, "fetcher", timed(&clock));
        let (code, reply) = with_assertion(&server, "/token", &assertion, &cc).await;
        assert_eq!(
            (code, reply["error"].as_str()),
            (401, Some("invalid_client")),
            "{status} {}",
            &body[..body.len().min(40)]
        );
        assert_eq!(host.fetches(), before + 1, "{status}");
    }
    // The redirect was not followed, the server still runs, and a good
    // answer is taken.
    host.publish(&[&key]);
    clock.advance_ten_minutes(&server);
    let assertion = key.assertion(&server, "fetcher", timed(&clock));
    assert_eq!(
        with_assertion(&server, "/token", &assertion, &cc).await.0,
        200
    );
}

#[tokio::test]
async fn a_jwks_uri_may_also_publish_encryption_keys_and_key_types_the_server_does_not_use() {
    // OIDC Core 10.1 and 10.2: a client publishes its signing and
    // encryption keys in one set, each with `use`; RFC 7517 5: keys of a
    // type not understood are ignored, not the whole set.
    let key = ClientKey::new("sig-1");
    let host = KeyHost::start().await;
    let server = Server::start(&[host.spec("fetcher")], "");
    let mut enc = key.public.clone();
    enc.set_key_id("enc-1");
    enc.set_key_use("enc");
    let x25519 = json!({"kty": "OKP", "crv": "X25519", "use": "enc", "kid": "enc-2",
        "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"});
    let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "ec-384",
        "x": "AA", "y": "AA"});
    host.answer(
        200,
        format!("{{\"keys\":[{enc},{x25519},{},{p384}]}}", key.public),
    );
    let cc = [("grant_type", "client_credentials")];
    let assertion = key.assertion(&server, "fetcher", json!({}));
    let (status, body) = with_assertion(&server, "/token", &assertion, &cc).await;
    assert_eq!(status, 200, "{body}");

    // A private key anywhere in the set still refuses all of it: the
    // client has leaked it, and the set is not to be trusted.
    let other = ClientKey::new("sig-2");
    let mut leaked = other.private.clone();
    leaked.set_key_use("enc");
    let text = format!("{{\"keys\":[{},{leaked}]}}", other.public);
    host.answer(200, text);
    let assertion = other.assertion(&server, "fetcher", json!({}));
    let (status, body) = with_assertion(&server, "/token", &assertion, &cc).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}
