//! Authorization request parameters of OIDC Core 3.1.2.1 (`id_token_hint`,
//! `login_hint`, `display`, `claims`, `max_age`, `prompt`, request objects)
//! and the form-post response mode, named after the OpenID conformance
//! suite's modules where one exists.

use serde_json::Value;
use zapini_id_tests::rp::{Request, code_flow, discover};
use zapini_id_tests::totp::ServerClock;
use zapini_id_tests::{
    Browser, ClientSpec, PASSWORD, Server, http, jwt_payload, query_param, redeem_code, userinfo,
};

const EMAIL: &str = "ana@example.com";
const OTHER: &str = "bea@example.com";

fn start() -> (Server, ClientSpec, String) {
    let spec = ClientSpec::confidential("app");
    let server = Server::start(std::slice::from_ref(&spec), "");
    let sub = server.add_user(EMAIL, "Ana Lima");
    (server, spec, sub)
}

fn auth_url(server: &Server, spec: &ClientSpec, extra: &str) -> String {
    format!(
        "{}/authorize?client_id={}&response_type=code&scope=openid&state=st&redirect_uri={}{extra}",
        server.base, spec.id, spec.redirect_uri
    )
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Signs in with a password and returns the browser and the ID token.
async fn signed_in(server: &Server, spec: &ClientSpec, email: &str) -> (Browser, String) {
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(server, spec, ""), email, PASSWORD)
        .await;
    let callback = page.location.expect("a redirect to the client");
    let code = query_param(&callback, "code").expect("a code");
    let token = redeem_code(server, &spec.id, &code, &spec.redirect_uri).await;
    let id_token = token["id_token"].as_str().expect("an ID token").to_owned();
    (browser, id_token)
}

fn error_of(location: &str) -> Option<String> {
    query_param(location, "error")
}

#[tokio::test]
async fn oidcc_id_token_hint() {
    let (server, spec, sub) = start();
    server.add_user(OTHER, "Bea");
    let (mut browser, id_token) = signed_in(&server, &spec, EMAIL).await;

    // Our own ID token for the current user: no interaction needed.
    let url = auth_url(
        &server,
        &spec,
        &format!("&prompt=none&id_token_hint={id_token}"),
    );
    let location = browser.get(&url).await.location.expect("a redirect");
    let code = query_param(&location, "code").expect("a code for the hinted user");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    assert_eq!(jwt_payload(token["id_token"].as_str().unwrap())["sub"], sub);

    // A hint naming another user than the session's: login_required with
    // prompt=none, otherwise a new sign-in prefilled with that user.
    let (_, other_token) = signed_in(&server, &spec, OTHER).await;
    let url = auth_url(
        &server,
        &spec,
        &format!("&prompt=none&id_token_hint={other_token}"),
    );
    let location = browser.get(&url).await.location.expect("a redirect");
    assert_eq!(error_of(&location).as_deref(), Some("login_required"));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    let url = auth_url(&server, &spec, &format!("&id_token_hint={other_token}"));
    let page = browser.follow(&url).await;
    assert_eq!(page.status, 200, "the sign-in page is shown");
    assert!(
        page.body.contains(&format!("value=\"{OTHER}\"")),
        "prefilled"
    );

    // A token that is not ours, or altered, is an invalid request.
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    for bad in [parts.join("."), "not-a-jwt".to_owned()] {
        let url = auth_url(&server, &spec, &format!("&id_token_hint={}", enc(&bad)));
        let location = browser.get(&url).await.location.expect("a redirect");
        assert_eq!(error_of(&location).as_deref(), Some("invalid_request"));
    }
}

#[tokio::test]
async fn an_expired_id_token_is_still_a_valid_hint_but_not_for_another_client() {
    let spec = ClientSpec::confidential("app");
    let other = ClientSpec::confidential("other");
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(&[spec.clone(), other.clone()], "", clock.start());
    server.add_user(EMAIL, "Ana");
    let (mut browser, id_token) = signed_in(&server, &spec, EMAIL).await;
    clock.advance_ten_minutes(&server);
    clock.advance_ten_minutes(&server);
    let exp = jwt_payload(&id_token)["exp"].as_i64().unwrap();
    assert!(exp < clock.now(), "the hint has expired");

    let url = auth_url(
        &server,
        &spec,
        &format!("&prompt=none&id_token_hint={id_token}"),
    );
    let location = browser.get(&url).await.location.expect("a redirect");
    assert!(query_param(&location, "code").is_some(), "{location}");

    // OIDC Core 3.1.2.1: the hint's audience must include the client.
    let url = auth_url(
        &server,
        &other,
        &format!("&prompt=none&id_token_hint={id_token}"),
    );
    let location = browser.get(&url).await.location.expect("a redirect");
    assert_eq!(error_of(&location).as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn oidcc_login_hint() {
    let (server, spec, _) = start();
    let url = auth_url(&server, &spec, &format!("&login_hint={}", enc(EMAIL)));
    let page = Browser::new(&server.base).follow(&url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("value=\"{EMAIL}\"")),
        "prefilled"
    );
}

async fn flow_with(extra: &[(&str, &str)]) -> (Server, zapini_id_tests::rp::Completed) {
    let (server, spec, _) = start();
    let rp = discover(&server, &spec).await;
    let mut browser = Browser::new(&server.base);
    let req = Request {
        scopes: &[],
        pkce: true,
        extra,
    };
    let done = code_flow(&server, &rp, &mut browser, EMAIL, req).await;
    (server, done)
}

#[tokio::test]
async fn oidcc_display_page() {
    let (_server, done) = flow_with(&[("display", "page")]).await;
    assert!(!done.claims.subject().as_str().is_empty());
}

#[tokio::test]
async fn oidcc_display_popup() {
    let (_server, done) = flow_with(&[("display", "popup")]).await;
    assert!(!done.claims.subject().as_str().is_empty());
}

#[tokio::test]
async fn an_unknown_display_value_is_an_invalid_request() {
    let (server, spec, _) = start();
    let url = auth_url(&server, &spec, "&display=hologram");
    let location = Browser::new(&server.base).get(&url).await.location.unwrap();
    assert_eq!(error_of(&location).as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn oidcc_claims_essential() {
    let claims = r#"{"userinfo":{"name":{"essential":true}},"id_token":{"email":null}}"#;
    let (server, done) = flow_with(&[("claims", claims)]).await;
    // Only `openid` was asked for, so neither claim comes from the scope.
    assert_eq!(done.raw_claims["email"], EMAIL, "email in the ID token");
    assert!(done.raw_claims.get("name").is_none());

    use openidconnect::OAuth2TokenResponse;
    let info: Value = userinfo(&server, done.token.access_token().secret()).await;
    assert_eq!(info["name"], "Ana Lima", "name from UserInfo: {info}");
    assert!(info.get("email").is_none(), "{info}");
}

#[tokio::test]
async fn a_malformed_claims_parameter_is_an_invalid_request() {
    let (server, spec, _) = start();
    for bad in ["{", "[1]", r#"{"id_token":{"acr":{"values":"mfa"}}}"#] {
        let url = auth_url(&server, &spec, &format!("&claims={}", enc(bad)));
        let location = Browser::new(&server.base).get(&url).await.location.unwrap();
        assert_eq!(
            error_of(&location).as_deref(),
            Some("invalid_request"),
            "{bad}"
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    }
}

#[tokio::test]
async fn oidcc_request_uri_unsigned() {
    let (server, spec, _) = start();
    let url = auth_url(
        &server,
        &spec,
        "&request_uri=https%3A%2F%2Fapp.example.com%2Fr",
    );
    let location = Browser::new(&server.base).get(&url).await.location.unwrap();
    assert_eq!(
        error_of(&location).as_deref(),
        Some("request_uri_not_supported")
    );
}

#[tokio::test]
async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    let (server, spec, _) = start();
    let url = auth_url(&server, &spec, "&request=eyJhbGciOiJub25lIn0.e30.");
    let location = Browser::new(&server.base).get(&url).await.location.unwrap();
    assert_eq!(
        error_of(&location).as_deref(),
        Some("request_not_supported")
    );
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
}

#[tokio::test]
async fn oidcc_max_age_1() {
    let spec = ClientSpec::confidential("app");
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(std::slice::from_ref(&spec), "", clock.start());
    server.add_user(EMAIL, "Ana");
    let (mut browser, first) = signed_in(&server, &spec, EMAIL).await;
    clock.advance_ten_minutes(&server);

    let url = auth_url(&server, &spec, "&max_age=1&prompt=none");
    let location = browser.get(&url).await.location.unwrap();
    assert_eq!(error_of(&location).as_deref(), Some("login_required"));

    let page = browser
        .authorize_with_password(&auth_url(&server, &spec, "&max_age=1"), EMAIL, PASSWORD)
        .await;
    let code = query_param(&page.location.unwrap(), "code").expect("a code after signing in");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    let auth_time = jwt_payload(token["id_token"].as_str().unwrap())["auth_time"].clone();
    let first_time = jwt_payload(&first)["auth_time"].as_i64().unwrap();
    assert!(
        auth_time.as_i64().unwrap() >= first_time + 600,
        "a new authentication"
    );
}

#[tokio::test]
async fn oidcc_max_age_10000() {
    let (server, spec, _) = start();
    let (mut browser, first) = signed_in(&server, &spec, EMAIL).await;
    let url = auth_url(&server, &spec, "&max_age=10000&prompt=none");
    let location = browser.get(&url).await.location.unwrap();
    let code = query_param(&location, "code").expect("no new sign-in needed");
    let token = redeem_code(&server, "app", &code, &spec.redirect_uri).await;
    let claims = jwt_payload(token["id_token"].as_str().unwrap());
    assert_eq!(claims["auth_time"], jwt_payload(&first)["auth_time"]);
}

#[tokio::test]
async fn prompt_consent_shows_the_consent_page_and_select_account_the_sign_in_page() {
    let (server, spec, _) = start();
    let (mut browser, _) = signed_in(&server, &spec, EMAIL).await;
    // Even for a first-party client (tests/tests/consent.rs goes further).
    let location = browser
        .get(&auth_url(&server, &spec, "&prompt=consent"))
        .await
        .location
        .unwrap();
    assert!(location.starts_with("/consent?authz="), "{location}");

    let page = browser
        .follow(&auth_url(&server, &spec, "&prompt=select_account"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("autocomplete=\"current-password\""));
}

/// Undoes the HTML escaping of attribute values.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of a form-post page, in order.
fn form_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|s| {
            let name = &s[..s.find('"').unwrap()];
            let v = &s[s.find("value=\"").unwrap() + 7..];
            (name.to_owned(), unescape(&v[..v.find('"').unwrap()]))
        })
        .collect()
}

#[tokio::test]
async fn form_post_sends_code_state_and_iss_in_a_form_with_no_inline_script() {
    let (server, spec, _) = start();
    let (mut browser, _) = signed_in(&server, &spec, EMAIL).await;
    let page = browser
        .get(&auth_url(&server, &spec, "&response_mode=form_post"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.location.is_none());
    let action = format!("action=\"{}\"", spec.redirect_uri);
    assert!(unescape(&page.body).contains(&action), "{}", page.body);
    assert!(page.body.contains("method=\"post\""));
    let fields = form_fields(&page.body);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"]);
    assert_eq!(fields[1].1, "st");
    let code = &fields[0].1;
    let token = redeem_code(&server, "app", code, &spec.redirect_uri).await;
    assert!(token["id_token"].is_string(), "{token}");

    // The page works without scripts (a button) and has no inline script.
    assert!(page.body.contains("type=\"submit\""));
    assert!(!page.body.contains("<script>"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // Errors use the same mode.
    let page = Browser::new(&server.base)
        .get(&auth_url(
            &server,
            &spec,
            "&response_mode=form_post&prompt=none",
        ))
        .await;
    let fields = form_fields(&page.body);
    assert_eq!(fields[0], ("error".into(), "login_required".into()));
}

#[tokio::test]
async fn discovery_says_which_request_parameters_are_read() {
    let (server, _, _) = start();
    let doc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["claims_parameter_supported"], true);
    assert_eq!(doc["request_parameter_supported"], false);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "form_post"])
    );
    assert_eq!(
        doc["display_values_supported"],
        serde_json::json!(["page", "popup", "touch", "wap"])
    );
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert!(doc["end_session_endpoint"].is_string());
    let claims = doc["claims_supported"].as_array().unwrap();
    for claim in ["acr", "amr", "auth_time", "sid", "email", "name"] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
}

#[tokio::test]
async fn hostile_values_of_the_new_parameters_are_invalid_requests() {
    let (server, spec, _) = start();
    let big_claims = enc(&format!(
        r#"{{"id_token":{{"email":"{}"}}}}"#,
        "a".repeat(5000)
    ));
    let big_hint = "a".repeat(9000);
    for extra in [
        format!("&claims={big_claims}"),
        format!("&id_token_hint={big_hint}"),
        "&claims=%7B%7D&claims=%7B%7D".to_owned(),
        "&acr_values=mfa&acr_values=phr".to_owned(),
        "&response_mode=fragment".to_owned(),
        "&prompt=none%20login".to_owned(),
        "&display=page&display=popup".to_owned(),
    ] {
        let url = auth_url(&server, &spec, &extra);
        let page = Browser::new(&server.base).get(&url).await;
        let location = page
            .location
            .unwrap_or_else(|| panic!("{extra}: {}", page.status));
        assert!(location.starts_with(&spec.redirect_uri), "{extra}");
        assert_eq!(
            error_of(&location).as_deref(),
            Some("invalid_request"),
            "{extra}"
        );
    }
}
