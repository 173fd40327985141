//! OpenID Connect RP-Initiated Logout 1.0 at `/session/end`: a valid
//! `id_token_hint` for the session's user signs out at once and returns to a
//! registered `post_logout_redirect_uri` with `state`; anything else asks
//! the user first, and an unregistered URI is never redirected to.

use serde_json::Value;
use zapini_id_tests::browser::hidden_input;
use zapini_id_tests::totp::ServerClock;
use zapini_id_tests::{
    Browser, ClientSpec, PASSWORD, SECRET, Server, http, jwt_payload, query_param, redeem_code,
};

const EMAIL: &str = "eva@example.com";
const BYE: &str = "https://app.example.com/bye";

fn app() -> ClientSpec {
    ClientSpec::confidential("app").with_extra(format!(
        "post_logout_redirect_uris = [\"{BYE}\"]\n\
         grant_types = [\"authorization_code\", \"refresh_token\"]\n\
         scopes = [\"openid\", \"email\", \"offline_access\"]\n"
    ))
}

fn start() -> (Server, ServerClock) {
    let clock = ServerClock::new();
    let server = Server::start_with_clock(
        &[app(), ClientSpec::confidential("other")],
        "",
        clock.start(),
    );
    server.add_user(EMAIL, "Eva");
    (server, clock)
}

fn auth_url(server: &Server, client: &str, extra: &str) -> String {
    format!(
        "{}/authorize?client_id={client}&response_type=code&scope=openid%20offline_access\
         &state=s&redirect_uri=https://{client}.example.com/callback{extra}",
        server.base
    )
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Signs in at `client`; returns the browser and the token response.
async fn signed_in(server: &Server, client: &str) -> (Browser, Value) {
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(server, client, ""), EMAIL, PASSWORD)
        .await;
    let code = query_param(&page.location.expect("a redirect"), "code").expect("a code");
    let uri = format!("https://{client}.example.com/callback");
    let token = redeem_code(server, client, &code, &uri).await;
    (browser, token)
}

/// Whether the browser's SSO session still signs in without interaction.
async fn session_alive(server: &Server, browser: &mut Browser) -> bool {
    let page = browser.get(&auth_url(server, "app", "&prompt=none")).await;
    let location = page.location.expect("a redirect");
    match query_param(&location, "error").as_deref() {
        None => true,
        Some("login_required") => false,
        Some(other) => panic!("unexpected error {other}"),
    }
}

async fn refresh_status(server: &Server, token: &Value) -> u16 {
    let refresh = token["refresh_token"].as_str().expect("a refresh token");
    http()
        .post(server.url("/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn end_url(server: &Server, query: &str) -> String {
    format!("{}/session/end?{query}", server.base)
}

#[tokio::test]
async fn oidcc_rp_initiated_logout() {
    let (server, _) = start();
    let (mut browser, token) = signed_in(&server, "app").await;
    let id_token = token["id_token"].as_str().unwrap();
    assert!(
        jwt_payload(id_token)["sid"].is_string(),
        "sid in the ID token"
    );
    let cookies = browser.cookies.clone();

    let query = format!(
        "id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye-1",
        enc(BYE)
    );
    let page = browser.get(&end_url(&server, &query)).await;
    let location = page.location.expect("a redirect to the client");
    assert_eq!(location, format!("{BYE}?state=bye-1"));

    // The session is gone on the server, not only its cookie.
    browser.cookies = cookies;
    assert!(!session_alive(&server, &mut browser).await);
    assert_eq!(
        refresh_status(&server, &token).await,
        400,
        "refresh revoked"
    );
}

#[tokio::test]
async fn an_unregistered_post_logout_uri_gets_a_page_and_no_redirect() {
    let (server, _) = start();
    let (mut browser, token) = signed_in(&server, "app").await;
    let id_token = token["id_token"].as_str().unwrap();
    for uri in [
        "https://evil.example.com/",
        "https://app.example.com/bye/",
        "https://app.example.com/callback",
    ] {
        let query = format!(
            "id_token_hint={id_token}&post_logout_redirect_uri={}&state=x",
            enc(uri)
        );
        let page = browser.get(&end_url(&server, &query)).await;
        assert_eq!(page.status, 400, "{uri}");
        assert!(page.location.is_none(), "{uri}");
        assert!(page.body.contains("has not registered for sign-out"));
    }
    // A URI without a client to check it against is refused too.
    let page = browser
        .get(&end_url(
            &server,
            &format!("post_logout_redirect_uri={}", enc(BYE)),
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(
        session_alive(&server, &mut browser).await,
        "still signed in"
    );
}

#[tokio::test]
async fn without_a_hint_the_user_confirms_with_a_form() {
    let (server, _) = start();
    let (mut browser, token) = signed_in(&server, "app").await;
    let query = format!(
        "client_id=app&post_logout_redirect_uri={}&state=c1",
        enc(BYE)
    );
    let page = browser.get(&end_url(&server, &query)).await;
    assert_eq!(page.status, 200);
    assert!(page.location.is_none());
    assert!(page.body.contains("action=\"/session/end/confirm\""));
    assert!(
        session_alive(&server, &mut browser).await,
        "a GET alone signs no one out"
    );

    let csrf = hidden_input(&page.body, "csrf").expect("csrf");
    let fields = [
        ("client_id", "app"),
        ("post_logout_redirect_uri", BYE),
        ("state", "c1"),
    ];
    let mut forged = vec![("csrf", "wrong")];
    forged.extend_from_slice(&fields);
    let refused = browser.post_form("/session/end/confirm", &forged).await;
    assert_eq!(refused.status, 400);
    assert!(session_alive(&server, &mut browser).await);

    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(&fields);
    let done = browser.post_form("/session/end/confirm", &form).await;
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{BYE}?state=c1").as_str())
    );
    assert!(!session_alive(&server, &mut browser).await);
    assert_eq!(refresh_status(&server, &token).await, 400);
}

#[tokio::test]
async fn an_expired_hint_still_signs_out_but_one_for_another_client_does_not() {
    let (server, mut clock) = start();
    let (mut browser, token) = signed_in(&server, "app").await;
    let id_token = token["id_token"].as_str().unwrap().to_owned();

    // A hint issued to "app" presented with client_id=other is refused.
    let query = format!("id_token_hint={id_token}&client_id=other");
    let page = browser.get(&end_url(&server, &query)).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    // A hint that is not ours is refused.
    let page = browser
        .get(&end_url(&server, "id_token_hint=eyJhbGciOiJub25lIn0.e30."))
        .await;
    assert_eq!(page.status, 400);
    assert!(session_alive(&server, &mut browser).await);

    clock.advance_ten_minutes(&server);
    clock.advance_ten_minutes(&server);
    let page = browser
        .get(&end_url(&server, &format!("id_token_hint={id_token}")))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
    assert!(!session_alive(&server, &mut browser).await);
}

#[tokio::test]
async fn a_hint_for_another_user_asks_for_confirmation() {
    let (server, _) = start();
    server.add_user("fia@example.com", "Fia");
    let (_, token) = signed_in(&server, "app").await;
    let id_token = token["id_token"].as_str().unwrap();

    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(&server, "app", ""), "fia@example.com", PASSWORD)
        .await;
    assert!(page.location.unwrap().contains("code="));
    let page = browser
        .get(&end_url(&server, &format!("id_token_hint={id_token}")))
        .await;
    assert!(page.body.contains("action=\"/session/end/confirm\""));
    assert!(session_alive(&server, &mut browser).await);
}

#[tokio::test]
async fn malformed_logout_requests_get_a_plain_page() {
    let (server, _) = start();
    let mut browser = Browser::new(&server.base);
    for query in [
        "state=a&state=b",
        "client_id=nobody",
        "id_token_hint=x&id_token_hint=y",
    ] {
        let page = browser.get(&end_url(&server, query)).await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.location.is_none());
    }
    let long = "a".repeat(3000);
    let page = browser
        .get(&end_url(&server, &format!("state={long}")))
        .await;
    assert_eq!(page.status, 400);
    let page = browser.post_form("/session/end", &[("state", "s")]).await;
    assert_eq!(page.status, 200, "POST with a form works when signed out");
    let raw = http()
        .post(server.url("/session/end"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 415);
}

#[tokio::test]
async fn discovery_names_the_end_session_endpoint() {
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
        doc["end_session_endpoint"],
        format!("{}/session/end", server.base)
    );
}
