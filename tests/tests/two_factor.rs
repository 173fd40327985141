//! Two-factor authentication through the real server: enrolment with a real
//! TOTP generator (oathtool), sign-in with a code or a recovery code, the
//! single-use rules under concurrent requests, throttling, the security area
//! and the operator's commands.

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge};
use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::rp::{amr, discover, redeem};
use zapini_id_tests::totp::{ServerClock, code_at, secret_from_page};
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, Server, query_param};

const EMAIL: &str = "carla@example.com";

fn auth_url(server: &Server, spec: &ClientSpec) -> String {
    format!(
        "{}/authorize?client_id={}&response_type=code&scope=openid&state=s&redirect_uri={}",
        server.base, spec.id, spec.redirect_uri
    )
}

fn strict() -> (Server, ClientSpec, ServerClock) {
    let spec = ClientSpec::confidential("app");
    let clock = ServerClock::new();
    let server = Server::start_strict(std::slice::from_ref(&spec), "", clock.start());
    server.add_user(EMAIL, "Carla");
    (server, spec, clock)
}

async fn post_step(
    browser: &mut Browser,
    page: &Page,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let tx = hidden_input(&page.body, "tx").expect("tx");
    let csrf = hidden_input(&page.body, "csrf").expect("csrf");
    let mut all = vec![("tx", tx.as_str()), ("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let next = browser.post_form(action, &all).await;
    match next.location.clone() {
        Some(loc) if loc.starts_with('/') => browser.follow(&loc).await,
        _ => next,
    }
}

/// Signs in with a password on a server that requires 2FA and enrols;
/// returns the TOTP secret, the recovery codes and the final redirect.
async fn enrol(
    clock: &ServerClock,
    browser: &mut Browser,
    url: &str,
) -> (String, Vec<String>, Page) {
    let after_password = browser.authorize_with_password(url, EMAIL, PASSWORD).await;
    assert_eq!(after_password.status, 200);
    assert!(
        after_password.body.contains("Scan the QR Code"),
        "enrolment is required"
    );
    assert!(
        after_password.body.contains("<svg"),
        "the QR code is an SVG"
    );
    let secret = secret_from_page(&after_password.body);

    let wrong = post_step(
        browser,
        &after_password,
        "/login/enroll",
        &[("code", "000000")],
    )
    .await;
    assert!(
        wrong.body.contains("That code does not match"),
        "a wrong code does not turn 2FA on"
    );

    let code = code_at(&secret, clock.now());
    let codes_page = post_step(browser, &wrong, "/login/enroll", &[("code", &code)]).await;
    assert!(codes_page.body.contains("Save your recovery codes"));
    let codes: Vec<String> = codes_page
        .body
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let done = post_step(browser, &codes_page, "/login/finish", &[]).await;
    (secret, codes, done)
}

/// Signs in with password and then `code` on the given step (`totp` or
/// `recovery`); returns the last page.
async fn sign_in_with(browser: &mut Browser, url: &str, step: &str, code: &str) -> Page {
    let second = browser.authorize_with_password(url, EMAIL, PASSWORD).await;
    assert!(
        second.body.contains("Two-factor authentication"),
        "{}",
        second.body
    );
    let page = if step == "recovery" {
        let tx = hidden_input(&second.body, "tx").unwrap();
        browser.get(&format!("/login/recovery?tx={tx}")).await
    } else {
        second
    };
    post_step(browser, &page, &format!("/login/{step}"), &[("code", code)]).await
}

#[tokio::test]
async fn enrolment_then_password_and_code_give_mfa_tokens_to_a_real_relying_party() {
    let (server, spec, clock) = strict();
    let rp = discover(&server, &spec).await;

    let flow = || {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        (url.to_string(), state, nonce, verifier)
    };

    // First sign-in: enrolment is part of it.
    let (url, state, nonce, verifier) = flow();
    let mut browser = Browser::new(&server.base);
    let (secret, codes, done) = enrol(&clock, &mut browser, &url).await;
    let callback = done.location.expect("back to the client");
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let (token, claims) = redeem(&rp, &callback, verifier, &nonce).await;
    assert_eq!(amr(&claims), ["pwd", "otp", "mfa"]);
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "mfa");
    let access = zapini_id_tests::jwt_payload(token.access_token().secret());
    assert_eq!(access["acr"], "mfa");
    assert_eq!(access["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // Second sign-in in a new browser: password, then the next code.
    let (url, _, nonce, verifier) = flow();
    let mut browser = Browser::new(&server.base);
    let next_code = code_at(&secret, clock.now() + 30);
    let done = sign_in_with(&mut browser, &url, "totp", &next_code).await;
    let callback = done.location.expect("back to the client");
    let (_, claims) = redeem(&rp, &callback, verifier, &nonce).await;
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "mfa");

    // Third: a recovery code instead of the app.
    let (url, _, nonce, verifier) = flow();
    let mut browser = Browser::new(&server.base);
    let done = sign_in_with(&mut browser, &url, "recovery", &codes[0].to_uppercase()).await;
    let callback = done.location.expect("back to the client");
    let (_, claims) = redeem(&rp, &callback, verifier, &nonce).await;
    assert_eq!(amr(&claims), ["pwd", "otp", "mfa"]);

    // The same recovery code does not work twice.
    let (url, ..) = flow();
    let again = sign_in_with(&mut Browser::new(&server.base), &url, "recovery", &codes[0]).await;
    assert!(again.location.is_none());
    assert!(again.body.contains("not valid or was already used"));

    // The security log recorded it, and the operator can export it.
    let out = server.cli(&["audit", "export", "--email", EMAIL], "");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    for kind in [
        "two_factor_enabled",
        "sign_in_succeeded",
        "recovery_code_used",
        "sign_in_failed",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let log = server.log();
    assert!(
        !log.contains(&secret) && !log.contains(&codes[1]),
        "no secret in the log"
    );
}

#[tokio::test]
async fn a_code_is_accepted_once_even_when_two_requests_race() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let (secret, _, _) = enrol(&clock, &mut Browser::new(&server.base), &url).await;

    // Sequentially: the next code works once, then is answered like a wrong one.
    let code = code_at(&secret, clock.now() + 30);
    let first = sign_in_with(&mut Browser::new(&server.base), &url, "totp", &code).await;
    assert!(first.location.is_some_and(|l| l.contains("code=")));
    let reused = sign_in_with(&mut Browser::new(&server.base), &url, "totp", &code).await;
    assert!(reused.location.is_none());
    let wrong = sign_in_with(&mut Browser::new(&server.base), &url, "totp", "123456").await;
    let message = |p: &Page| {
        let start = p.body.find("<div id=\"form-errors\"").unwrap();
        p.body[start..start + p.body[start..].find("</div>").unwrap()].to_owned()
    };
    assert_eq!(
        message(&reused),
        message(&wrong),
        "a reused code looks exactly like a wrong one"
    );

    // In parallel: two browsers at the code step submit the same new code.
    let mut a = Browser::new(&server.base);
    let mut b = Browser::new(&server.base);
    let page_a = a.authorize_with_password(&url, EMAIL, PASSWORD).await;
    let page_b = b.authorize_with_password(&url, EMAIL, PASSWORD).await;
    let code = code_at(&secret, clock.now() - 30);
    let fields = [("code", code.as_str())];
    let (ra, rb) = tokio::join!(
        post_step(&mut a, &page_a, "/login/totp", &fields),
        post_step(&mut b, &page_b, "/login/totp", &fields)
    );
    let wins = [ra, rb]
        .iter()
        .filter(|p| p.location.as_deref().is_some_and(|l| l.contains("code=")))
        .count();
    assert!(wins <= 1, "a step is accepted at most once");
}

#[tokio::test]
async fn twenty_concurrent_uses_of_one_recovery_code_succeed_once() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let (_, codes, _) = enrol(&clock, &mut Browser::new(&server.base), &url).await;

    let mut browsers = Vec::new();
    for _ in 0..20 {
        let mut browser = Browser::new(&server.base);
        let second = browser.authorize_with_password(&url, EMAIL, PASSWORD).await;
        let tx = hidden_input(&second.body, "tx").unwrap();
        let page = browser.get(&format!("/login/recovery?tx={tx}")).await;
        browsers.push((browser, page));
    }
    let code = codes[3].clone();
    let attempts = browsers.iter_mut().map(|(browser, page)| {
        let code = code.clone();
        async move { post_step(browser, page, "/login/recovery", &[("code", &code)]).await }
    });
    let results = join_all(attempts).await;
    let wins = results
        .iter()
        .filter(|p| p.location.as_deref().is_some_and(|l| l.contains("code=")))
        .count();
    assert_eq!(wins, 1);
}

async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles = handles;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in handles.iter_mut().enumerate() {
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
    done.into_iter().flatten().collect()
}

#[tokio::test]
async fn one_step_of_skew_is_accepted_and_more_is_not() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let (secret, _, _) = enrol(&clock, &mut Browser::new(&server.base), &url).await;

    // Two tries only: more wrong codes would be throttled.
    for offset in [-90, 90] {
        let page = sign_in_with(
            &mut Browser::new(&server.base),
            &url,
            "totp",
            &code_at(&secret, clock.now() + offset),
        )
        .await;
        assert!(page.location.is_none(), "a code {offset} s away is refused");
    }
    let page = sign_in_with(
        &mut Browser::new(&server.base),
        &url,
        "totp",
        &code_at(&secret, clock.now() + 30),
    )
    .await;
    assert!(
        page.location.is_some_and(|l| l.contains("code=")),
        "one step ahead is accepted"
    );
}

#[tokio::test]
async fn wrong_codes_are_throttled_with_growing_delays() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let (secret, _, _) = enrol(&clock, &mut Browser::new(&server.base), &url).await;

    let mut browser = Browser::new(&server.base);
    let mut page = browser.authorize_with_password(&url, EMAIL, PASSWORD).await;
    let mut throttled = false;
    for _ in 0..6 {
        page = post_step(&mut browser, &page, "/login/totp", &[("code", "000000")]).await;
        throttled |= page.body.contains("Too many attempts");
    }
    assert!(throttled, "repeated wrong codes are slowed down");
    let right = post_step(
        &mut browser,
        &page,
        "/login/totp",
        &[("code", &code_at(&secret, clock.now() + 30))],
    )
    .await;
    assert!(
        right.location.is_none(),
        "while throttled even the right code waits"
    );
    assert!(right.body.contains("Too many attempts"));
}

#[tokio::test]
async fn a_half_finished_sign_in_reaches_no_token() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    enrol(&clock, &mut Browser::new(&server.base), &url).await;

    let mut browser = Browser::new(&server.base);
    let first = browser.get(&url).await;
    let login_url = first.location.clone().unwrap();
    let authz = query_param(&format!("{}{login_url}", server.base), "authz").unwrap();
    let second = browser.authorize_with_password(&url, EMAIL, PASSWORD).await;
    assert!(second.body.contains("Two-factor authentication"));
    assert!(
        !browser.cookies.contains_key("zid_session"),
        "no session before the second factor"
    );

    for path in [
        format!("/authorize/continue?authz={authz}"),
        url.clone(),
        "/account/security".to_owned(),
    ] {
        let page = browser.follow(&path).await;
        assert!(
            page.location
                .as_deref()
                .is_none_or(|l| !l.contains("code=")),
            "{path}"
        );
    }
    let tx = hidden_input(&second.body, "tx").unwrap();
    let csrf = hidden_input(&second.body, "csrf").unwrap();
    let skip = browser
        .post_form("/login/finish", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert!(
        skip.location
            .as_deref()
            .is_none_or(|l| !l.contains("code="))
    );
}

#[tokio::test]
async fn the_security_area_turns_2fa_off_only_with_a_code_and_lists_sessions_and_events() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let mut browser = Browser::new(&server.base);
    let (secret, codes, _) = enrol(&clock, &mut browser, &url).await;

    let page = browser.get("/account/security").await;
    assert_eq!(page.status, 200);
    for text in [
        "Two-factor authentication (2FA)",
        "10 of 10 recovery codes left",
        "This session",
        "Signed in",
        "Two-factor authentication turned on",
    ] {
        assert!(page.body.contains(text), "{text}");
    }
    let csrf = hidden_input(&page.body, "csrf").unwrap();

    let refused = browser
        .post_form(
            "/account/security/totp/disable",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert!(refused.body.contains("That code is not valid."));
    let forged = browser
        .post_form(
            "/account/security/totp/disable",
            &[("csrf", "forged"), ("code", &codes[5])],
        )
        .await;
    assert_eq!(forged.status, 400);

    let off = browser
        .post_form(
            "/account/security/totp/disable",
            &[
                ("csrf", &csrf),
                ("code", &code_at(&secret, clock.now() + 30)),
            ],
        )
        .await;
    assert!(
        off.body.contains("Two-factor authentication is off."),
        "{}",
        off.body
    );
    assert!(off.body.contains("Turn on two-factor authentication"));

    // Turning it on again from the account area.
    let setup = browser
        .post_form("/account/security/totp/start", &[("csrf", &csrf)])
        .await;
    let secret2 = secret_from_page(&setup.body);
    assert_ne!(secret, secret2);
    let on = browser
        .post_form(
            "/account/security/totp/confirm",
            &[("csrf", &csrf), ("code", &code_at(&secret2, clock.now()))],
        )
        .await;
    assert!(on.body.contains("Save your recovery codes"));
}

#[tokio::test]
async fn operator_reset_turns_2fa_off_and_signs_the_user_out() {
    let (server, spec, clock) = strict();
    let url = auth_url(&server, &spec);
    let mut browser = Browser::new(&server.base);
    enrol(&clock, &mut browser, &url).await;
    assert_eq!(browser.get("/account/security").await.status, 200);

    let out = server.cli(&["users", "reset-2fa", "--email", EMAIL], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = browser.get("/account/security").await;
    assert!(
        page.location.is_some_and(|l| l.starts_with("/login")),
        "the session is gone"
    );

    // The next sign-in asks for enrolment again.
    let next = Browser::new(&server.base)
        .authorize_with_password(&url, EMAIL, PASSWORD)
        .await;
    assert!(next.body.contains("Scan the QR Code"));
}

#[tokio::test]
async fn a_client_can_require_2fa_where_the_policy_is_relaxed() {
    let bank = ClientSpec::confidential("bank").with_extra("require_2fa = true\n");
    let blog = ClientSpec::confidential("blog");
    let server = Server::start(&[bank.clone(), blog.clone()], "");
    server.add_user(EMAIL, "Carla");

    let page = Browser::new(&server.base)
        .authorize_with_password(&auth_url(&server, &blog), EMAIL, PASSWORD)
        .await;
    assert!(
        page.location.is_some_and(|l| l.contains("code=")),
        "the blog takes a password"
    );

    let page = Browser::new(&server.base)
        .authorize_with_password(&auth_url(&server, &bank), EMAIL, PASSWORD)
        .await;
    assert!(page.location.is_none());
    assert!(
        page.body.contains("Scan the QR Code"),
        "the bank requires a second factor"
    );
}

#[tokio::test]
async fn sensitive_changes_need_a_recent_authentication() {
    let (server, spec, mut clock) = strict();
    let url = auth_url(&server, &spec);
    let mut browser = Browser::new(&server.base);
    let (secret, _, _) = enrol(&clock, &mut browser, &url).await;
    let page = browser.get("/account/security").await;
    let csrf = hidden_input(&page.body, "csrf").unwrap();

    // Within minutes of signing in, new recovery codes are shown at once.
    let renewed = browser
        .post_form("/account/security/recovery/renew", &[("csrf", &csrf)])
        .await;
    assert!(renewed.body.contains("Save your recovery codes"));

    // Ten minutes later the same request asks for a new sign-in first.
    clock.advance_ten_minutes(&server);
    let asked = browser
        .post_form("/account/security/recovery/renew", &[("csrf", &csrf)])
        .await;
    let to = asked.location.expect("a redirect to sign in");
    assert!(to.starts_with("/login") && to.contains("reauth=1"), "{to}");
    let password = browser
        .post_form(
            "/account/security/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "x".repeat(12).as_str()),
                ("confirm_password", "x".repeat(12).as_str()),
            ],
        )
        .await;
    assert!(
        password.location.is_some_and(|l| l.contains("reauth=1")),
        "password change waits too"
    );

    // After signing in again (password and code) it works.
    let signin = browser.follow(&to).await;
    assert!(signin.body.contains("sign in again"));
    let second = browser.submit_password(&signin, EMAIL, PASSWORD).await;
    let done = post_step(
        &mut browser,
        &second,
        "/login/totp",
        &[("code", &code_at(&secret, clock.now() + 30))],
    )
    .await;
    assert!(
        done.body.contains("Recent security events"),
        "back in the security area"
    );
    let renewed = browser
        .post_form(
            "/account/security/recovery/renew",
            &[("csrf", &hidden_input(&done.body, "csrf").unwrap())],
        )
        .await;
    assert!(renewed.body.contains("Save your recovery codes"));
}
