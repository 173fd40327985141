//! Passkeys at the protocol level, with a software authenticator that can be
//! told to misbehave (WebAuthn L2 7.1 registration and 7.2 assertion checks):
//! wrong origin, wrong rp id, user verification not done, a replayed
//! challenge, a counter going backwards, a ceremony finished by another
//! session. The relying party is the openidconnect crate. The happy paths
//! in a real browser are in tests/node/browser-passkey.test.js.

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::core::CoreIdTokenClaims;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier};
use serde_json::Value;
use zapini_id_tests::authenticator::{Ceremony, SoftPasskey};
use zapini_id_tests::browser::{Page, hidden_input};
use zapini_id_tests::rp::{Rp, amr, discover, redeem};
use zapini_id_tests::{Browser, ClientSpec, Server};

const EMAIL: &str = "pia@example.com";

fn server() -> (Server, ClientSpec) {
    let spec = ClientSpec::confidential("app");
    let server = Server::start(std::slice::from_ref(&spec), "");
    server.add_user(EMAIL, "Pia");
    (server, spec)
}

/// A browser signed in with the password, on the security page; returns the
/// page's CSRF token.
async fn signed_in(server: &Server) -> (Browser, String) {
    let mut browser = Browser::new(&server.base);
    let signin = browser.follow("/login?return_to=/account/security").await;
    let page = browser
        .submit_password(&signin, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    assert!(
        page.body.contains("Signed in as"),
        "security area: {}",
        page.body
    );
    let csrf = hidden_input(&page.body, "csrf").expect("csrf on the security page");
    (browser, csrf)
}

fn json(page: &Page) -> Value {
    serde_json::from_str(&page.body)
        .unwrap_or_else(|_| panic!("JSON, got {} {}", page.status, page.body))
}

/// Asks for registration options and answers them; returns the page the
/// server shows afterwards.
async fn register(
    browser: &mut Browser,
    csrf: &str,
    key: &mut SoftPasskey,
    ceremony: &Ceremony,
) -> Page {
    let options = json(
        &browser
            .post_form("/account/security/passkeys/options", &[("csrf", csrf)])
            .await,
    );
    let credential = key.register(&options["options"], ceremony);
    let id = options["ceremony"].as_str().expect("ceremony id");
    browser
        .post_form(
            "/account/security/passkeys",
            &[
                ("csrf", csrf),
                ("ceremony", id),
                ("name", "Soft key"),
                ("credential", &credential),
            ],
        )
        .await
}

async fn registered(server: &Server, key: &mut SoftPasskey) {
    let (mut browser, csrf) = signed_in(server).await;
    let page = register(&mut browser, &csrf, key, &Ceremony::honest(&server.base)).await;
    assert!(
        page.body.contains("The passkey is registered"),
        "registered: {}",
        page.body
    );
}

/// The sign-in page's transaction fields and a fresh passkey challenge.
async fn challenge(browser: &mut Browser, page: &Page) -> (String, String, Value) {
    let tx = hidden_input(&page.body, "tx").expect("tx");
    let csrf = hidden_input(&page.body, "csrf").expect("csrf");
    let options = json(
        &browser
            .post_form("/login/passkey/options", &[("tx", &tx), ("csrf", &csrf)])
            .await,
    );
    (tx, csrf, options)
}

async fn answer(browser: &mut Browser, tx: &str, csrf: &str, credential: &str) -> Page {
    browser
        .post_form(
            "/login/passkey",
            &[("tx", tx), ("csrf", csrf), ("credential", credential)],
        )
        .await
}

/// Signs in at `/login` with the key as `ceremony` says; the server's answer.
async fn passkey_sign_in(server: &Server, key: &mut SoftPasskey, ceremony: &Ceremony) -> Page {
    let mut browser = Browser::new(&server.base);
    let page = browser.follow("/login").await;
    let (tx, csrf, options) = challenge(&mut browser, &page).await;
    let credential = key.assert(&options, ceremony);
    answer(&mut browser, &tx, &csrf, &credential).await
}

fn signed_in_by(page: &Page) -> bool {
    page.status == 303 && page.location.as_deref() == Some("/account/security")
}

/// All security events, as the operator exports them.
fn events(server: &Server) -> Vec<Value> {
    let out = server.cli(&["audit", "export"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn refusals(server: &Server, reason: &str) -> usize {
    events(server)
        .iter()
        .filter(|e| e["kind"] == "passkey_refused" && e["detail"]["reason"] == reason)
        .count()
}

/// An authorization request of the relying party, with PKCE and `extra`
/// parameters: its URL, the verifier and the nonce.
fn rp_request(rp: &Rp, extra: &[(&str, &str)]) -> (String, PkceCodeVerifier, Nonce) {
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(pkce);
    for (k, v) in extra {
        request = request.add_extra_param(*k, *v);
    }
    let (url, _, nonce) = request.url();
    (url.to_string(), verifier, nonce)
}

/// From the server's answer to the last sign-in step on to the relying
/// party: the code redeemed by the library, the verified ID token's claims.
async fn at_client(
    browser: &mut Browser,
    rp: &Rp,
    done: Page,
    verifier: PkceCodeVerifier,
    nonce: &Nonce,
) -> CoreIdTokenClaims {
    let next = done.location.expect("on to the authorization");
    assert!(next.starts_with("/authorize/continue"), "{next}");
    let callback = browser.follow(&next).await.location.expect("callback");
    redeem(rp, &callback, verifier, nonce).await.1
}

/// A whole authorization code flow signed in with the passkey alone; the
/// verified ID token's `amr` and `acr`.
async fn relying_party_sign_in(
    server: &Server,
    spec: &ClientSpec,
    key: &mut SoftPasskey,
) -> (Vec<String>, String) {
    let rp = discover(server, spec).await;
    let (url, verifier, nonce) = rp_request(&rp, &[]);
    let mut browser = Browser::new(&server.base);
    let page = browser.follow(&url).await;
    let (tx, csrf, options) = challenge(&mut browser, &page).await;
    let credential = key.assert(&options, &Ceremony::honest(&server.base));
    let done = answer(&mut browser, &tx, &csrf, &credential).await;
    let claims = at_client(&mut browser, &rp, done, verifier, &nonce).await;
    let acr = claims.auth_context_ref().expect("acr").to_string();
    (amr(&claims), acr)
}

#[tokio::test]
async fn passkey_sign_in_through_a_relying_party_says_hwk_for_a_device_bound_and_swk_for_a_synced_passkey()
 {
    let (server, spec) = server();
    let mut device = SoftPasskey::new(false);
    let mut synced = SoftPasskey::new(true);
    registered(&server, &mut device).await;
    registered(&server, &mut synced).await;

    let (amr_device, acr_device) = relying_party_sign_in(&server, &spec, &mut device).await;
    assert_eq!(amr_device, ["hwk", "user", "mfa"]);
    assert_eq!(acr_device, "phr");
    let (amr_synced, acr_synced) = relying_party_sign_in(&server, &spec, &mut synced).await;
    assert_eq!(amr_synced, ["swk", "user", "mfa"]);
    assert_eq!(acr_synced, "phr");

    let (mut browser, _) = signed_in(&server).await;
    let page = browser.get("/account/security").await;
    assert!(page.body.contains("Synced") && page.body.contains("This device only"));
}

#[tokio::test]
async fn an_assertion_made_for_another_origin_is_refused_and_logged() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    for origin in [
        "https://evil.example",
        "http://localhost:1",
        "http://sub.localhost",
    ] {
        let mut phished = Ceremony::honest(&server.base);
        phished.origin = origin.to_owned();
        let page = passkey_sign_in(&server, &mut key, &phished).await;
        assert!(!signed_in_by(&page), "origin {origin} was accepted");
        assert!(page.body.contains("could not be verified"), "{}", page.body);
    }
    assert_eq!(refusals(&server, "invalid_assertion"), 3);
    // Anyone can send a bad assertion for a known credential id: such
    // refusals stay out of the owner's own security log.
    assert!(
        events(&server)
            .iter()
            .filter(|e| e["kind"] == "passkey_refused")
            .all(|e| e["user_id"].is_null())
    );
    // Nothing was spoilt: the honest page still signs in.
    let page = passkey_sign_in(&server, &mut key, &Ceremony::honest(&server.base)).await;
    assert!(signed_in_by(&page), "{} {}", page.status, page.body);
}

#[tokio::test]
async fn an_assertion_for_another_rp_id_is_refused() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let mut other = Ceremony::honest(&server.base);
    other.rp_id = "evil.example".to_owned();
    let page = passkey_sign_in(&server, &mut key, &other).await;
    assert!(!signed_in_by(&page));
    assert_eq!(refusals(&server, "invalid_assertion"), 1);

    // The same at registration: the credential is not stored.
    let (mut browser, csrf) = signed_in(&server).await;
    let mut second = SoftPasskey::new(false);
    let page = register(&mut browser, &csrf, &mut second, &other).await;
    assert!(
        page.body.contains("could not be registered"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("Remove passkey").count(),
        1,
        "still one passkey"
    );
}

#[tokio::test]
async fn user_verification_not_done_is_refused_at_registration_and_sign_in() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    let mut presence_only = Ceremony::honest(&server.base);
    presence_only.user_verified = false;

    let (mut browser, csrf) = signed_in(&server).await;
    let page = register(&mut browser, &csrf, &mut key, &presence_only).await;
    assert!(
        page.body.contains("could not be registered"),
        "{}",
        page.body
    );
    assert!(page.body.contains("No passkeys yet."));

    registered(&server, &mut key).await;
    let page = passkey_sign_in(&server, &mut key, &presence_only).await;
    assert!(!signed_in_by(&page));
    let during: Vec<Value> = events(&server)
        .into_iter()
        .filter(|e| e["kind"] == "passkey_refused" && e["detail"]["reason"] == "user_not_verified")
        .map(|e| e["detail"]["during"].clone())
        .collect();
    assert_eq!(during, ["registration", "sign_in"]);
}

#[tokio::test]
async fn a_challenge_is_answered_once() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let mut browser = Browser::new(&server.base);
    let page = browser.follow("/login").await;
    let (tx, csrf, options) = challenge(&mut browser, &page).await;
    let credential = key.assert(&options, &Ceremony::honest(&server.base));

    // Two copies of the same answer at once: one signs in.
    let mut twin = Browser::new(&server.base);
    twin.cookies = browser.cookies.clone();
    let (first, second) = tokio::join!(
        answer(&mut browser, &tx, &csrf, &credential),
        answer(&mut twin, &tx, &csrf, &credential),
    );
    assert_eq!(
        usize::from(signed_in_by(&first)) + usize::from(signed_in_by(&second)),
        1,
        "exactly one of two identical answers signs in"
    );

    // An answer to an old challenge after a new one was issued.
    let mut browser = Browser::new(&server.base);
    let page = browser.follow("/login").await;
    let (tx, csrf, old) = challenge(&mut browser, &page).await;
    let stale = key.assert(&old, &Ceremony::honest(&server.base));
    let (_, _, _fresh) = challenge(&mut browser, &page).await;
    let page = answer(&mut browser, &tx, &csrf, &stale).await;
    assert!(!signed_in_by(&page), "an answer to a replaced challenge");
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused_and_logged() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let honest = Ceremony::honest(&server.base);
    key.counter = 5;
    assert!(signed_in_by(
        &passkey_sign_in(&server, &mut key, &honest).await
    ));

    // A clone of the authenticator that has fallen behind.
    for behind in [3, 5] {
        key.counter = behind;
        let page = passkey_sign_in(&server, &mut key, &honest).await;
        assert!(
            !signed_in_by(&page),
            "counter {behind} after 5 was accepted"
        );
    }
    assert_eq!(refusals(&server, "counter_regression"), 2);
    // A counter going backwards needed a valid signature: the owner sees it.
    assert!(
        events(&server)
            .iter()
            .filter(|e| e["detail"]["reason"] == "counter_regression")
            .all(|e| !e["user_id"].is_null())
    );

    key.counter = 6;
    assert!(signed_in_by(
        &passkey_sign_in(&server, &mut key, &honest).await
    ));
}

#[tokio::test]
async fn a_registration_is_finished_only_by_the_session_that_started_it() {
    let (server, _) = server();
    let (mut alice_tab, csrf_a) = signed_in(&server).await;
    let (mut other_tab, csrf_b) = signed_in(&server).await;
    let options = json(
        &alice_tab
            .post_form("/account/security/passkeys/options", &[("csrf", &csrf_a)])
            .await,
    );
    let mut key = SoftPasskey::new(false);
    let credential = key.register(&options["options"], &Ceremony::honest(&server.base));
    let page = other_tab
        .post_form(
            "/account/security/passkeys",
            &[
                ("csrf", &csrf_b),
                ("ceremony", options["ceremony"].as_str().expect("ceremony")),
                ("name", "Stolen"),
                ("credential", &credential),
            ],
        )
        .await;
    assert!(page.body.contains("expired"), "{}", page.body);
    assert!(page.body.contains("No passkeys yet."));
}

#[tokio::test]
async fn the_same_credential_cannot_be_registered_twice() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    // A client that ignores excludeCredentials.
    let (mut browser, csrf) = signed_in(&server).await;
    let page = register(
        &mut browser,
        &csrf,
        &mut key,
        &Ceremony::honest(&server.base),
    )
    .await;
    assert!(
        page.body.contains("already registered to your account"),
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("Remove passkey").count(), 1);
}

#[tokio::test]
async fn registration_options_ask_for_a_discoverable_verified_credential_and_exclude_known_ones() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let (mut browser, csrf) = signed_in(&server).await;
    let options = json(
        &browser
            .post_form("/account/security/passkeys/options", &[("csrf", &csrf)])
            .await,
    );
    let public_key = &options["options"]["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    let selection = &public_key["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["userVerification"], "required");
    let excluded: Vec<&str> = public_key["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(excluded.len(), 1);
    let user_handle = public_key["user"]["id"].as_str().expect("user handle");
    assert!(!user_handle.is_empty());
    assert_ne!(user_handle, EMAIL);

    // Without a fresh sign-in the options are not given out.
    let page = Browser::new(&server.base)
        .post_form("/account/security/passkeys/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 401);
    assert!(
        json(&page)["location"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/login")
    );
}

#[tokio::test]
async fn malformed_passkey_answers_get_a_plain_page_not_an_error() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let mut browser = Browser::new(&server.base);
    let page = browser.follow("/login").await;
    for junk in ["", "{}", "not json", "[1,2,3]", &"x".repeat(20_000)] {
        let (tx, csrf, _) = challenge(&mut browser, &page).await;
        let answered = answer(&mut browser, &tx, &csrf, junk).await;
        assert_eq!(answered.status, 200, "{junk:.20}: {}", answered.body);
        assert!(
            answered.body.contains("could not be verified") || answered.body.contains("expired")
        );
    }
    // Options for a transaction that is not this browser's.
    let stranger = Browser::new(&server.base)
        .post_form(
            "/login/passkey/options",
            &[("tx", "nope"), ("csrf", "nope")],
        )
        .await;
    assert_eq!(stranger.status, 409);
}

#[tokio::test]
async fn an_operator_removes_a_lost_devices_passkeys() {
    let (server, _) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    let out = server.cli(&["users", "remove-passkeys", "--email", EMAIL], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passkey(s) removed"));
    let page = passkey_sign_in(&server, &mut key, &Ceremony::honest(&server.base)).await;
    assert!(!signed_in_by(&page));
    assert!(page.body.contains("not registered here"), "{}", page.body);
    assert!(
        events(&server)
            .iter()
            .any(|e| e["kind"] == "passkey_removed" && e["detail"]["by"] == "operator")
    );
}

#[tokio::test]
async fn after_the_password_a_passkey_is_the_second_step_for_a_client_that_demands_two_factors() {
    let spec = ClientSpec::confidential("strict").with_extra("require_2fa = true\n");
    let server = Server::start(std::slice::from_ref(&spec), "");
    server.add_user(EMAIL, "Pia");
    let mut key = SoftPasskey::new(true);
    registered(&server, &mut key).await;

    let rp = discover(&server, &spec).await;
    let (url, verifier, nonce) = rp_request(&rp, &[]);
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&url, EMAIL, zapini_id_tests::PASSWORD)
        .await;
    assert!(
        page.body.contains("Confirm with your passkey"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("one-time-code"),
        "no TOTP form without TOTP"
    );
    let (tx, csrf, options) = challenge(&mut browser, &page).await;
    let allowed: Vec<&str> = options["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(allowed.len(), 1, "only this user's passkey is asked for");

    let credential = key.assert(&options, &Ceremony::honest(&server.base));
    let done = answer(&mut browser, &tx, &csrf, &credential).await;
    let claims = at_client(&mut browser, &rp, done, verifier, &nonce).await;
    assert_eq!(amr(&claims), ["pwd", "swk", "user", "mfa"]);
    assert_eq!(
        claims.auth_context_ref().map(|a| a.to_string()).as_deref(),
        Some("phr")
    );
}

#[tokio::test]
async fn a_password_session_asked_for_phr_steps_up_with_the_passkey_alone() {
    let (server, spec) = server();
    let mut key = SoftPasskey::new(false);
    registered(&server, &mut key).await;
    // A browser signed in with the password only (acr pwd).
    let (mut browser, _) = signed_in(&server).await;

    let rp = discover(&server, &spec).await;
    let (url, verifier, nonce) = rp_request(&rp, &[("acr_values", "phr")]);
    let page = browser.follow(&url).await;
    assert!(
        page.body.contains("Confirm with your passkey"),
        "only the missing factor is asked: {}",
        page.body
    );
    assert!(!page.body.contains("name=\"password\""));
    let (tx, csrf, options) = challenge(&mut browser, &page).await;
    let credential = key.assert(&options, &Ceremony::honest(&server.base));
    let done = answer(&mut browser, &tx, &csrf, &credential).await;
    let claims = at_client(&mut browser, &rp, done, verifier, &nonce).await;
    assert_eq!(amr(&claims), ["pwd", "hwk", "user", "mfa"]);
    assert_eq!(
        claims.auth_context_ref().map(|a| a.to_string()).as_deref(),
        Some("phr")
    );
}
