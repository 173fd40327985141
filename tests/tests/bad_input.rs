//! Malformed, duplicated, oversized and hostile input: each gets the spec's
//! error or a plain page, never a 500, never a redirect to an unregistered
//! place, and nothing is issued.

use serde_json::Value;
use zapini_id_tests::browser::hidden_input;
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, SECRET, Server, http, query_param};

const EMAIL: &str = "bo@example.com";
const CB: &str = "https://app.example.com/callback";

fn start() -> Server {
    let server = Server::start(
        &[
            ClientSpec::confidential("app"),
            ClientSpec::confidential("spa").with_auth("none"),
        ],
        "",
    );
    server.add_user(EMAIL, "Bo");
    server
}

fn authorize_url(server: &Server, query: &str) -> String {
    format!("{}/authorize?{query}", server.base)
}

const GOOD: &str = "client_id=app&response_type=code&scope=openid&state=st&redirect_uri=https://app.example.com/callback";

#[tokio::test]
async fn redirect_uris_that_differ_at_all_get_an_error_page_not_a_redirect() {
    let server = start();
    let variants = [
        "https://APP.example.com/callback",
        "https://app.example.com/Callback",
        "https://app.example.com/callback/",
        "https://app.example.com/callback?x=1",
        "https://evil@app.example.com/callback",
        "https://app.example.com/x/%2e%2e/callback",
        "https://app.example.com/x/../callback",
        "https://app.example.com:443/callback",
        "https://app.example.com.evil.example/callback",
    ];
    let mut browser = Browser::new(&server.base);
    for uri in variants {
        let encoded: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
        let url = authorize_url(
            &server,
            &format!("client_id=app&response_type=code&scope=openid&redirect_uri={encoded}"),
        );
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{uri}");
        assert!(page.location.is_none(), "{uri} must not be redirected to");
        assert!(page.body.contains("has not registered"), "{uri}");
    }
}

#[tokio::test]
async fn unknown_or_missing_client_gets_an_error_page() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    for query in [
        "response_type=code&scope=openid&redirect_uri=https://app.example.com/callback",
        "client_id=nobody&response_type=code&scope=openid&redirect_uri=https://app.example.com/callback",
        "client_id=app&client_id=spa&response_type=code&scope=openid&redirect_uri=https://app.example.com/callback",
        "client_id=app&response_type=code&scope=openid",
    ] {
        let page = browser.get(&authorize_url(&server, query)).await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.location.is_none(), "{query}");
        assert!(
            page.body.contains("Reference:"),
            "the page carries a request id"
        );
    }
}

/// Errors that go back to the client, each with `error`, `state` and `iss`.
#[tokio::test]
async fn bad_authorization_requests_redirect_with_the_rfc_6749_error() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    let cases = [
        (format!("{GOOD}&state=again"), "invalid_request"),
        (format!("{GOOD}&scope=profile"), "invalid_request"),
        (
            GOOD.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            GOOD.replace("scope=openid", "scope=profile"),
            "invalid_scope",
        ),
        (
            format!("{GOOD}&request=eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            format!("{GOOD}&request_uri=https://app.example.com/r"),
            "request_uri_not_supported",
        ),
        (
            format!("{GOOD}&code_challenge=abc&code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            format!("{GOOD}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            "invalid_request",
        ),
        (
            format!("{GOOD}&code_challenge=short&code_challenge_method=S256"),
            "invalid_request",
        ),
        (format!("{GOOD}&prompt=none%20login"), "invalid_request"),
        (format!("{GOOD}&max_age=soon"), "invalid_request"),
        (format!("{GOOD}&response_mode=fragment"), "invalid_request"),
        (
            GOOD.replace("client_id=app", "client_id=spa")
                .replace("app.example", "spa.example"),
            "invalid_request",
        ),
    ];
    for (query, expected) in cases {
        let page = browser.get(&authorize_url(&server, &query)).await;
        let location = page
            .location
            .unwrap_or_else(|| panic!("{query}: no redirect ({})", page.status));
        assert!(
            location.contains(".example.com/callback?"),
            "{query}: {location}"
        );
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some(expected),
            "{query}"
        );
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some(server.base.as_str()),
            "{query}"
        );
        assert!(query_param(&location, "code").is_none(), "{query}");
        assert!(
            query_param(&location, "state").is_some(),
            "{query}: state is echoed"
        );
    }
}

#[tokio::test]
async fn an_oversized_state_is_refused_and_not_echoed() {
    let server = start();
    let state = "s".repeat(5000);
    let page = Browser::new(&server.base)
        .get(&authorize_url(
            &server,
            &GOOD.replace("state=st", &format!("state={state}")),
        ))
        .await;
    let location = page.location.expect("error redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(query_param(&location, "state").is_none());
    assert!(location.len() < 1000);
}

fn callback_of(client: &str) -> String {
    format!("https://{client}.example.com/callback")
}

async fn code_for(server: &Server, client: &str, extra: &str) -> String {
    let cb = callback_of(client);
    let query = format!(
        "client_id={client}&response_type=code&scope=openid&state=s&redirect_uri={cb}{extra}"
    );
    let page = Browser::new(&server.base)
        .authorize_with_password(&authorize_url(server, &query), EMAIL, PASSWORD)
        .await;
    query_param(page.location.as_deref().expect("callback"), "code").expect("code")
}

async fn token(
    server: &Server,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = http().post(server.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn pkce_verifier_missing_wrong_or_equal_to_the_challenge_issues_nothing() {
    let server = start();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    for bad in [None, Some("x".repeat(43)), Some(challenge.to_owned())] {
        let code = code_for(&server, "spa", &pkce).await;
        let cb = callback_of("spa");
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb.as_str()),
            ("client_id", "spa"),
        ];
        if let Some(v) = &bad {
            form.push(("code_verifier", v));
        }
        let (status, body) = token(&server, &form, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{bad:?}"
        );
        assert!(body.get("access_token").is_none());

        // The code is spent: even the right verifier gets nothing now.
        let mut retry = form.clone();
        retry.retain(|(k, _)| *k != "code_verifier");
        retry.push(("code_verifier", verifier));
        let (status, _) = token(&server, &retry, None).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn token_requests_with_bad_client_authentication_are_refused() {
    let server = start();
    let code = code_for(&server, "app", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
    ];

    let (status, body) = token(
        &server,
        &form,
        Some(("app", "wrong-secret-wrong-secret-wrong-secret")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Registered for client_secret_basic: the body method is refused.
    let mut post = form.to_vec();
    post.extend([("client_id", "app"), ("client_secret", SECRET)]);
    let (status, body) = token(&server, &post, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Two methods at once (RFC 6749 2.3).
    let (status, body) = token(&server, &post, Some(("app", SECRET))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // No authentication at all.
    let (status, body) = token(&server, &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // After all that the code still works for the real client: failed
    // authentication does not consume it.
    let (status, body) = token(&server, &form, Some(("app", SECRET))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn malformed_token_requests_get_invalid_request_or_unsupported_grant_type() {
    let server = start();
    let basic = Some(("app", SECRET));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("code", "x"), ("redirect_uri", CB)], "invalid_request"),
        (
            vec![
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "authorization_code"), ("redirect_uri", CB)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "a"),
                ("code", "b"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nonsense"),
                ("redirect_uri", CB),
            ],
            "invalid_grant",
        ),
    ];
    for (form, expected) in cases {
        let (status, body) = token(&server, &form, basic).await;
        assert_eq!(status, 400, "{form:?}");
        assert_eq!(body["error"], expected, "{form:?}");
    }

    let response = http()
        .post(server.url("/token"))
        .basic_auth("app", Some(SECRET))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"authorization_code"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let huge = "a".repeat(200 * 1024);
    let response = http()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", huge.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        413,
        "oversized bodies are refused, not parsed"
    );
}

#[tokio::test]
async fn ten_concurrent_redemptions_of_one_code_succeed_exactly_once() {
    let server = start();
    let code = code_for(&server, "app", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
    ];
    let attempts = (0..10).map(|_| token(&server, &form, Some(("app", SECRET))));
    let results = futures_join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(_, b)| b["error"] == "invalid_grant")
    );

    // The replays revoked the winner's access token.
    let access = ok[0].1["access_token"].as_str().unwrap();
    let status = http()
        .get(server.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(f);
    }
    let mut out = Vec::new();
    // Drive all futures together on this task.
    let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

#[tokio::test]
async fn userinfo_answers_bad_tokens_per_rfc_6750() {
    let server = start();
    let none = http().get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"zapini-id\""
    );

    let forged = http()
        .get(server.url("/userinfo"))
        .bearer_auth("eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    let both = http()
        .post(server.url("/userinfo"))
        .bearer_auth("abc")
        .form(&[("access_token", "abc")])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status().as_u16(), 400);
    assert!(
        both.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );
}

#[tokio::test]
async fn the_sign_in_form_refuses_other_browsers_and_stale_tokens() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    let page = browser.follow(&authorize_url(&server, GOOD)).await;
    let tx = zapini_id_tests::browser::hidden_input(&page.body, "tx").unwrap();
    let csrf = zapini_id_tests::browser::hidden_input(&page.body, "csrf").unwrap();

    // Another browser (no binding cookie) posting the same form.
    let mut other = Browser::new(&server.base);
    let refused = other
        .post_form(
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        refused.location.is_none(),
        "no sign-in from another browser"
    );
    assert!(refused.body.contains("This page expired"));
    assert!(!other.cookies.contains_key("zid_session"));

    // The right browser with a forged CSRF token.
    let forged = browser
        .post_form(
            "/login",
            &[
                ("tx", &tx),
                ("csrf", "forged"),
                ("username", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(forged.location.is_none());
    assert!(!browser.cookies.contains_key("zid_session"));

    // Duplicated fields.
    let dup = browser
        .post_form(
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", EMAIL),
                ("username", "x@y.z"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(dup.status, 400);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer_and_no_code() {
    let server = start();
    let mut answers = Vec::new();
    for (email, password) in [(EMAIL, "wrong password!"), ("nobody@example.com", PASSWORD)] {
        let mut browser = Browser::new(&server.base);
        let page = browser
            .authorize_with_password(&authorize_url(&server, GOOD), email, password)
            .await;
        assert_eq!(page.status, 200);
        assert!(page.location.is_none());
        assert!(!browser.cookies.contains_key("zid_session"));
        let start = page.body.find("<div id=\"form-errors\"").unwrap();
        let end = page.body[start..].find("</div>").unwrap() + start;
        answers.push(page.body[start..end].to_owned());
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].contains("Incorrect email or password."));
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in() {
    let server = start();
    let out = server.cli(&["users", "disable", "--email", EMAIL], "");
    assert!(out.status.success());
    let page = Browser::new(&server.base)
        .authorize_with_password(&authorize_url(&server, GOOD), EMAIL, PASSWORD)
        .await;
    assert!(page.location.is_none());
    assert!(page.body.contains("Incorrect email or password."));
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_the_form_works_without_javascript() {
    let server = start();
    let page = Browser::new(&server.base)
        .follow(&authorize_url(&server, GOOD))
        .await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert!(page.headers.contains_key("x-request-id"));
    let forged = http()
        .get(server.url("/healthz"))
        .header("x-request-id", "chosen-by-client")
        .send()
        .await
        .unwrap();
    assert_ne!(
        forged.headers()["x-request-id"],
        "chosen-by-client",
        "ids are made by the server"
    );
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/login\"")
    );
    assert!(page.body.contains("name=\"username\""));
    assert!(page.body.contains("autocomplete=\"username webauthn\""));
    assert!(page.body.contains("name=\"password\""));
    assert!(page.body.contains("autocomplete=\"current-password\""));
    assert!(page.body.contains("name=\"csrf\""));
    // The one script is the optional passkey/copy helper; nothing inline.
    assert_eq!(
        page.body.matches("<script").count(),
        page.body
            .matches("<script src=\"/static/app.js\" defer></script>")
            .count(),
        "no inline script"
    );
    assert!(page.body.contains("to continue to App app"));
}

#[tokio::test]
async fn unknown_paths_get_a_plain_404_page() {
    let server = start();
    let page = Browser::new(&server.base)
        .get("/nope/../../etc/passwd")
        .await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("This page does not exist."));
}

#[tokio::test]
async fn repeated_wrong_passwords_are_slowed_down_for_that_account() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    let mut page = browser.follow(&authorize_url(&server, GOOD)).await;
    let mut throttled = false;
    for _ in 0..6 {
        page = browser
            .submit_password(&page, EMAIL, "wrong password!")
            .await;
        throttled |= page.body.contains("Too many attempts");
    }
    assert!(
        throttled,
        "the account is throttled after repeated failures"
    );
    let right = browser.submit_password(&page, EMAIL, PASSWORD).await;
    assert!(
        right.location.is_none(),
        "while throttled even the right password waits"
    );

    // Another account from the same address is not held up by it.
    server.add_user("other@example.com", "Other");
    let other = Browser::new(&server.base)
        .authorize_with_password(&authorize_url(&server, GOOD), "other@example.com", PASSWORD)
        .await;
    assert!(other.location.is_some_and(|l| l.contains("code=")));
}

#[tokio::test]
async fn duplicated_or_oversized_query_parameters_on_the_pages_get_a_plain_page() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    let long = "a".repeat(100);
    for path in [
        "/login?authz=a&authz=b".to_owned(),
        "/authorize/continue?authz=a&authz=b".to_owned(),
        format!("/login?authz={long}"),
        format!("/authorize/continue?authz={long}"),
        "/login/recovery?tx=a&tx=b".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.body.contains("<html lang="), "{path}: an HTML page");
        assert!(page.location.is_none(), "{path}");
    }
}

#[tokio::test]
async fn a_return_address_with_control_characters_is_dropped_not_followed() {
    let server = start();
    let mut browser = Browser::new(&server.base);
    let signin = browser
        .get("/login?return_to=/account%0d%0aX-Injected:%201")
        .await;
    assert_eq!(signin.status, 200);
    let tx = hidden_input(&signin.body, "tx").unwrap();
    let csrf = hidden_input(&signin.body, "csrf").unwrap();
    let done = browser
        .post_form(
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/account/security"));
    assert!(done.headers.get("x-injected").is_none());
}

#[tokio::test]
async fn a_browser_gets_the_products_page_for_an_oversized_body_or_a_wrong_method() {
    let server = start();
    let huge = "a".repeat(100 * 1024);
    let response = http()
        .post(server.url("/login"))
        .header("accept", "text/html")
        .header("accept-language", "es")
        .form(&[("tx", "x"), ("username", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let page = response.text().await.unwrap();
    assert!(page.contains("La solicitud es demasiado grande."), "{page}");

    let response = http()
        .get(server.url("/login/passkey/options"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(response.headers().contains_key("allow"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("The request is malformed.")
    );
}
