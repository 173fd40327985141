//! A tiny relying party: signs in through Zapini ID with the `openidconnect`
//! crate and shows the verified ID token, so you can see `amr`, `acr` and
//! `auth_time` for yourself.
//!
//! ```text
//! cargo run -p zapini-id-tests --example relying-party
//! ```
//!
//! Then open http://localhost:9090. Settings come from the environment:
//! `RP_ISSUER` (default http://localhost:8080), `RP_CLIENT_ID` (demo),
//! `RP_CLIENT_SECRET` (the demo client's secret from config/clients/demo.toml),
//! `RP_LISTEN` (127.0.0.1:9090). The redirect URI is
//! `http://localhost:<port>/callback`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use zapini_id_tests::rp::Rp;

const DEMO_SECRET: &str = "demo-secret-for-local-testing-only-0123456789";

struct Pending {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
}

#[derive(Clone)]
struct App {
    client: Arc<Rp>,
    http: reqwest::Client,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Demo app</title><h1>Demo app</h1>\
         <p><a href=\"/login\">Sign in with Zapini ID</a></p>\
         <p><a href=\"/login?acr=mfa\">Sign in, asking for two factors (acr_values=mfa)</a></p>",
    )
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    acr: Option<String>,
}

async fn login(State(app): State<App>, Query(q): Query<LoginQuery>) -> Redirect {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = app
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    if let Some(acr) = q.acr {
        request = request.add_extra_param("acr_values", acr);
    }
    let (url, state, nonce) = request.url();
    if let Ok(mut pending) = app.pending.lock() {
        pending.insert(state.secret().clone(), Pending { verifier, nonce });
    }
    Redirect::to(url.as_str())
}

#[derive(serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(app): State<App>, Query(cb): Query<Callback>) -> Response {
    if let Some(error) = cb.error {
        let description = cb.error_description.unwrap_or_default();
        return Html(format!(
            "<h1>Sign-in refused</h1><p>{}: {}</p>",
            escape(&error),
            escape(&description)
        ))
        .into_response();
    }
    let pending = cb
        .state
        .and_then(|s| app.pending.lock().ok().and_then(|mut p| p.remove(&s)));
    let (Some(code), Some(pending)) = (cb.code, pending) else {
        return Html("<h1>Unknown or missing state</h1><p><a href=\"/\">Start again</a></p>")
            .into_response();
    };

    let exchange = match app.client.exchange_code(AuthorizationCode::new(code)) {
        Ok(e) => e.set_pkce_verifier(pending.verifier),
        Err(e) => return Html(format!("<p>{}</p>", escape(&e.to_string()))).into_response(),
    };
    let token = match exchange.request_async(&app.http).await {
        Ok(t) => t,
        Err(e) => {
            return Html(format!(
                "<p>Token request failed: {}</p>",
                escape(&e.to_string())
            ))
            .into_response();
        }
    };
    let Some(id_token) = token.id_token() else {
        return Html("<p>No ID token</p>").into_response();
    };
    let verifier = app.client.id_token_verifier();
    if let Err(e) = id_token.claims(&verifier, &pending.nonce) {
        return Html(format!(
            "<p>ID token refused: {}</p>",
            escape(&e.to_string())
        ))
        .into_response();
    }
    let claims = zapini_id_tests::jwt_payload(&id_token.to_string());
    let pretty = serde_json::to_string_pretty(&claims).unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Signed in</title><h1>Signed in</h1>\
         <p>amr: <b>{}</b> &middot; acr: <b>{}</b></p>\
         <p>The ID token was verified against the provider's JWKS. Its claims:</p><pre>{}</pre>\
         <p><a href=\"/\">Again</a></p>",
        escape(&claims["amr"].to_string()),
        escape(&claims["acr"].to_string()),
        escape(&pretty)
    ))
    .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = env_or("RP_ISSUER", "http://localhost:8080");
    let listen = env_or("RP_LISTEN", "127.0.0.1:9090");
    let port = listen.rsplit(':').next().unwrap_or("9090").to_owned();
    let http = zapini_id_tests::http();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone())?, &http).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(env_or("RP_CLIENT_ID", "demo")),
        Some(ClientSecret::new(env_or("RP_CLIENT_SECRET", DEMO_SECRET))),
    )
    .set_redirect_uri(RedirectUrl::new(format!(
        "http://localhost:{port}/callback"
    ))?);

    let app = App {
        client: Arc::new(client),
        http,
        pending: Arc::default(),
    };
    let router = Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("demo relying party for {issuer}: open http://localhost:{port}");
    axum::serve(listener, router).await?;
    Ok(())
}
