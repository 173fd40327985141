//! OpenID Connect Back-Channel Logout 1.0: a small receiver on 127.0.0.1
//! plays the client's `backchannel_logout_uri` and checks the logout token
//! against the JWKS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use josekit::jwk::Jwk;
use josekit::jws::RS256;
use josekit::jwt;
use serde_json::Value;
use tokio::sync::mpsc;
use zapini_id_tests::{
    Browser, ClientSpec, PASSWORD, Server, http, jwt_payload, query_param, redeem_code,
};

const EMAIL: &str = "gil@example.com";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The receiver: answers `fail_first` requests with 503, then 200, and
/// passes every posted `logout_token` on.
struct Receiver {
    tokens: mpsc::UnboundedSender<String>,
    seen: AtomicUsize,
    fail_first: usize,
}

async fn receive(State(r): State<Arc<Receiver>>, body: Bytes) -> StatusCode {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let _ = r.tokens.send(token);
    if r.seen.fetch_add(1, Ordering::SeqCst) < r.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// Starts a receiver; returns its URI and the stream of tokens.
async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        tokens: tx,
        seen: AtomicUsize::new(0),
        fail_first,
    });
    let app = Router::new().route("/bc", post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/bc"), rx)
}

fn auth_url(server: &Server) -> String {
    format!(
        "{}/authorize?client_id=app&response_type=code&scope=openid&state=s\
         &redirect_uri=https://app.example.com/callback",
        server.base
    )
}

async fn next_token(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a logout token within 15 seconds")
        .expect("the receiver is running")
}

/// Signs in, then signs out through RP-initiated logout; returns the ID
/// token's claims.
async fn sign_in_and_out(server: &Server) -> Value {
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(server), EMAIL, PASSWORD)
        .await;
    let code = query_param(&page.location.unwrap(), "code").unwrap();
    let token = redeem_code(server, "app", &code, "https://app.example.com/callback").await;
    let id_token = token["id_token"].as_str().unwrap().to_owned();
    let end = format!("{}/session/end?id_token_hint={id_token}", server.base);
    let out = browser.get(&end).await;
    assert_eq!(
        out.status, 200,
        "the signed-out page does not wait for the client"
    );
    jwt_payload(&id_token)
}

/// Verifies a token's signature with the server's JWKS and returns its
/// header type and claims.
async fn verify(server: &Server, token: &str) -> (String, Value) {
    let jwks: Value = http()
        .get(server.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jwt::decode_header(token).unwrap();
    let kid = header.claim("kid").and_then(Value::as_str).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the signing key is in the JWKS");
    let jwk = Jwk::from_bytes(key.to_string().as_bytes()).unwrap();
    let verifier = RS256.verifier_from_jwk(&jwk).unwrap();
    let (payload, header) = jwt::decode_with_verifier(token, &verifier).expect("a valid signature");
    let typ = header.token_type().unwrap_or_default().to_owned();
    (typ, Value::Object(payload.claims_set().clone()))
}

#[tokio::test]
async fn signing_out_posts_a_verified_logout_token_to_the_client() {
    let (uri, mut rx) = receiver(0).await;
    let spec = ClientSpec::confidential("app").with_extra(format!(
        "backchannel_logout_uri = \"{uri}\"\nbackchannel_logout_session_required = true\n"
    ));
    let server = Server::start(&[spec], "");
    let sub = server.add_user(EMAIL, "Gil");
    let id_claims = sign_in_and_out(&server).await;

    let token = next_token(&mut rx).await;
    let (typ, claims) = verify(&server, &token).await;
    assert_eq!(typ, "logout+jwt");
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(
        claims["sid"], id_claims["sid"],
        "the session of the ID token"
    );
    assert!(claims["events"][EVENT].is_object(), "{claims}");
    assert!(claims["jti"].is_string() && claims["iat"].is_i64());
    assert!(claims.get("nonce").is_none(), "section 2.4: no nonce");

    let discovery: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn a_failed_delivery_is_retried() {
    let (uri, mut rx) = receiver(1).await;
    let spec =
        ClientSpec::confidential("app").with_extra(format!("backchannel_logout_uri = \"{uri}\"\n"));
    let server = Server::start(&[spec], "");
    server.add_user(EMAIL, "Gil");
    sign_in_and_out(&server).await;

    let first = next_token(&mut rx).await;
    let second = next_token(&mut rx).await;
    assert_eq!(first, second, "the same token is sent again after a 503");
}

#[tokio::test]
async fn signing_out_on_the_account_page_notifies_the_client_too() {
    let (uri, mut rx) = receiver(0).await;
    let spec =
        ClientSpec::confidential("app").with_extra(format!("backchannel_logout_uri = \"{uri}\"\n"));
    let server = Server::start(&[spec], "");
    server.add_user(EMAIL, "Gil");
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(&server), EMAIL, PASSWORD)
        .await;
    let code = query_param(&page.location.unwrap(), "code").unwrap();
    let token = redeem_code(&server, "app", &code, "https://app.example.com/callback").await;
    let sid = jwt_payload(token["id_token"].as_str().unwrap())["sid"].clone();

    let security = browser.get("/account/security").await;
    let csrf = zapini_id_tests::browser::hidden_input(&security.body, "csrf").unwrap();
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);

    let (typ, claims) = verify(&server, &next_token(&mut rx).await).await;
    assert_eq!(typ, "logout+jwt");
    assert_eq!(claims["sid"], sid);
}

/// Signs in in a new browser; returns it and the ID token's `sid`.
async fn signed_in(server: &Server) -> (Browser, Value) {
    let mut browser = Browser::new(&server.base);
    let page = browser
        .authorize_with_password(&auth_url(server), EMAIL, PASSWORD)
        .await;
    let code = query_param(&page.location.unwrap(), "code").unwrap();
    let token = redeem_code(server, "app", &code, "https://app.example.com/callback").await;
    let sid = jwt_payload(token["id_token"].as_str().unwrap())["sid"].clone();
    (browser, sid)
}

#[tokio::test]
async fn a_password_change_notifies_the_other_sessions_only() {
    let (uri, mut rx) = receiver(0).await;
    let spec =
        ClientSpec::confidential("app").with_extra(format!("backchannel_logout_uri = \"{uri}\"\n"));
    let server = Server::start(&[spec], "");
    server.add_user(EMAIL, "Gil");
    let (mut here, _) = signed_in(&server).await;
    let (_, elsewhere_sid) = signed_in(&server).await;

    let page = here.get("/account/security").await;
    let csrf = zapini_id_tests::browser::hidden_input(&page.body, "csrf").unwrap();
    let new_password = "another long password for gil";
    let changed = here
        .post_form(
            "/account/security/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert!(changed.status < 400, "{}", changed.body);

    let (_, claims) = verify(&server, &next_token(&mut rx).await).await;
    assert_eq!(claims["sid"], elsewhere_sid);
    let more = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(more.is_err(), "the session that changed the password stays");
}
