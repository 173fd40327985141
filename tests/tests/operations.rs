//! What an operator relies on behind a reverse proxy: the client's address
//! comes from `X-Forwarded-For` only when the peer is a trusted proxy, and
//! `/metrics` counts sign-in checks and tokens in the Prometheus format.

use std::collections::BTreeMap;

use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::totp::{ServerClock, code_at, secret_from_page};
use zapini_id_tests::{Browser, ClientSpec, PASSWORD, Server, http, query_param, redeem_code};

const EMAIL: &str = "dora@example.com";

fn auth_url(server: &Server, spec: &ClientSpec) -> String {
    format!(
        "{}/authorize?client_id={}&response_type=code&scope=openid&state=s&redirect_uri={}",
        server.base, spec.id, spec.redirect_uri
    )
}

/// A wrong password for `username`, sent as if through a proxy that saw
/// `forwarded` (when given); returns the page.
async fn wrong_password(
    server: &Server,
    spec: &ClientSpec,
    username: &str,
    forwarded: Option<&str>,
) -> Page {
    let mut browser = Browser::new(&server.base);
    if let Some(address) = forwarded {
        browser.set_header("x-forwarded-for", address);
    }
    let signin = browser.follow(&auth_url(server, spec)).await;
    assert_eq!(signin.status, 200, "{}", signin.body);
    browser
        .submit_password(&signin, username, "not the password")
        .await
}

fn throttled(page: &Page) -> bool {
    page.body.contains("Too many attempts")
}

/// Failures from one address, each for a different account so that no
/// account's own limit is reached: twenty are free, then the waits double.
/// The server's clock moves past each wait, so the last failure imposes
/// eight seconds, long enough to check without racing the clock.
async fn exhaust_address(
    server: &Server,
    spec: &ClientSpec,
    clock: &mut ServerClock,
    forwarded: &[&str],
) {
    for i in 0..24 {
        if i > 20 {
            clock.advance_ten_minutes(server);
        }
        let address = forwarded.get(i % forwarded.len().max(1)).copied();
        let page = wrong_password(server, spec, &format!("u{i}@example.com"), address).await;
        assert!(!throttled(&page), "failure {i} throttled");
    }
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_escape_the_address_throttle() {
    let spec = ClientSpec::confidential("app");
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(std::slice::from_ref(&spec), "", clock.start());
    let spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    exhaust_address(&server, &spec, &mut clock, &spoofed).await;

    let page = wrong_password(&server, &spec, "next@example.com", Some("198.51.100.99")).await;
    assert!(
        throttled(&page),
        "a new X-Forwarded-For escaped the throttle"
    );

    let out = server.cli(&["audit", "export"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("198.51.100."), "{text}");
    assert!(text.contains("\"127.0.0.1\""), "{text}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_is_throttled_alone() {
    let spec = ClientSpec::confidential("app");
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(
        std::slice::from_ref(&spec),
        "trusted_proxies = [\"127.0.0.1/32\"]",
        clock.start(),
    );
    let sub = server.add_user(EMAIL, "Dora");
    // The client wrote a false address at the left; the proxy appended the
    // one it saw at the right, which is the one that counts.
    let chain = "10.6.6.6, 203.0.113.7";
    exhaust_address(&server, &spec, &mut clock, &[chain]).await;
    let page = wrong_password(&server, &spec, "next@example.com", Some(chain)).await;
    assert!(throttled(&page), "the forwarded address was not throttled");

    // Another client behind the same proxy is not held back, and neither
    // is the proxy's own address.
    let other = wrong_password(&server, &spec, "next@example.com", Some("203.0.113.8")).await;
    assert!(!throttled(&other), "{}", other.body);
    let direct = wrong_password(&server, &spec, "next2@example.com", None).await;
    assert!(!throttled(&direct), "{}", direct.body);

    // The security log shows the forwarded address.
    let mut browser = Browser::new(&server.base);
    browser.set_header("x-forwarded-for", "203.0.113.8");
    let signin = browser.follow(&auth_url(&server, &spec)).await;
    let done = browser.submit_password(&signin, EMAIL, PASSWORD).await;
    assert!(done.location.is_some(), "{}", done.body);
    let out = server.cli(&["audit", "export", "--email", EMAIL], "");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let signed_in = events
        .iter()
        .find(|e| e["kind"] == "sign_in_succeeded")
        .expect("a sign-in event");
    assert_eq!(signed_in["ip"], "203.0.113.8", "{signed_in}");
    assert_eq!(signed_in["user_id"], sub.as_str(), "{signed_in}");
    let all = String::from_utf8_lossy(&server.cli(&["audit", "export"], "").stdout).into_owned();
    assert!(all.contains("\"203.0.113.7\""), "{all}");
    assert!(!all.contains("10.6.6.6"), "{all}");
}

async fn post_step(browser: &mut Browser, page: &Page, action: &str, code: &str) -> Page {
    let tx = hidden_input(&page.body, "tx").expect("tx");
    let csrf = hidden_input(&page.body, "csrf").expect("csrf");
    let fields = [("tx", tx.as_str()), ("csrf", csrf.as_str()), ("code", code)];
    let next = browser.post_form(action, &fields).await;
    match next.location.clone() {
        Some(loc) if loc.starts_with('/') => browser.follow(&loc).await,
        _ => next,
    }
}

/// First sign-in on a server that requires 2FA: password, then TOTP
/// enrolment. Returns the TOTP secret.
async fn enrol(server: &Server, spec: &ClientSpec, clock: &ServerClock) -> String {
    let mut browser = Browser::new(&server.base);
    let url = auth_url(server, spec);
    let page = browser.authorize_with_password(&url, EMAIL, PASSWORD).await;
    let secret = secret_from_page(&page.body);
    let code = code_at(&secret, clock.now());
    let codes = post_step(&mut browser, &page, "/login/enroll", &code).await;
    assert!(codes.body.contains("Save your recovery codes"));
    let tx = hidden_input(&codes.body, "tx").expect("tx");
    let csrf = hidden_input(&codes.body, "csrf").expect("csrf");
    let done = browser
        .post_form("/login/finish", &[("tx", &tx), ("csrf", &csrf)])
        .await;
    assert!(done.location.is_some(), "{}", done.body);
    secret
}

#[tokio::test]
async fn metrics_count_sign_ins_by_method_and_tokens_by_grant() {
    let spec = ClientSpec::confidential("app");
    let clock = ServerClock::new();
    let server = Server::start_strict(std::slice::from_ref(&spec), "", clock.start());
    server.add_user(EMAIL, "Dora");
    let secret = enrol(&server, &spec, &clock).await;
    let before = scrape(&server).await;

    // One wrong password, then password, one wrong code, the right code,
    // and the code redeemed.
    wrong_password(&server, &spec, EMAIL, None).await;
    let mut browser = Browser::new(&server.base);
    let url = auth_url(&server, &spec);
    let second = browser.authorize_with_password(&url, EMAIL, PASSWORD).await;
    assert!(second.body.contains("Two-factor authentication"));
    let wrong = post_step(&mut browser, &second, "/login/totp", "000000").await;
    assert!(wrong.location.is_none());
    let code = code_at(&secret, clock.now() + 30);
    let done = post_step(&mut browser, &wrong, "/login/totp", &code).await;
    let callback = done.location.expect("back to the client");
    let code = query_param(&callback, "code").expect("code");
    let token = redeem_code(&server, &spec.id, &code, &spec.redirect_uri).await;
    assert!(token["access_token"].is_string(), "{token}");

    let after = scrape(&server).await;
    let value = |series: &BTreeMap<String, f64>, name: &str| series.get(name).copied();
    let moved =
        |name: &str| value(&after, name).unwrap_or(0.0) - value(&before, name).unwrap_or(0.0);
    let sign_in = |method: &str, outcome: &str| {
        format!("zapini_sign_ins_total{{method=\"{method}\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(moved(&sign_in("password", "failure")), 1.0);
    assert_eq!(moved(&sign_in("password", "success")), 1.0);
    assert_eq!(moved(&sign_in("totp", "failure")), 1.0);
    assert_eq!(moved(&sign_in("totp", "success")), 1.0);
    assert_eq!(moved(&sign_in("recovery_code", "success")), 0.0);
    assert_eq!(moved(&sign_in("passkey", "failure")), 0.0);
    let tokens = |grant: &str| format!("zapini_tokens_issued_total{{grant_type=\"{grant}\"}}");
    assert_eq!(moved(&tokens("authorization_code")), 1.0);
    assert_eq!(moved(&tokens("refresh_token")), 0.0);
    assert_eq!(
        moved("zapini_http_requests_total{route=\"/token\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        moved("zapini_http_request_duration_seconds_count{route=\"/login/totp\"}"),
        2.0
    );
    assert_eq!(after["zapini_store_errors_total"], 0.0);
}

/// Reads `/metrics`, checks it is well-formed Prometheus text (every sample
/// in a family announced by `# HELP` and `# TYPE`, labels quoted and
/// escaped, values numbers) and returns each series' value.
async fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let response = http()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    parse_exposition(&response.text().await.unwrap())
}

fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut helped = Vec::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeMap::new();
    assert!(text.ends_with('\n'), "the text ends with a line feed");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name and text");
            assert!(!help.is_empty() && valid_name(name), "{line}");
            helped.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and type");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                helped.contains(&name.to_owned()),
                "HELP before TYPE: {line}"
            );
            assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
        } else {
            let (key, value) = sample(line);
            let name = &key[..key.find('{').unwrap_or(key.len())];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                .unwrap_or(name);
            assert!(typed.contains_key(family), "sample without TYPE: {line}");
            assert!(series.insert(key, value).is_none(), "repeated: {line}");
        }
    }
    series
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// One sample line: `name{label="value",...} number`. Label values may hold
/// `\\`, `\"` and `\n` escapes, so the braces are read character by
/// character.
fn sample(line: &str) -> (String, f64) {
    let name_end = line.find(['{', ' ']).expect("a name");
    assert!(valid_name(&line[..name_end]), "{line}");
    let mut rest = &line[name_end..];
    let mut key = line[..name_end].to_owned();
    if rest.starts_with('{') {
        let mut chars = rest.char_indices().skip(1);
        let mut in_value = false;
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match (in_value, c) {
                (true, '\\') => {
                    let (_, escaped) = chars.next().expect("an escaped character");
                    assert!(matches!(escaped, '\\' | '"' | 'n'), "{line}");
                }
                (true, '"') => in_value = false,
                (false, '"') => in_value = true,
                (false, '}') => {
                    end = Some(i);
                    break;
                }
                (false, c) => assert!(
                    c == '=' || c == ',' || c == '_' || c.is_ascii_alphanumeric(),
                    "{line}"
                ),
                _ => {}
            }
        }
        let end = end.expect("closing brace");
        key.push_str(&rest[..=end]);
        rest = &rest[end + 1..];
    }
    let value = rest.strip_prefix(' ').expect("a space before the value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("a number: {line}")),
    };
    (key, value)
}

#[test]
fn the_exposition_check_reads_escaped_labels() {
    let text = "# HELP x_total X.\n# TYPE x_total counter\n\
                x_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 3\n";
    let series = parse_exposition(text);
    assert_eq!(
        series["x_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"}"],
        3.0
    );
}

#[tokio::test]
async fn bytes_a_client_wrote_in_forwarded_for_do_not_hide_the_address_the_proxy_appended() {
    // A proxy appends the address it saw to the header line the client
    // sent (nginx's `$proxy_add_x_forwarded_for`). Bytes outside ASCII at
    // the left must not make the server drop the whole line and take the
    // request for the proxy's own, which would let a throttled client
    // start again under the proxy's address.
    let spec = ClientSpec::confidential("app");
    let server = Server::start(
        std::slice::from_ref(&spec),
        "trusted_proxies = [\"127.0.0.1/32\"]",
    );
    server.add_user(EMAIL, "Dora");
    let mut browser = Browser::new(&server.base);
    browser.set_header("x-forwarded-for", "\u{e9}t\u{e9}, 203.0.113.9");
    let signin = browser.follow(&auth_url(&server, &spec)).await;
    let done = browser.submit_password(&signin, EMAIL, PASSWORD).await;
    assert!(done.location.is_some(), "{}", done.body);
    let out = server.cli(&["audit", "export", "--email", EMAIL], "");
    let text = String::from_utf8_lossy(&out.stdout);
    let event: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|e| e["kind"] == "sign_in_succeeded")
        .expect("a sign-in event");
    assert_eq!(event["ip"], "203.0.113.9", "{event}");
}
