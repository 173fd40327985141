//! The OpenID Connect authorization server of Zapini ID.
//!
//! Protocol endpoints (discovery, JWKS, authorize, token, userinfo,
//! revocation, introspection, end_session), client authentication, the client registry
//! loaded from files, and signing keys; both of the last are replaced whole
//! on reload (`live`). People-facing pages
//! live in the `login` crate; this crate only sends browsers there and takes
//! them back at `/authorize/continue`.

pub mod assertion;
pub mod authorize;
pub mod backchannel;
pub mod claims;
pub mod client_auth;
pub mod clients;
pub mod discovery;
pub mod documents;
pub mod end_session;
pub mod error;
pub mod id_token_hint;
pub mod introspection;
pub mod jwks;
pub mod keys;
pub mod live;
mod refresh;
pub mod remote_jwks;
pub mod revocation;
pub mod token;
mod tokens;
pub mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use zapini_core::Clock;
use zapini_core::flow::ErrorPages;
use zapini_store::Store;

pub use clients::{Client, ClientRegistry};
pub use keys::KeyRing;
pub use live::LiveState;

/// Lifetimes of what the server issues, in seconds.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Authorization codes; RFC 6749 4.1.2 recommends at most ten minutes,
    /// the product allows at most 60 seconds.
    pub code_ttl: i64,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    /// How long a pending authorization waits for the user to sign in.
    pub pending_ttl: i64,
    /// The lifetime of a refresh-token family, counted from the sign-in's
    /// code exchange; rotation does not extend it.
    pub refresh_token_ttl: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            code_ttl: 60,
            access_token_ttl: 600,
            id_token_ttl: 600,
            pending_ttl: 1800,
            refresh_token_ttl: 30 * 24 * 3600,
        }
    }
}

impl TokenSettings {
    /// How long a retired signing key stays published: the longest lifetime
    /// of a JWT it signed (ID, access or logout token; refresh tokens are
    /// opaque), plus the leeway relying parties give for clock skew.
    pub fn key_retention(&self) -> i64 {
        self.id_token_ttl
            .max(self.access_token_ttl)
            .max(backchannel::LOGOUT_TOKEN_TTL)
            + keys::EXPIRY_LEEWAY
    }
}

/// What the protocol endpoints share.
#[derive(Clone)]
pub struct OidcState {
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
    pub store: Store,
    pub clients: Arc<ClientRegistry>,
    pub keys: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
    pub pages: Arc<dyn ErrorPages>,
    pub tokens: TokenSettings,
    /// Whether cookies get the `Secure` attribute and `__Host-` prefix.
    pub secure_cookies: bool,
    /// Whether every sign-in needs two factors (the `mfa` level at least).
    pub require_2fa: bool,
    /// Languages of the hosted pages, for `ui_locales_supported`.
    pub ui_locales: Vec<String>,
    /// The outgoing HTTP client: logout tokens, client key sets.
    pub http: reqwest::Client,
    /// Key sets of clients that publish them at a `jwks_uri`.
    pub remote_keys: Arc<remote_jwks::RemoteKeySets>,
    /// Tokens issued, by grant type, for `/metrics`.
    pub counters: Arc<zapini_core::metrics::Counters>,
    /// Discovery and the JWK Set, serialised; replaced with the keys.
    pub documents: Arc<documents::Documents>,
}

impl OidcState {
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

/// The protocol routes; each request sees the state in force when it came.
pub fn router(state: LiveState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::handler))
        .route("/jwks", get(jwks::handler))
        .route("/authorize", get(authorize::get).post(authorize::post))
        .route("/authorize/continue", get(authorize::resume))
        .route("/token", axum::routing::post(token::handler))
        .route("/userinfo", get(userinfo::get).post(userinfo::post))
        .route("/revoke", axum::routing::post(revocation::handler))
        .route("/introspect", axum::routing::post(introspection::handler))
        .route(
            "/session/end",
            get(end_session::get).post(end_session::post),
        )
        .route(
            "/session/end/confirm",
            axum::routing::post(end_session::confirm),
        )
        .with_state(state)
}
