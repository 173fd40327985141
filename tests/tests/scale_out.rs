//! Several instances sharing PostgreSQL and Redis, as when scaled out behind
//! a load balancer: any instance serves any step, a code is redeemed once
//! whichever instances race for it, throttling is shared, and an outage of
//! either store gives clear "try again" answers and heals by itself.
//!
//! Each test starts its own PostgreSQL and Redis (see `backing`), so that it
//! can stop and restart them.

use std::time::{Duration, Instant};

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, Scope};
use zapini_id_tests::backing::Backing;
use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::rp::{Request, code_flow, discover};
use zapini_id_tests::totp::ServerClock;
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, SECRET, Server, Shared, http, query_param};

const EMAIL: &str = "ana@example.com";

/// Starts `n` instances at once against the empty database, all with the
/// issuer `issuer` (the address of the first, standing in for the load
/// balancer's).
fn cluster(backing: &Backing, n: usize, env: &[(&str, &str)]) -> (Vec<Server>, ClientSpec) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let issuer = format!("http://localhost:{}", ports[0]);
    let shared = backing.shared(&issuer);
    let spec = ClientSpec::confidential("app");
    let servers = std::thread::scope(|scope| {
        let started: Vec<_> = ports
            .iter()
            .map(|port| {
                let (shared, spec) = (shared.clone(), spec.clone());
                let port = *port;
                scope.spawn(move || start_on(&spec, port, &shared, env))
            })
            .collect();
        started
            .into_iter()
            .map(|s| s.join().expect("instance start"))
            .collect::<Vec<_>>()
    });
    (servers, spec)
}

fn start_on(spec: &ClientSpec, port: u16, shared: &Shared, env: &[(&str, &str)]) -> Server {
    Server::start_scaled(std::slice::from_ref(spec), "", shared, port, env)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A path and query of a redirect, on instance `to`.
fn on(to: &Server, location: &str, issuer: &str) -> String {
    let path = location.strip_prefix(issuer).unwrap_or(location);
    assert!(
        path.starts_with('/'),
        "redirect within the server: {location}"
    );
    to.local_url(path)
}

#[tokio::test]
async fn one_sign_in_hops_between_three_instances() {
    let Some(backing) = Backing::start() else {
        return;
    };
    let (servers, spec) = cluster(&backing, 3, &[]);
    let [a, b, c] = &servers[..] else {
        unreachable!()
    };
    let sub = a.add_user(EMAIL, "Ana Lima");

    // Concurrent first starts ended with one key set that all publish.
    let jwks = |s: &Server| {
        let url = s.local_url("/jwks");
        async move { http().get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (ja, jb, jc) = tokio::join!(jwks(a), jwks(b), jwks(c));
    assert_eq!(ja, jb);
    assert_eq!(ja, jc);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ja).unwrap()["keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let rp = discover(a, &spec).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&a.base);

    // Authorize on A; the sign-in page on B.
    let page = browser.get(url.as_str()).await;
    let login = page.location.expect("redirect to the sign-in page");
    let signin = browser.get(&on(b, &login, &a.base)).await;
    assert_eq!(signin.status, 200, "{}", signin.body);

    // Password on B, everything after it on C.
    let posted = post_password(&mut browser, b, &signin, PASSWORD).await;
    let mut page = posted;
    let callback = loop {
        let location = page
            .location
            .clone()
            .expect("a redirect after the password");
        if location.starts_with(&spec.redirect_uri) {
            break location;
        }
        page = browser.get(&on(c, &location, &a.base)).await;
    };
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.secret().as_str())
    );

    // Token on A, verified by the relying-party library.
    let code = query_param(&callback, "code").expect("code");
    let token = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("token response");
    let claims = openidconnect::TokenResponse::id_token(&token)
        .expect("ID token")
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("a valid ID token");
    assert_eq!(claims.issuer().as_str(), a.base);
    assert_eq!(claims.subject().as_str(), sub);

    // Each instance counted the steps it served, under the route pattern.
    let (status, metrics) = status_of(a.local_url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("zapini_http_requests_total{route=\"/token\",status=\"200\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zapini_http_request_duration_seconds_count{route=\"/token\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zapini_store_up{store=\"redis\"} 1\n"),
        "{metrics}"
    );
    let (_, metrics) = status_of(b.local_url("/metrics")).await;
    assert!(
        metrics.contains("zapini_http_requests_total{route=\"/login\",status=\"303\"} 1\n")
            || metrics.contains("zapini_http_requests_total{route=\"/login\",status=\"302\"} 1\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("route=\"/token\""), "{metrics}");
}

async fn post_password(browser: &mut Browser, to: &Server, signin: &Page, password: &str) -> Page {
    post_password_to(browser, &to.local_url("/login"), signin, password).await
}

async fn post_password_to(browser: &mut Browser, url: &str, signin: &Page, password: &str) -> Page {
    let tx = hidden_input(&signin.body, "tx").expect("tx");
    let csrf = hidden_input(&signin.body, "csrf").expect("csrf");
    browser
        .post_form(
            url,
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", EMAIL),
                ("password", password),
            ],
        )
        .await
}

/// The sign-in page of a fresh authorization request on `server`.
async fn signin_page(browser: &mut Browser, server: &Server, spec: &ClientSpec) -> Page {
    let url = server.local_url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&nonce=n",
        spec.id, spec.redirect_uri
    ));
    let page = browser.follow(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

async fn redeem_on(server: &Server, spec: &ClientSpec, code: &str) -> (u16, serde_json::Value) {
    let response = http()
        .post(server.local_url("/token"))
        .basic_auth(&spec.id, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &spec.redirect_uri),
        ])
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_code_redeemed_on_two_instances_at_once_succeeds_once() {
    let Some(backing) = Backing::start() else {
        return;
    };
    let (servers, spec) = cluster(&backing, 3, &[]);
    servers[0].add_user(EMAIL, "Ana Lima");

    for round in 0..3 {
        let mut browser = Browser::new(&servers[0].local);
        let signin = signin_page(&mut browser, &servers[0], &spec).await;
        let done = browser.submit_password(&signin, EMAIL, PASSWORD).await;
        let callback = done.location.expect("redirect to the client");
        let code = query_param(&callback, "code").expect("code");

        let (first, second) = tokio::join!(
            redeem_on(&servers[1], &spec, &code),
            redeem_on(&servers[2], &spec, &code)
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "round {round}: {first:?} {second:?}");
        let loser = if first.0 == 400 { &first.1 } else { &second.1 };
        assert_eq!(loser["error"], "invalid_grant", "round {round}");
    }
}

#[tokio::test]
async fn a_throttle_reached_on_one_instance_holds_on_another() {
    let Some(backing) = Backing::start() else {
        return;
    };
    // A test clock, moved ahead on both instances together, lets the
    // growing delays pass without sleeping.
    let mut clock = ServerClock::new();
    let start = clock.start().to_string();
    let env = [("ZAPINI_ID_TEST_CLOCK_START", start.as_str())];
    let (servers, spec) = cluster(&backing, 2, &env);
    let [a, b] = &servers[..] else { unreachable!() };
    a.add_user(EMAIL, "Ana Lima");

    // Failures 1 to 4 on A, then two more each after the delay has passed:
    // the seventh imposes eight seconds.
    let mut browser = Browser::new(&a.local);
    for failure in 1..=7 {
        if failure > 4 {
            clock.advance_ten_minutes(a);
            clock.advance_ten_minutes(b);
        }
        let signin = signin_page(&mut browser, a, &spec).await;
        let page = post_password(&mut browser, a, &signin, "wrong password").await;
        assert_eq!(page.status, 200, "failure {failure}");
        assert!(page.location.is_none(), "failure {failure}");
    }

    // The right password on B is refused while A's delay lasts.
    let mut browser = Browser::new(&b.local);
    let signin = signin_page(&mut browser, b, &spec).await;
    let page = post_password(&mut browser, b, &signin, PASSWORD).await;
    assert!(page.location.is_none(), "signed in despite the throttle");
    assert!(page.body.contains("Too many attempts"), "{}", page.body);
}

/// Polls `check` until it holds, for at most `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn status_of(url: String) -> (u16, String) {
    match http().get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn token_error(server: &Server, spec: &ClientSpec, form: &[(&str, &str)]) -> (u16, String) {
    let response = http()
        .post(server.local_url("/token"))
        .basic_auth(&spec.id, Some(SECRET))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn full_sign_in_works(server: &Server, spec: &ClientSpec, sub: &str) {
    let rp = discover(server, spec).await;
    let mut browser = Browser::new(&server.base);
    let done = code_flow(server, &rp, &mut browser, EMAIL, Request::default()).await;
    assert_eq!(done.claims.subject().as_str(), sub);
}

#[tokio::test]
async fn store_outages_answer_503_and_heal() {
    let Some(mut backing) = Backing::start() else {
        return;
    };
    let spec = ClientSpec::confidential("app").with_extra(
        "grant_types = [\"authorization_code\", \"refresh_token\"]\n\
         scopes = [\"openid\", \"profile\", \"email\", \"offline_access\"]\n",
    );
    let port = free_port();
    let shared = backing.shared(&format!("http://localhost:{port}"));
    let server = start_on(&spec, port, &shared, &[]);
    let sub = server.add_user(EMAIL, "Ana Lima");
    full_sign_in_works(&server, &spec, &sub).await;

    // Redis goes away in the middle of a sign-in.
    let mut browser = Browser::new(&server.local);
    let signin = signin_page(&mut browser, &server, &spec).await;
    backing.redis.stop();
    let page = post_password(&mut browser, &server, &signin, PASSWORD).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("try again shortly"), "{}", page.body);
    let (status, body) = status_of(server.local_url("/readyz")).await;
    assert_eq!((status, body.as_str()), (503, "redis unreachable"));
    let code = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", &spec.redirect_uri),
    ];
    let answer = token_error(&server, &spec, &code).await;
    assert_eq!(answer, (503, "temporarily_unavailable".to_owned()));
    assert_eq!(status_of(server.local_url("/healthz")).await.0, 200);
    let (_, metrics) = status_of(server.local_url("/metrics")).await;
    assert!(
        metrics.contains("zapini_store_up{store=\"redis\"} 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("zapini_store_errors_total 0\n"),
        "{metrics}"
    );

    // Back (empty, as after a crash): ready again and a sign-in works.
    backing.redis.resume();
    eventually(20, "ready after Redis is back", || async {
        status_of(server.local_url("/readyz")).await.0 == 200
    })
    .await;
    full_sign_in_works(&server, &spec, &sub).await;

    // PostgreSQL goes away.
    backing.postgres.stop();
    let (status, body) = status_of(server.local_url("/readyz")).await;
    assert_eq!((status, body.as_str()), (503, "database unreachable"));
    let signin = signin_page(&mut browser, &server, &spec).await;
    let page = post_password(&mut browser, &server, &signin, PASSWORD).await;
    assert_eq!(page.status, 503, "{}", page.body);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "not-a-real-token"),
    ];
    let answer = token_error(&server, &spec, &refresh).await;
    assert_eq!(answer, (503, "temporarily_unavailable".to_owned()));

    // Back: the user is still there and signs in.
    backing.postgres.resume();
    eventually(30, "ready after PostgreSQL is back", || async {
        status_of(server.local_url("/readyz")).await.0 == 200
    })
    .await;
    full_sign_in_works(&server, &spec, &sub).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// The seconds of a "Wait N seconds" message on a page, if any.
fn wait_seconds(body: &str) -> Option<i64> {
    let rest = &body[body.find("Wait ")? + 5..];
    rest[..rest.find(' ')?].parse().ok()
}

#[tokio::test]
async fn parallel_failures_on_two_instances_are_all_counted() {
    let Some(backing) = Backing::start() else {
        return;
    };
    let (servers, spec) = cluster(&backing, 2, &[]);
    let [a, b] = &servers[..] else { unreachable!() };
    a.add_user(EMAIL, "Ana Lima");

    // Eight sign-in forms, half from each instance, posted all at once.
    let mut posts = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { a } else { b };
        let mut browser = Browser::new(&server.local);
        let signin = signin_page(&mut browser, server, &spec).await;
        let url = server.local_url("/login");
        posts.push(tokio::spawn(async move {
            post_password_to(&mut browser, &url, &signin, "wrong password").await
        }));
    }
    let mut pages = Vec::new();
    for post in posts {
        pages.push(post.await.expect("post task"));
    }
    let burst_ended = std::time::Instant::now();
    let counted = pages
        .iter()
        .filter(|p| p.body.contains("Incorrect email or password"))
        .count() as u32;
    let refused = pages
        .iter()
        .filter(|p| wait_seconds(&p.body).is_some())
        .count();
    assert_eq!(counted as usize + refused, 8, "every attempt answered");
    // Three are free and the fourth imposes the first wait, so no attempt
    // can be refused before four have been counted. How many more are
    // counted depends on how many were checked before the fourth failure
    // was stored, which is up to the machine's scheduling.
    assert!(counted >= 4, "only {counted} counted, {refused} refused");

    // Every counted failure doubled the wait: 2^(counted - 4) seconds from
    // the last failure. A lost update would halve it at least.
    let full = 1i64 << (counted - 4);
    let mut browser = Browser::new(&b.local);
    let signin = signin_page(&mut browser, b, &spec).await;
    let page = post_password(&mut browser, b, &signin, PASSWORD).await;
    let elapsed = burst_ended.elapsed().as_secs() as i64;
    match wait_seconds(&page.body) {
        Some(wait) => assert!(
            wait <= full && wait >= full - elapsed - 1,
            "wait {wait} s after {counted} failures and {elapsed} s, expected about {full} s"
        ),
        // Only a wait that has run out by now may let the password through.
        None => assert!(
            full - elapsed <= 1,
            "no wait {elapsed} s after {counted} failures ({full} s due): {:?}",
            page.location
        ),
    }
}
