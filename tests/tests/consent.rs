//! The consent page (OIDC Core 3.1.2.4): third-party clients ask, the
//! answer is remembered per user and client, `prompt=consent` and
//! `prompt=none` behave as 3.1.2.1 and 3.1.2.6 say, and the security area
//! takes consent back. Hostile input gets a page, never a redirect.

use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, SECRET, Server, http, query_param};

const EMAIL: &str = "ana@example.com";

const OFFLINE: &str = "grant_types = [\"authorization_code\", \"refresh_token\"]\n\
    scopes = [\"openid\", \"profile\", \"email\", \"offline_access\"]\n";

/// Someone else's app, allowed refresh tokens.
fn partner() -> ClientSpec {
    ClientSpec::confidential("partner")
        .third_party()
        .with_extra(OFFLINE)
}

fn start() -> Server {
    let server = Server::start(&[ClientSpec::confidential("app"), partner()], "");
    server.add_user(EMAIL, "Ana Lima");
    server
}

fn callback(client: &str) -> String {
    format!("https://{client}.example.com/callback")
}

/// An authorization URL for `client` asking for `scope` (space-separated).
fn auth_url(server: &Server, client: &str, scope: &str, extra: &str) -> String {
    let scope: String = url::form_urlencoded::byte_serialize(scope.as_bytes()).collect();
    format!(
        "{}/authorize?client_id={client}&response_type=code&scope={scope}&state=st\
         &redirect_uri={}{extra}",
        server.base,
        callback(client)
    )
}

fn is_consent_page(page: &Page) -> bool {
    page.status == 200 && page.body.contains("action=\"/consent\"")
}

/// Answers a consent page with `decision` and follows to the client.
async fn answer(browser: &mut Browser, page: &Page, decision: &str) -> Page {
    assert!(is_consent_page(page), "{} {}", page.status, page.body);
    let authz = hidden_input(&page.body, "authz").expect("authz field");
    let csrf = hidden_input(&page.body, "csrf").expect("csrf field");
    let fields = [("authz", &*authz), ("csrf", &csrf), ("decision", decision)];
    let posted = browser.post_form("/consent", &fields).await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    browser.follow(posted.location.as_deref().unwrap()).await
}

/// Signs in for `url` and returns what comes after the password.
async fn sign_in(server: &Server, url: &str) -> (Browser, Page) {
    let mut browser = Browser::new(&server.base);
    let page = browser.authorize_with_password(url, EMAIL, PASSWORD).await;
    (browser, page)
}

fn code_of(page: &Page, client: &str) -> String {
    let location = page.location.as_deref().expect("a redirect to the client");
    assert!(
        location.starts_with(&format!("{}?", callback(client))),
        "{location}"
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("st"));
    query_param(location, "code").expect("a code")
}

async fn redeem(server: &Server, client: &str, code: &str) -> serde_json::Value {
    zapini_id_tests::redeem_code(server, client, code, &callback(client)).await
}

#[tokio::test]
async fn a_third_party_client_asks_for_consent_and_allow_gives_a_code() {
    let server = start();
    let url = auth_url(&server, "partner", "openid email", "");
    let (mut browser, page) = sign_in(&server, &url).await;

    assert!(is_consent_page(&page), "{}", page.body);
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(
        page.body
            .contains("<h1>App partner wants to access your account</h1>")
    );
    assert!(
        page.body
            .contains("See your email address and whether it is verified")
    );
    assert!(!page.body.contains("See your name"), "only what was asked");
    assert!(
        !page.body.contains("class=\"new\""),
        "nothing to compare with yet"
    );

    let done = answer(&mut browser, &page, "allow").await;
    let code = code_of(&done, "partner");
    let location = done.location.unwrap();
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    let token = redeem(&server, "partner", &code).await;
    assert!(token["id_token"].is_string(), "{token}");
    assert_eq!(token["scope"], "openid email");
}

#[tokio::test]
async fn deny_answers_access_denied_with_state_and_iss_to_the_registered_uri() {
    let server = start();
    let url = auth_url(&server, "partner", "openid", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    let done = answer(&mut browser, &page, "deny").await;

    let location = done.location.expect("a redirect to the client");
    assert!(
        location.starts_with(&format!("{}?", callback("partner"))),
        "{location}"
    );
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    assert!(query_param(&location, "code").is_none());

    // Nothing was remembered: the next request asks again.
    let again = browser.follow(&url).await;
    assert!(is_consent_page(&again));
}

#[tokio::test]
async fn deny_with_form_post_posts_access_denied() {
    let server = start();
    let url = auth_url(&server, "partner", "openid", "&response_mode=form_post");
    let (mut browser, page) = sign_in(&server, &url).await;
    let done = answer(&mut browser, &page, "deny").await;

    assert_eq!(done.status, 200);
    let action = format!("action=\"{}\"", callback("partner").replace('/', "&#x2f;"));
    assert!(done.body.contains(&action), "{}", done.body);
    assert!(done.body.contains("value=\"access_denied\""));
    assert!(done.body.contains("name=\"state\" value=\"st\""));
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_for_the_same_or_fewer_scopes() {
    let server = start();
    let url = auth_url(&server, "partner", "openid email profile", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    code_of(&answer(&mut browser, &page, "allow").await, "partner");

    let fewer = auth_url(&server, "partner", "openid email", "");
    code_of(&browser.get(&fewer).await, "partner");

    // A new sign-in in another browser needs no page either.
    let (_, page) = sign_in(&server, &url).await;
    code_of(&page, "partner");
}

#[tokio::test]
async fn a_new_scope_asks_again_and_is_marked_new() {
    let server = start();
    let url = auth_url(&server, "partner", "openid email", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    code_of(&answer(&mut browser, &page, "allow").await, "partner");

    let wider = auth_url(&server, "partner", "openid email profile", "");
    let page = browser.follow(&wider).await;
    assert!(is_consent_page(&page), "{}", page.body);
    assert!(page.body.contains("asks for more than you allowed before"));
    let new: Vec<_> = page.body.match_indices("<li class=\"new\">").collect();
    assert_eq!(new.len(), 1, "only profile is new");
    let marked = &page.body[new[0].0..];
    assert!(marked[..marked.find("</li>").unwrap()].contains("See your name"));

    let done = answer(&mut browser, &page, "allow").await;
    code_of(&done, "partner");
    code_of(&browser.get(&wider).await, "partner");
}

#[tokio::test]
async fn prompt_none_without_consent_answers_consent_required() {
    let server = start();
    // Signed in through the first-party app, never asked by the partner.
    let (mut browser, page) = sign_in(&server, &auth_url(&server, "app", "openid", "")).await;
    code_of(&page, "app");

    let url = auth_url(&server, "partner", "openid", "&prompt=none");
    let location = browser.get(&url).await.location.expect("a redirect");
    assert!(
        location.starts_with(&format!("{}?", callback("partner"))),
        "{location}"
    );
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("consent_required")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );

    // Once consent is given, prompt=none gets a code.
    let page = browser
        .follow(&auth_url(&server, "partner", "openid", ""))
        .await;
    code_of(&answer(&mut browser, &page, "allow").await, "partner");
    let page = browser.get(&url).await;
    code_of(&page, "partner");
}

#[tokio::test]
async fn a_first_party_client_needs_no_consent() {
    let server = start();
    let (mut browser, page) = sign_in(&server, &auth_url(&server, "app", "openid email", "")).await;
    code_of(&page, "app");
    let security = browser.get("/account/security").await;
    assert!(security.body.contains("You have not allowed any app"));
}

#[tokio::test]
async fn oidcc_prompt_consent() {
    let server = start();
    // A first-party client that asks with prompt=consent gets the page.
    let url = auth_url(&server, "app", "openid", "&prompt=consent");
    let (mut browser, page) = sign_in(&server, &url).await;
    assert!(is_consent_page(&page), "{}", page.body);
    code_of(&answer(&mut browser, &page, "allow").await, "app");

    // A remembered consent is asked again when the request says so, from
    // a live session too.
    let plain = auth_url(&server, "partner", "openid", "");
    let page = browser.follow(&plain).await;
    code_of(&answer(&mut browser, &page, "allow").await, "partner");
    let asked = auth_url(&server, "partner", "openid", "&prompt=consent");
    let page = browser.follow(&asked).await;
    assert!(is_consent_page(&page));
    code_of(&answer(&mut browser, &page, "allow").await, "partner");
}

#[tokio::test]
async fn revoking_a_connected_app_asks_again_and_ends_its_refresh_tokens() {
    let server = start();
    let url = auth_url(&server, "partner", "openid offline_access", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    let code = code_of(&answer(&mut browser, &page, "allow").await, "partner");
    let token = redeem(&server, "partner", &code).await;
    let refresh = token["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();

    let security = browser.get("/account/security").await;
    assert!(security.body.contains("Connected apps"));
    assert!(security.body.contains("<strong>App partner</strong>"));
    let csrf = hidden_input(&security.body, "csrf").unwrap();

    // Without the CSRF token nothing happens.
    let refused = browser
        .post_form("/account/security/apps/revoke", &[("client", "partner")])
        .await;
    assert_eq!(refused.status, 400);

    let revoked = browser
        .post_form(
            "/account/security/apps/revoke",
            &[("csrf", &csrf), ("client", "partner")],
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.body.contains("Access was revoked"));
    assert!(
        revoked.body.contains("App access revoked"),
        "in the security log"
    );
    assert!(revoked.body.contains("You have not allowed any app"));

    let refreshed = http()
        .post(server.url("/token"))
        .basic_auth("partner", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400);
    let body: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    assert!(is_consent_page(&browser.follow(&url).await));

    let again = browser
        .post_form(
            "/account/security/apps/revoke",
            &[("csrf", &csrf), ("client", "partner")],
        )
        .await;
    assert!(again.body.contains("That app no longer had access."));
}

#[tokio::test]
async fn an_answer_without_its_csrf_token_is_refused() {
    let server = start();
    let url = auth_url(&server, "partner", "openid", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    let authz = hidden_input(&page.body, "authz").unwrap();
    let csrf = hidden_input(&page.body, "csrf").unwrap();

    // A second request's page has its own token.
    let other = browser.follow(&url).await;
    let other_authz = hidden_input(&other.body, "authz").unwrap();
    assert_ne!(authz, other_authz);

    for fields in [
        vec![("authz", authz.as_str()), ("decision", "allow")],
        vec![("authz", &authz), ("csrf", "x"), ("decision", "allow")],
        vec![
            ("authz", &other_authz),
            ("csrf", &csrf),
            ("decision", "allow"),
        ],
    ] {
        let refused = browser.post_form("/consent", &fields).await;
        assert_eq!(refused.status, 400, "{fields:?}");
        assert!(refused.location.is_none());
    }
    // A browser without the session cannot answer either.
    let mut stranger = Browser::new(&server.base);
    let fields = [("authz", &*authz), ("csrf", &csrf), ("decision", "allow")];
    let elsewhere = stranger.post_form("/consent", &fields).await;
    assert_eq!(elsewhere.location, Some(format!("/login?authz={authz}")));

    // The page still works with its own token.
    code_of(&answer(&mut browser, &page, "allow").await, "partner");
}

#[tokio::test]
async fn hostile_consent_input_gets_a_page_and_never_a_redirect() {
    let server = start();
    let url = auth_url(&server, "partner", "openid", "");
    let (mut browser, page) = sign_in(&server, &url).await;
    let authz = hidden_input(&page.body, "authz").unwrap();
    let csrf = hidden_input(&page.body, "csrf").unwrap();
    let long = "a".repeat(65);

    for query in [
        String::new(),
        "?authz=unknown".to_owned(),
        format!("?authz={long}"),
        format!("?authz={authz}&authz={authz}"),
        "?authz=%00%ff".to_owned(),
    ] {
        let got = browser.get(&format!("/consent{query}")).await;
        assert_eq!(got.status, 400, "{query}");
        assert!(got.location.is_none(), "{query}");
    }
    for fields in [
        vec![
            ("authz", authz.as_str()),
            ("csrf", &csrf),
            ("decision", "maybe"),
        ],
        vec![("authz", &authz), ("csrf", &csrf)],
        vec![
            ("authz", &authz),
            ("csrf", &csrf),
            ("decision", "allow"),
            ("decision", "deny"),
        ],
        vec![("authz", "unknown"), ("csrf", &csrf), ("decision", "allow")],
        vec![
            ("authz", &authz),
            ("authz", &authz),
            ("csrf", &csrf),
            ("decision", "allow"),
        ],
    ] {
        let got = browser.post_form("/consent", &fields).await;
        assert_eq!(got.status, 400, "{fields:?}");
        assert!(got.location.is_none(), "{fields:?}");
    }

    // Fields the page does not have change nothing: the scope allowed is
    // the request's.
    let fields = [
        ("authz", &*authz),
        ("csrf", &csrf),
        ("decision", "allow"),
        ("scope", "openid offline_access"),
        ("redirect_uri", "https://evil.example/"),
    ];
    let posted = browser.post_form("/consent", &fields).await;
    let done = browser.follow(posted.location.as_deref().unwrap()).await;
    let token = redeem(&server, "partner", &code_of(&done, "partner")).await;
    assert_eq!(token["scope"], "openid");
    assert!(token["refresh_token"].is_null());
    let wider = auth_url(&server, "partner", "openid offline_access", "");
    assert!(is_consent_page(&browser.follow(&wider).await));

    // The answer cannot be replayed once the request is done.
    let replay = browser.post_form("/consent", &fields).await;
    assert_eq!(replay.status, 400);
    assert!(!server.log().contains("panicked"));
}
