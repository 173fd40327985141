//! The hosted UI of Zapini ID: the sign-in steps, the account area, the
//! pages' translations, CSRF protection and the SSO session cookie.
//!
//! Protocol rules live in the `oidc` crate; this crate only authenticates
//! people and sends them back to `/authorize/continue`.

pub mod account;
mod cookies;
pub mod i18n;
pub mod password;
pub mod signin;
pub mod templates;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use zapini_core::Clock;
use zapini_store::Store;

pub use password::{PasswordHasher, PasswordPolicy};
pub use templates::Templates;

/// What the login pages share.
#[derive(Clone)]
pub struct LoginState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub templates: Arc<Templates>,
    pub hasher: PasswordHasher,
    /// Whether cookies get `Secure` and the `__Host-` prefix (HTTPS issuer).
    pub secure_cookies: bool,
    /// Lifetime of an SSO session, in seconds.
    pub session_ttl: i64,
}

/// The login and account routes.
pub fn router(state: LoginState) -> Router {
    Router::new()
        .route("/login", get(signin::show).post(signin::submit))
        .route("/account", get(account::show))
        .route("/logout", axum::routing::post(account::logout))
        .route("/static/{file}", get(templates::asset))
        .with_state(state)
}
