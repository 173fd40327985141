//! The hosted UI of Zapini ID: the sign-in steps, the account area, the
//! pages' translations, CSRF protection and the SSO session cookie.
//!
//! Protocol rules live in the `oidc` crate; this crate only authenticates
//! people and sends them back to `/authorize/continue`.

pub mod account;
mod consent;
mod cookies;
mod events;
pub mod i18n;
mod language;
mod passkey_pages;
pub mod passkeys;
pub mod password;
pub mod second_factor;
pub mod signin;
mod step_up;
pub mod templates;
mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use zapini_core::Clock;
use zapini_core::crypto::Sealer;
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
    /// Seals TOTP seeds and keys the hashes of recovery codes.
    pub sealer: Sealer,
    /// Whether every password sign-in needs a second factor (enrolling one
    /// first if the user has none).
    pub require_2fa: bool,
    /// The WebAuthn relying party (rp id, name and allowed origins).
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// Told when a user signs a session out, for back-channel logout.
    pub session_ended: Arc<dyn zapini_core::flow::SessionEnded>,
    /// Sign-in checks by method and outcome, for `/metrics`.
    pub counters: Arc<zapini_core::metrics::Counters>,
}

/// The login and account routes.
pub fn router(state: LoginState) -> Router {
    Router::new()
        .route("/login", get(signin::show).post(signin::submit))
        .route("/login/totp", post(signin::submit_code))
        .route(
            "/login/recovery",
            get(signin::show_recovery).post(signin::submit_code),
        )
        .route("/login/enroll", post(signin::submit_enroll))
        .route("/login/finish", post(signin::submit_finish))
        .route("/login/passkey", post(passkey_pages::signin_submit))
        .route("/consent", get(consent::show).post(consent::submit))
        .route(
            "/login/passkey/options",
            post(passkey_pages::signin_options),
        )
        .route("/account", get(account::home))
        .route("/account/security", get(account::show))
        .route("/account/security/totp/start", post(account::totp_start))
        .route(
            "/account/security/totp/confirm",
            post(account::totp_confirm),
        )
        .route(
            "/account/security/totp/disable",
            post(account::totp_disable),
        )
        .route(
            "/account/security/recovery/renew",
            post(account::recovery_renew),
        )
        .route(
            "/account/security/passkeys",
            post(passkey_pages::register_submit),
        )
        .route(
            "/account/security/passkeys/options",
            post(passkey_pages::register_options),
        )
        .route(
            "/account/security/passkeys/remove",
            post(passkey_pages::remove),
        )
        .route("/account/security/password", post(account::change_password))
        .route("/account/security/sessions/end", post(account::end_session))
        .route("/account/security/apps/revoke", post(consent::revoke))
        .route("/logout", post(account::logout))
        .route("/language", post(language::switch))
        .route("/static/{file}", get(templates::asset))
        .with_state(state)
}
