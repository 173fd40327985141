//! Client files change while the server runs: SIGHUP reloads them, and so
//! does the periodic look for changes; a broken file is logged with file,
//! field and reason, and the clients in force stay as they were.

use std::time::{Duration, Instant};

use zapini_id_tests::rp::{discover, sign_in_as};
use zapini_id_tests::{Browser, ClientSpec, Server, http};

const EMAIL: &str = "ana@example.com";

/// No polling within a test's time: only SIGHUP reloads.
const SIGNAL_ONLY: &str = "reload_interval = 3600";

/// What `/authorize` answers for a client: a redirect to the sign-in page
/// for a known client, an error page for an unknown one.
async fn authorize_status(server: &Server, spec: &ClientSpec) -> u16 {
    http()
        .get(server.url("/authorize"))
        .query(&[
            ("client_id", spec.id.as_str()),
            ("redirect_uri", spec.redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn is_known(status: u16) -> bool {
    (300..400).contains(&status)
}

/// Waits (up to ten seconds) until the server's log contains `text`.
fn wait_for_log(server: &Server, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_client(server: &Server, spec: &ClientSpec) {
    let path = server.clients_dir().join(format!("{}.toml", spec.id));
    std::fs::write(path, spec.toml()).unwrap();
}

#[tokio::test]
async fn a_client_added_while_running_signs_in_after_sighup() {
    let app = ClientSpec::confidential("app");
    let server = Server::start(std::slice::from_ref(&app), SIGNAL_ONLY);
    server.add_user(EMAIL, "Ana Lima");
    let late = ClientSpec::confidential("late");
    assert!(!is_known(authorize_status(&server, &late).await));

    write_client(&server, &late);
    server.hangup();
    wait_for_log(&server, "client files reloaded");

    let rp = discover(&server, &late).await;
    let done = sign_in_as(&server, &rp, EMAIL).await;
    assert_eq!(done.claims.audiences()[0].as_str(), "late");
    assert!(is_known(authorize_status(&server, &app).await));
}

#[tokio::test]
async fn a_broken_client_file_is_logged_and_the_clients_in_force_stay() {
    let app = ClientSpec::confidential("app");
    let server = Server::start(std::slice::from_ref(&app), SIGNAL_ONLY);
    server.add_user(EMAIL, "Ana Lima");

    // One good new file and one broken one: neither takes effect.
    let other = ClientSpec::confidential("other");
    write_client(&server, &other);
    let broken = app
        .clone()
        .with_extra("scopes = [\"openid\", \"profil\"]\n");
    write_client(&server, &broken);
    server.hangup();
    wait_for_log(&server, "reload refused");

    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("client file not reloaded"))
        .unwrap_or_else(|| panic!("no problem logged:\n{log}"));
    assert!(
        line.contains("app.toml") && line.contains("scopes"),
        "{line}"
    );
    assert!(line.contains("profil"), "{line}");
    assert!(!is_known(authorize_status(&server, &other).await));

    // The client as loaded before the broken file still signs in.
    let rp = discover(&server, &app).await;
    let done = sign_in_as(&server, &rp, EMAIL).await;
    assert_eq!(done.claims.audiences()[0].as_str(), "app");

    // Fixed, the next SIGHUP loads both.
    write_client(&server, &app);
    server.hangup();
    wait_for_log(&server, "client files reloaded");
    assert!(is_known(authorize_status(&server, &other).await));
}

#[tokio::test]
async fn polling_picks_up_a_new_client_file_without_a_signal() {
    let server = Server::start(&[ClientSpec::confidential("app")], "reload_interval = 1");
    let late = ClientSpec::confidential("late");
    write_client(&server, &late);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_known(authorize_status(&server, &late).await) {
        assert!(Instant::now() < deadline, "not reloaded:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!server.log().contains("SIGHUP"));
}

/// `client_credentials` with these client credentials: the status.
async fn client_token_status(server: &Server, client_id: &str, secret: &str) -> u16 {
    http()
        .post(server.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn polling_picks_up_a_secret_replaced_in_its_secret_file() {
    let server = Server::start(&[ClientSpec::confidential("app")], "reload_interval = 1");
    let (old, new) = (
        "first-machine-secret-0123456789-abcdefgh",
        "second-machine-secret-0123456789-abcdefg",
    );
    let dir = server.clients_dir();
    std::fs::write(dir.join("machine.secret"), format!("{old}\n")).unwrap();
    std::fs::write(
        dir.join("machine.toml"),
        "client_id = \"machine\"\n\
         client_secret_file = \"machine.secret\"\n\
         grant_types = [\"client_credentials\"]\n\
         redirect_uris = [\"http://127.0.0.1:9/cb\"]\n\
         scopes = [\"profile\"]\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_token_status(&server, "machine", old).await != 200 {
        assert!(Instant::now() < deadline, "not loaded:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Only the secret file changes: the client file is as it was.
    std::fs::write(dir.join("machine.secret"), format!("{new}\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_token_status(&server, "machine", new).await != 200 {
        assert!(Instant::now() < deadline, "not reloaded:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client_token_status(&server, "machine", old).await, 401);
    assert!(!server.log().contains("SIGHUP"));
    assert!(!server.log().contains(new), "a secret reached the log");
}

#[tokio::test]
async fn a_broken_settings_file_is_logged_and_nothing_changes() {
    let server = Server::start(&[ClientSpec::confidential("app")], SIGNAL_ONLY);
    let late = ClientSpec::confidential("late");
    write_client(&server, &late);
    let settings = server.dir.join("zapini-id.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("listn = \"x\"\n{text}")).unwrap();
    server.hangup();
    wait_for_log(&server, "reload refused");

    let log = server.log();
    assert!(
        log.contains("settings not reloaded") && log.contains("listn"),
        "{log}"
    );
    assert!(!is_known(authorize_status(&server, &late).await));
    assert!(is_known(
        authorize_status(&server, &ClientSpec::confidential("app")).await
    ));
}

#[tokio::test]
async fn a_redirect_uri_removed_while_a_sign_in_is_under_way_gets_nothing() {
    // The operator takes a redirect URI out (a domain that changed hands)
    // while someone is on the sign-in page of a request made for it: the
    // sign-in must not end with a code, or an error, sent there.
    let mut app = ClientSpec::confidential("app");
    let server = Server::start(std::slice::from_ref(&app), SIGNAL_ONLY);
    server.add_user(EMAIL, "Ana Lima");
    let old = app.redirect_uri.clone();
    let url = format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&state=s&redirect_uri={old}",
        server.base
    );
    let mut browser = Browser::new(&server.base);
    let signin = browser.follow(&url).await;
    assert_eq!(signin.status, 200, "{}", signin.body);

    app.redirect_uri = "https://app.example.com/new-callback".into();
    write_client(&server, &app);
    server.hangup();
    wait_for_log(&server, "client files reloaded");

    let done = browser
        .submit_password(&signin, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    let to = done.location.clone().unwrap_or_default();
    assert!(!to.starts_with(&old), "sent to the removed URI: {to}");
    assert!(!done.body.contains(&old), "{}", done.body);
    assert_eq!(done.status, 400, "{}", done.body);
}
