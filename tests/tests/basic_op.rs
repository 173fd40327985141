//! The OpenID Connect Basic OP and Config OP checks, named after the OpenID
//! conformance suite's modules, run with the `openidconnect` crate as the
//! relying party against the real server.

use openidconnect::core::CoreUserInfoClaims;
use openidconnect::{OAuth2TokenResponse, TokenResponse};
use serde_json::Value;
use zapini_id_tests::rp::{Completed, Request, code_flow, discover, sign_in_as};
use zapini_id_tests::{Browser, ClientSpec, Server, http, query_param, redeem_code, userinfo};

const EMAIL: &str = "ana@example.com";

fn server_with(clients: &[ClientSpec]) -> (Server, String) {
    let server = Server::start(clients, "");
    let sub = server.add_user(EMAIL, "Ana Lima");
    (server, sub)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn oidcc_server() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let mut browser = Browser::new(&server.base);
    let done = code_flow(&server, &rp, &mut browser, EMAIL, Request::default()).await;

    let c = &done.claims;
    assert_eq!(c.issuer().as_str(), server.base);
    assert_eq!(c.subject().as_str(), sub);
    assert_eq!(c.audiences().len(), 1);
    assert_eq!(c.audiences()[0].as_str(), "app");
    assert_eq!(c.authorized_party().map(|a| a.as_str()), Some("app"));
    let iat = c.issue_time().timestamp();
    assert!((iat - now()).abs() < 60, "iat is now");
    assert!(c.expiration().timestamp() > iat);
    let auth_time = c.auth_time().expect("auth_time").timestamp();
    assert!(auth_time <= iat && iat - auth_time < 60);
    let amr: Vec<_> = c
        .auth_method_refs()
        .expect("amr")
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    assert_eq!(amr, ["pwd"]);
    assert_eq!(c.auth_context_ref().map(|a| a.as_str()), Some("pwd"));
    assert!(
        done.raw_claims["sid"]
            .as_str()
            .is_some_and(|s| s.len() >= 16),
        "sid"
    );
    assert_eq!(done.token.token_type().as_ref(), "bearer");
}

#[tokio::test]
async fn oidcc_idtoken_signature_es256_and_eddsa() {
    let specs = [
        ClientSpec::confidential("es").with_alg("ES256"),
        ClientSpec::confidential("ed").with_alg("EdDSA"),
    ];
    let (server, sub) = server_with(&specs);
    for spec in &specs {
        let rp = discover(&server, spec).await;
        let mut browser = Browser::new(&server.base);
        let done = code_flow(&server, &rp, &mut browser, EMAIL, Request::default()).await;
        let alg = done.token.id_token().unwrap().signing_alg().unwrap();
        assert_eq!(serde_json::to_value(alg).unwrap(), spec.alg);
        assert_eq!(done.claims.subject().as_str(), sub);
    }
}

#[tokio::test]
async fn oidcc_server_client_secret_post() {
    let spec = ClientSpec::confidential("post").with_auth("client_secret_post");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in_as(&server, &rp, EMAIL).await;
    assert_eq!(done.claims.subject().as_str(), sub);
}

#[tokio::test]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let spec = ClientSpec::confidential("spa").with_auth("none");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in_as(&server, &rp, EMAIL).await;
    assert_eq!(done.claims.subject().as_str(), sub);
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&state=s1&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = Browser::new(&server.base)
        .authorize_with_password(&url, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    let code = query_param(page.location.as_deref().unwrap(), "code").expect("code");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    let claims = zapini_id_tests::jwt_payload(token["id_token"].as_str().unwrap());
    assert!(
        claims.get("nonce").is_none(),
        "no nonce was sent, none comes back"
    );
}

async fn userinfo_claims(
    server: &Server,
    spec: &ClientSpec,
    scopes: &[&str],
) -> (CoreUserInfoClaims, String) {
    let rp = discover(server, spec).await;
    let req = Request {
        scopes,
        ..Request::default()
    };
    let done = code_flow(server, &rp, &mut Browser::new(&server.base), EMAIL, req).await;
    let info: CoreUserInfoClaims = rp
        .user_info(done.token.access_token().clone(), None)
        .unwrap()
        .request_async(&http())
        .await
        .expect("userinfo");
    (info, done.token.access_token().secret().clone())
}

#[tokio::test]
async fn oidcc_userinfo_get() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let (info, _) = userinfo_claims(&server, &spec, &["email"]).await;
    assert_eq!(info.subject().as_str(), sub);
}

#[tokio::test]
async fn oidcc_userinfo_post_header_and_post_body() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let (_, token) = userinfo_claims(&server, &spec, &["email"]).await;

    let by_header: Value = http()
        .post(server.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_header["sub"], sub.as_str());

    let by_body: Value = http()
        .post(server.url("/userinfo"))
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_body["sub"], sub.as_str());
}

#[tokio::test]
async fn oidcc_scope_profile() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let (info, _) = userinfo_claims(&server, &spec, &["profile"]).await;
    let name = info
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    assert_eq!(name.as_deref(), Some("Ana Lima"));
    assert!(info.email().is_none(), "no email without the email scope");
}

#[tokio::test]
async fn oidcc_scope_email() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let (info, _) = userinfo_claims(&server, &spec, &["email"]).await;
    assert_eq!(info.email().map(|e| e.as_str()), Some(EMAIL));
    assert_eq!(info.email_verified(), Some(true));
    assert!(info.name().is_none(), "no name without the profile scope");
}

#[tokio::test]
async fn oidcc_ensure_other_scope_order_succeeds() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=email%20openid&state=s&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = Browser::new(&server.base)
        .authorize_with_password(&url, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    let code = query_param(page.location.as_deref().unwrap(), "code").expect("code");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    assert_eq!(
        zapini_id_tests::jwt_payload(token["id_token"].as_str().unwrap())["sub"],
        sub.as_str()
    );
}

#[tokio::test]
async fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let req = Request {
        extra: &[("extra_parameter", "ignored"), ("foo", "bar")],
        ..Request::default()
    };
    let done = code_flow(&server, &rp, &mut Browser::new(&server.base), EMAIL, req).await;
    assert_eq!(done.claims.subject().as_str(), sub);
}

#[tokio::test]
async fn oidcc_ensure_post_request_succeeds() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let mut browser = Browser::new(&server.base);
    let page = browser
        .post_form(
            "/authorize",
            &[
                ("client_id", "app"),
                ("redirect_uri", &spec.redirect_uri),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "post-state"),
            ],
        )
        .await;
    let login = browser
        .follow(page.location.as_deref().expect("to the login page"))
        .await;
    let done = browser
        .submit_password(&login, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    let callback = done.location.expect("callback");
    assert!(callback.starts_with(&spec.redirect_uri));
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some("post-state")
    );
    assert!(query_param(&callback, "code").is_some());
}

/// Redeems a code, waits `pause`, then presents it again: refused, and the
/// access token issued from it no longer works (RFC 6749 4.1.2).
async fn code_reuse_after(pause: std::time::Duration) {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let done = sign_in_as(&server, &rp, EMAIL).await;
    let code = query_param(&done.callback, "code").unwrap();
    let access = done.token.access_token().secret().clone();

    let userinfo = |token: String| {
        let url = server.url("/userinfo");
        async move {
            http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    tokio::time::sleep(pause).await;
    assert_eq!(
        userinfo(access.clone()).await,
        200,
        "still valid before the reuse"
    );

    // The code flow used PKCE, so replay it with a fresh request body
    // exactly as the library would, minus the verifier it no longer has.
    let again = http()
        .post(server.url("/token"))
        .basic_auth("app", Some(zapini_id_tests::SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &spec.redirect_uri),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // RFC 6749 4.1.2: the tokens issued from the reused code are revoked.
    assert_eq!(userinfo(access).await, 401);
}

#[tokio::test]
async fn oidcc_codereuse() {
    code_reuse_after(std::time::Duration::ZERO).await;
}

/// The conformance module waits 30 seconds, past the moment the code was
/// consumed and deleted; the replay must still be recognised.
#[tokio::test]
async fn oidcc_codereuse_30seconds() {
    code_reuse_after(std::time::Duration::from_secs(30)).await;
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&state=s&redirect_uri=https://attacker.example/cb",
        server.base
    );
    let page = Browser::new(&server.base).get(&url).await;
    assert_eq!(page.status, 400);
    assert!(
        page.location.is_none(),
        "never redirect to an unregistered URI"
    );
    assert!(page.body.contains("has not registered"), "{}", page.body);
}

#[tokio::test]
async fn oidcc_response_type_missing() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let url = format!(
        "{}/authorize?client_id=app&scope=openid&state=s9&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = Browser::new(&server.base).get(&url).await;
    let location = page.location.expect("an error redirect");
    assert!(location.starts_with(&spec.redirect_uri));
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("s9"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let doc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], server.base.as_str());
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!doc[field].is_null(), "{field} is required");
    }
    let algs = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.iter().any(|a| a == "RS256"),
        "OIDC Discovery 3: RS256 must be included"
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    let locales = doc["ui_locales_supported"].as_array().unwrap();
    for lang in ["en", "pt-BR", "es"] {
        assert!(locales.iter().any(|l| l == lang), "{lang}");
    }
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ] {
        assert!(
            doc[endpoint].as_str().unwrap().starts_with(&server.base),
            "{endpoint}"
        );
    }

    let jwks: Value = http()
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key["kid"].is_string() && key["alg"].is_string(), "{key}");
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "no private key material");
    }
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&prompt=none&state=p&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = Browser::new(&server.base).get(&url).await;
    let location = page.location.expect("an error redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("p"));
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in() {
    let spec = ClientSpec::confidential("app");
    let (server, sub) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let mut browser = Browser::new(&server.base);
    code_flow(&server, &rp, &mut browser, EMAIL, Request::default()).await;

    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&prompt=none&state=p&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = browser.get(&url).await;
    let location = page.location.expect("a redirect");
    let code = query_param(&location, "code").expect("a code without any page shown");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    assert_eq!(
        zapini_id_tests::jwt_payload(token["id_token"].as_str().unwrap())["sub"],
        sub.as_str()
    );
}

#[tokio::test]
async fn oidcc_prompt_login_asks_for_the_password_again() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let mut browser = Browser::new(&server.base);
    code_flow(&server, &rp, &mut browser, EMAIL, Request::default()).await;

    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&prompt=login&state=p&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let page = browser.follow(&url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("autocomplete=\"current-password\""),
        "the sign-in page is shown again"
    );
}

#[tokio::test]
async fn oidcc_ui_locales() {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let base = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&state=s&redirect_uri={}",
        server.base, spec.redirect_uri
    );
    let pt = Browser::new(&server.base)
        .follow(&format!("{base}&ui_locales=pt-BR%20en"))
        .await;
    assert!(pt.body.contains("<html lang=\"pt-BR\">"));
    assert!(pt.body.contains("Senha"));

    // Without ui_locales, Accept-Language decides.
    let es = http()
        .get(server.url("/login"))
        .header("accept-language", "es-MX,es;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(es.contains("<html lang=\"es\">"));
    assert!(es.contains("Contraseña"));
}

/// A password sign-in through the relying party with extra request
/// parameters.
async fn flow_with(scopes: &[&str], extra: &[(&str, &str)]) -> (Server, Completed) {
    let spec = ClientSpec::confidential("app");
    let (server, _) = server_with(std::slice::from_ref(&spec));
    let rp = discover(&server, &spec).await;
    let mut browser = Browser::new(&server.base);
    let request = Request {
        scopes,
        extra,
        ..Request::default()
    };
    let done = code_flow(&server, &rp, &mut browser, EMAIL, request).await;
    (server, done)
}

/// OpenID conformance `oidcc-ensure-request-with-acr-values-succeeds`:
/// `acr_values` the server does not know are a preference, not an error
/// (OIDC Core 3.1.2.1: "Voluntary Claim"); the flow completes and the ID
/// token says the level actually reached.
#[tokio::test]
async fn oidcc_ensure_request_with_acr_values_succeeds() {
    let (_server, done) = flow_with(&["profile", "email"], &[("acr_values", "1 2")]).await;
    assert_eq!(
        done.claims
            .auth_context_ref()
            .map(|a| a.to_string())
            .as_deref(),
        Some("pwd")
    );
}

/// OpenID conformance `oidcc-claims-locales`: `claims_locales` is accepted
/// (OIDC Core 5.2) and the flow completes; UserInfo returns the claims in
/// the one language they are stored in.
#[tokio::test]
async fn oidcc_claims_locales() {
    let (server, done) = flow_with(&["profile"], &[("claims_locales", "se")]).await;
    let userinfo: Value = userinfo(&server, done.token.access_token().secret()).await;
    assert!(
        userinfo["name"].is_string(),
        "the profile claims are there: {userinfo}"
    );
}
