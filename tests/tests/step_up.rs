//! Step-up with `acr` (OIDC Core 3.1.2.1 `acr_values`, 5.5.1.1 essential
//! `acr`, a client's `min_acr`): a session below the level is asked only for
//! what is missing, and a level the user cannot reach is answered with
//! `unmet_authentication_requirements` (OIDC Core 3.1.2.6, RFC 9470 3).

use serde_json::Value;
use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::totp::{ServerClock, code_at, secret_from_page};
use zapini_id_tests::{
    Browser, ClientSpec, PASSWORD, Server, http, jwt_payload, query_param, redeem_code,
};

const EMAIL: &str = "dora@example.com";

fn start() -> (Server, ServerClock) {
    let clients = [
        ClientSpec::confidential("app"),
        ClientSpec::confidential("bank").with_extra("min_acr = \"mfa\"\n"),
        ClientSpec::confidential("vault").with_extra("min_acr = \"phr\"\n"),
    ];
    let clock = ServerClock::new();
    let server = Server::start_with_clock(&clients, "", clock.start());
    server.add_user(EMAIL, "Dora");
    (server, clock)
}

fn auth_url(server: &Server, client: &str, extra: &str) -> String {
    format!(
        "{}/authorize?client_id={client}&response_type=code&scope=openid&state=s1\
         &redirect_uri=https://{client}.example.com/callback{extra}",
        server.base
    )
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn id_token_for(server: &Server, client: &str, location: &str) -> Value {
    let code = query_param(location, "code").unwrap_or_else(|| panic!("no code: {location}"));
    let uri = format!("https://{client}.example.com/callback");
    let token = redeem_code(server, client, &code, &uri).await;
    jwt_payload(token["id_token"].as_str().expect("an ID token"))
}

/// Signs in with a password only, then turns TOTP on in the security area:
/// the session stays at `pwd`. Returns the TOTP secret.
async fn password_session_then_totp(
    server: &Server,
    clock: &ServerClock,
    browser: &mut Browser,
) -> String {
    let page = browser
        .authorize_with_password(&auth_url(server, "app", ""), EMAIL, PASSWORD)
        .await;
    let claims = id_token_for(server, "app", &page.location.expect("a redirect")).await;
    assert_eq!(claims["acr"], "pwd");

    let security = browser.get("/account/security").await;
    let csrf = hidden_input(&security.body, "csrf").expect("csrf");
    let setup = browser
        .post_form("/account/security/totp/start", &[("csrf", &csrf)])
        .await;
    let secret = secret_from_page(&setup.body);
    let on = browser
        .post_form(
            "/account/security/totp/confirm",
            &[("csrf", &csrf), ("code", &code_at(&secret, clock.now()))],
        )
        .await;
    assert!(on.body.contains("Save your recovery codes"));
    secret
}

async fn submit_code(browser: &mut Browser, page: &Page, code: &str) -> Page {
    let tx = hidden_input(&page.body, "tx").expect("tx");
    let csrf = hidden_input(&page.body, "csrf").expect("csrf");
    let next = browser
        .post_form(
            "/login/totp",
            &[("tx", &tx), ("csrf", &csrf), ("code", code)],
        )
        .await;
    match next.location.clone() {
        Some(loc) if loc.starts_with('/') => browser.follow(&loc).await,
        _ => next,
    }
}

fn assert_unmet(location: &str, server: &Server) {
    assert!(location.starts_with("https://"), "{location}");
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("unmet_authentication_requirements"),
        "{location}"
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("s1"));
    assert_eq!(
        query_param(location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    assert!(query_param(location, "code").is_none());
}

#[tokio::test]
async fn a_password_session_asked_for_mfa_is_asked_only_for_the_second_factor() {
    let (server, mut clock) = start();
    let mut browser = Browser::new(&server.base);
    let secret = password_session_then_totp(&server, &clock, &mut browser).await;

    // Below the level and no interaction allowed.
    let none = browser
        .get(&auth_url(&server, "app", "&acr_values=mfa&prompt=none"))
        .await;
    let location = none.location.expect("a redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("interaction_required")
    );

    let page = browser
        .follow(&auth_url(&server, "app", "&acr_values=mfa"))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("action=\"/login/totp\""),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("type=\"password\""),
        "the password is not asked again"
    );

    clock.advance_ten_minutes(&server);
    let done = submit_code(&mut browser, &page, &code_at(&secret, clock.now())).await;
    let claims = id_token_for(&server, "app", &done.location.expect("a redirect")).await;
    assert_eq!(claims["acr"], "mfa");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert!(claims["auth_time"].as_i64().unwrap() >= clock.now() - 5);

    // Now at mfa: the same request needs no interaction at all.
    let again = browser
        .get(&auth_url(&server, "app", "&acr_values=mfa&prompt=none"))
        .await;
    let claims = id_token_for(&server, "app", &again.location.expect("a redirect")).await;
    assert_eq!(claims["acr"], "mfa");
    // And a client whose minimum is mfa takes it too.
    let bank = browser
        .get(&auth_url(&server, "bank", "&prompt=none"))
        .await;
    assert!(query_param(&bank.location.unwrap(), "code").is_some());
}

#[tokio::test]
async fn acr_values_phr_for_a_user_without_a_passkey_is_unmet() {
    let (server, _clock) = start();

    // Not signed in: the password step works, then the client is told.
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(
            &auth_url(&server, "app", "&acr_values=phr"),
            EMAIL,
            PASSWORD,
        )
        .await;
    assert_unmet(&page.location.expect("a redirect to the client"), &server);

    // Signed in below the level: answered at once, or with prompt=none
    // as interaction_required.
    let page = browser
        .authorize_with_password(&auth_url(&server, "app", ""), EMAIL, PASSWORD)
        .await;
    assert!(page.location.unwrap().contains("code="));
    let at_once = browser
        .get(&auth_url(&server, "app", "&acr_values=phr"))
        .await;
    assert_unmet(&at_once.location.expect("a redirect"), &server);
    let none = browser
        .get(&auth_url(&server, "app", "&acr_values=phr&prompt=none"))
        .await;
    assert_eq!(
        query_param(&none.location.unwrap(), "error").as_deref(),
        Some("interaction_required")
    );

    // A list is met by its lowest level the session reaches.
    let either = browser
        .get(&auth_url(
            &server,
            "app",
            "&acr_values=phr%20pwd&prompt=none",
        ))
        .await;
    assert!(query_param(&either.location.unwrap(), "code").is_some());
}

#[tokio::test]
async fn an_essential_acr_claim_behaves_like_acr_values() {
    let (server, mut clock) = start();
    let mut browser = Browser::new(&server.base);
    let secret = password_session_then_totp(&server, &clock, &mut browser).await;

    let phr = r#"{"id_token":{"acr":{"essential":true,"values":["phr"]}}}"#;
    let page = browser
        .get(&auth_url(&server, "app", &format!("&claims={}", enc(phr))))
        .await;
    assert_unmet(&page.location.expect("a redirect"), &server);

    let unknown = r#"{"id_token":{"acr":{"essential":true,"values":["urn:gold"]}}}"#;
    let page = browser
        .get(&auth_url(
            &server,
            "app",
            &format!("&claims={}", enc(unknown)),
        ))
        .await;
    assert_unmet(&page.location.expect("a redirect"), &server);

    let mfa = r#"{"id_token":{"acr":{"essential":true,"value":"mfa"}}}"#;
    let page = browser
        .follow(&auth_url(&server, "app", &format!("&claims={}", enc(mfa))))
        .await;
    assert!(
        page.body.contains("action=\"/login/totp\""),
        "{}",
        page.body
    );
    clock.advance_ten_minutes(&server);
    let done = submit_code(&mut browser, &page, &code_at(&secret, clock.now())).await;
    let claims = id_token_for(&server, "app", &done.location.expect("a redirect")).await;
    assert_eq!(claims["acr"], "mfa");
}

#[tokio::test]
async fn a_client_minimum_of_phr_refuses_password_and_totp() {
    let (server, clock) = start();
    let mut browser = Browser::new(&server.base);
    password_session_then_totp(&server, &clock, &mut browser).await;

    // The user has TOTP, but phr needs a passkey, which they lack.
    let fresh = &mut Browser::new(&server.base);
    let page = fresh
        .authorize_with_password(&auth_url(&server, "vault", ""), EMAIL, PASSWORD)
        .await;
    assert_unmet(&page.location.expect("a redirect"), &server);

    // A TOTP code posted to a phr sign-in is not taken either.
    let signin = fresh.follow(&auth_url(&server, "vault", "")).await;
    let tx = hidden_input(&signin.body, "tx").unwrap();
    let csrf = hidden_input(&signin.body, "csrf").unwrap();
    let posted = fresh
        .post_form(
            "/login/totp",
            &[("tx", &tx), ("csrf", &csrf), ("code", "123456")],
        )
        .await;
    assert!(
        posted.location.is_none(),
        "no sign-in from the password page"
    );
}

#[tokio::test]
async fn discovery_lists_the_acr_levels() {
    let (server, _) = start();
    let doc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["acr_values_supported"],
        serde_json::json!(["pwd", "mfa", "phr"])
    );
    assert_eq!(doc["claims_parameter_supported"], true);
}
