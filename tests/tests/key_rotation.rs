//! Signing-key rotation with `zapini-id keys rotate` while servers run: the
//! next key is published at once and signs only after
//! `key_activation_delay`, so a relying party that honours the JWKS
//! `Cache-Control` never meets a `kid` it has not fetched; the retired key
//! leaves the JWKS once its tokens have expired; instances on one database
//! agree on the signing key. The server's clock is moved with SIGUSR1 (see
//! docs/decisions/0004-test-clock.md) instead of waiting hours.

use std::time::{Duration, Instant};

use openidconnect::TokenResponse;
use zapini_id_tests::backing::Backing;
use zapini_id_tests::rp::{discover, sign_in_as};
use zapini_id_tests::totp::ServerClock;
use zapini_id_tests::{ClientSpec, SECRET, Server, http};

const EMAIL: &str = "ana@example.com";

/// 20 minutes: more than the JWKS max-age (5 minutes) plus the reload
/// interval, as the settings check demands.
const DELAY: i64 = 1200;

/// Reloads every second, so tests see a rotation quickly.
fn settings() -> String {
    format!("key_activation_delay = {DELAY}\nreload_interval = 1\n")
}

/// The `kid`s of an instance's JWKS, in its order.
async fn jwks_kids(server: &Server) -> Vec<String> {
    let jwks: serde_json::Value = http()
        .get(server.local_url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (up to ten seconds) until the instance publishes `count` keys.
async fn wait_for_key_count(server: &Server, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = jwks_kids(server).await;
        if kids.len() == count {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "{count} keys expected, got {kids:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The time for a command: the servers' clocks, plus a few seconds so
/// that it is never behind a server that started a second later than the
/// test's count.
fn command_time(clock: &ServerClock) -> String {
    (clock.now() + 5).to_string()
}

/// Runs a `keys` command at the time the servers' clocks show.
fn keys(server: &Server, clock: &ServerClock, command: &str) -> String {
    let now = command_time(clock);
    let out = server.cli_with_env(
        &["keys", command],
        "",
        &[("ZAPINI_ID_TEST_CLOCK_START", now.as_str())],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keys {command}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Moves the clock of every server ten minutes ahead and waits until each
/// has logged the move.
fn advance(clock: &mut ServerClock, servers: &[&Server]) {
    let before: Vec<usize> = servers
        .iter()
        .map(|s| s.log().matches("test clock moved").count())
        .collect();
    for server in servers {
        let status = std::process::Command::new("kill")
            .args(["-USR1", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    clock.add_ten_minutes();
    let deadline = Instant::now() + Duration::from_secs(5);
    for (server, count) in servers.iter().zip(before) {
        while server.log().matches("test clock moved").count() == count {
            assert!(Instant::now() < deadline, "the clock did not move");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The state `keys list` shows for `kid`.
fn state_of(list: &str, kid: &str) -> String {
    list.lines()
        .find(|l| l.starts_with(kid))
        .and_then(|l| l.split('\t').nth(2))
        .unwrap_or_else(|| panic!("{kid} not in\n{list}"))
        .to_owned()
}

#[tokio::test]
async fn a_relying_party_verifies_every_id_token_across_a_rotation() {
    let mut clock = ServerClock::new();
    let spec = ClientSpec::confidential("app");
    let server = Server::start_with_clock(std::slice::from_ref(&spec), &settings(), clock.start());
    server.add_user(EMAIL, "Ana Lima");

    // The relying party discovers the server and caches its JWKS.
    let cached_before = discover(&server, &spec).await;
    let first = sign_in_as(&server, &cached_before, EMAIL).await;
    let old_kid = kid_of(&first.token.id_token().unwrap().to_string());

    let rotated = keys(&server, &clock, "rotate");
    let new_kid = rotated
        .lines()
        .find(|l| l.starts_with("RS256\t"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap()
        .to_owned();
    let kids = wait_for_key_count(&server, 6).await;
    assert!(
        kids.contains(&new_kid) && kids.contains(&old_kid),
        "{kids:?}"
    );
    let answer = http().get(server.url("/jwks")).send().await.unwrap();
    assert_eq!(answer.headers()["cache-control"], "public, max-age=300");

    // During the delay the old key signs: the JWKS cached before the
    // rotation still verifies the ID tokens.
    let during = sign_in_as(&server, &cached_before, EMAIL).await;
    assert_eq!(
        kid_of(&during.token.id_token().unwrap().to_string()),
        old_kid
    );

    // Its cache expires (max-age) well within the delay; the fresh copy
    // already holds the next key.
    advance(&mut clock, &[&server]);
    let cached_during = discover(&server, &spec).await;

    // After activation the new key signs, and the copy fetched during the
    // delay verifies the ID tokens without fetching again.
    advance(&mut clock, &[&server]);
    advance(&mut clock, &[&server]);
    let after = sign_in_as(&server, &cached_during, EMAIL).await;
    assert_eq!(
        kid_of(&after.token.id_token().unwrap().to_string()),
        new_kid
    );
    let list = keys(&server, &clock, "list");
    assert_eq!(state_of(&list, &new_kid), "active", "{list}");
    assert_eq!(state_of(&list, &old_kid), "retiring", "{list}");
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_when_its_tokens_have_expired() {
    let mut clock = ServerClock::new();
    let server = Server::start_with_clock(&[], &settings(), clock.start());
    let old = wait_for_key_count(&server, 3).await;

    keys(&server, &clock, "rotate");
    let both = wait_for_key_count(&server, 6).await;
    let new: Vec<&String> = both.iter().filter(|k| !old.contains(k)).collect();
    let list = keys(&server, &clock, "list");
    for kid in &old {
        assert_eq!(state_of(&list, kid), "active", "{list}");
    }
    for kid in &new {
        assert_eq!(state_of(&list, kid), "next", "{list}");
    }

    // A second rotation waits for the first.
    let now = command_time(&clock);
    let refused = server.cli_with_env(
        &["keys", "rotate"],
        "",
        &[("ZAPINI_ID_TEST_CLOCK_START", now.as_str())],
    );
    assert!(!refused.status.success());

    // Activation plus ten minutes: the old keys retire but ID and access
    // tokens they signed (ten minutes, plus five of leeway) may live.
    for _ in 0..3 {
        advance(&mut clock, &[&server]);
    }
    assert_eq!(jwks_kids(&server).await.len(), 6);
    let list = keys(&server, &clock, "list");
    for kid in &old {
        assert_eq!(state_of(&list, kid), "retiring", "{list}");
    }

    // Past their lifetime the old keys are no longer published.
    advance(&mut clock, &[&server]);
    let left = jwks_kids(&server).await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|k| new.contains(&k)), "{left:?}");
    let list = keys(&server, &clock, "list");
    for kid in &old {
        assert_eq!(state_of(&list, kid), "retired", "{list}");
    }
}

/// An access token for `client_id` from one instance (client credentials).
async fn access_token_kid(server: &Server, client_id: &str) -> String {
    let answer: serde_json::Value = http()
        .post(server.local_url("/token"))
        .basic_auth(client_id, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    kid_of(token)
}

/// A client that can ask for tokens for itself.
fn service() -> ClientSpec {
    ClientSpec::confidential("svc")
        .with_extra("grant_types = [\"authorization_code\", \"client_credentials\"]\n")
}

/// The test clock of an instance started now: where the first instance's
/// clock has got to (rounded up), as synchronised clocks would be.
fn clock_env(clock: &ServerClock, first: bool) -> String {
    if first {
        clock.start().to_string()
    } else {
        (clock.now() + 1).to_string()
    }
}

/// Rotates from A's command line and checks that A and B publish the same
/// keys and sign with the same one before and after activation.
async fn instances_agree_across_a_rotation(a: &Server, b: &Server, clock: &mut ServerClock) {
    assert_eq!(jwks_kids(a).await, jwks_kids(b).await);
    let old = access_token_kid(a, "svc").await;
    assert_eq!(access_token_kid(b, "svc").await, old);

    // B learns of the new keys by polling.
    keys(a, clock, "rotate");
    let published = wait_for_key_count(b, 6).await;
    assert_eq!(wait_for_key_count(a, 6).await, published);
    assert_eq!(access_token_kid(a, "svc").await, old);
    assert_eq!(access_token_kid(b, "svc").await, old);

    for _ in 0..3 {
        advance(clock, &[a, b]);
    }
    let new = access_token_kid(a, "svc").await;
    assert_ne!(new, old);
    assert!(published.contains(&new));
    assert_eq!(access_token_kid(b, "svc").await, new);
    assert_eq!(jwks_kids(a).await, jwks_kids(b).await);
}

#[tokio::test]
async fn two_instances_on_one_sqlite_file_agree_on_the_signing_key() {
    let mut clock = ServerClock::new();
    let spec = service();
    let ports = [free_port(), free_port()];
    let issuer = format!("http://localhost:{}", ports[0]);
    let shared_dir = std::env::temp_dir().join(format!("zid-two-{}", std::process::id()));
    std::fs::create_dir_all(&shared_dir).unwrap();
    let database = format!("sqlite://{}/shared.db?mode=rwc", shared_dir.display());
    let specs = std::slice::from_ref(&spec);
    let start = |first| {
        let at = clock_env(&clock, first);
        let env = [("ZAPINI_ID_TEST_CLOCK_START", at.as_str())];
        let port = ports[usize::from(!first)];
        Server::start_on_database(specs, &settings(), &database, &issuer, port, &env)
    };
    let a = start(true);
    let b = start(false);

    instances_agree_across_a_rotation(&a, &b, &mut clock).await;
    drop((a, b));
    std::fs::remove_dir_all(shared_dir).unwrap();
}

#[tokio::test]
async fn two_instances_on_postgresql_agree_on_the_signing_key() {
    let Some(backing) = Backing::start() else {
        return;
    };
    let mut clock = ServerClock::new();
    let spec = service();
    let ports = [free_port(), free_port()];
    let shared = backing.shared(&format!("http://localhost:{}", ports[0]));
    let specs = std::slice::from_ref(&spec);
    let start = |first| {
        let at = clock_env(&clock, first);
        let env = [("ZAPINI_ID_TEST_CLOCK_START", at.as_str())];
        let port = ports[usize::from(!first)];
        Server::start_scaled(specs, &settings(), &shared, port, &env)
    };
    let a = start(true);
    let b = start(false);

    instances_agree_across_a_rotation(&a, &b, &mut clock).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}
