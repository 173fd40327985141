//! The state that carries a sign-in across the `oidc` and `login` crates.
//!
//! `/authorize` validates a request and saves it as a [`PendingAuthorization`];
//! the login pages authenticate the user, record an [`SsoSession`], and send
//! the browser back to `/authorize/continue`, which mints an
//! [`AuthorizationCode`]. All three live in the ephemeral store.

use serde::{Deserialize, Serialize};

use crate::auth::{Acr, Authentication};
use crate::clock::UnixTime;

/// Name of the SSO session cookie; `__Host-` is added when the issuer is
/// served over HTTPS (the prefix requires `Secure`).
pub const SESSION_COOKIE: &str = "zid_session";

/// Name of the cookie that binds a login transaction to the browser.
pub const LOGIN_COOKIE: &str = "zid_login";

/// Name of the cookie that holds the language picked in the page footer.
pub const LANG_COOKIE: &str = "zid_lang";

/// The languages a browser asks for, best first, for pages that have no
/// sign-in of their own: the footer's choice (cookie), then
/// `Accept-Language` (kept whole for the negotiation's q-values).
#[derive(Debug, Clone, Default)]
pub struct LanguageWish {
    pub chosen: Option<String>,
    pub accept_language: Option<String>,
}

/// The session cookie's name: `__Host-` prefixed when cookies are `Secure`.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-zid_session"
    } else {
        SESSION_COOKIE
    }
}

/// The login-binding cookie's name, prefixed like the session cookie.
pub fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-zid_login"
    } else {
        LOGIN_COOKIE
    }
}

/// The value of cookie `name` in a `Cookie` request header (RFC 6265 5.4).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Ephemeral-store namespaces, one per kind of state.
pub mod ns {
    pub const PENDING_AUTHORIZATION: &str = "authz";
    pub const SESSION: &str = "session";
    pub const LOGIN: &str = "login";
    pub const CODE: &str = "code";
    pub const REPLAYED_CODE: &str = "replayed_code";
    pub const GRANT: &str = "grant";
    /// `jti`s of revoked access tokens that have no grant stored (a
    /// client's tokens for itself, and those issued by a refresh), until
    /// the tokens expire.
    pub const REVOKED_ACCESS_TOKEN: &str = "revoked_access_token";
    /// `jti`s of `private_key_jwt` client assertions, until they expire.
    pub const CLIENT_ASSERTION: &str = "client_assertion_jti";
    /// Pending authorizations whose level the user cannot reach (a `phr`
    /// request for a user without a passkey), marked by the login pages.
    pub const UNMET_ACR: &str = "unmet_acr";
    /// The user's answer on the consent page, a [`super::ConsentAnswer`]
    /// under the pending authorization's id, written by the login pages.
    pub const CONSENT: &str = "consent";
}

/// A validated authorization request waiting for the user to authenticate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub response_mode: ResponseMode,
    /// The least level the sign-in must reach.
    pub min_acr: Acr,
    /// `prompt=login` or an exceeded `max_age` (OIDC Core 3.1.2.1): the id of
    /// the authentication event this request refuses; any other satisfies it.
    pub stale_auth: Option<String>,
    pub login_hint: Option<String>,
    pub ui_locales: Vec<String>,
    pub created_at: UnixTime,
    /// Claims asked for one by one in the `claims` parameter (OIDC Core
    /// 5.5), for the ID token and for UserInfo.
    #[serde(default)]
    pub id_token_claims: Vec<String>,
    #[serde(default)]
    pub userinfo_claims: Vec<String>,
    /// `prompt=consent` (OIDC Core 3.1.2.1): the user is asked even if an
    /// earlier consent covers the scope, or the client is first-party.
    #[serde(default)]
    pub prompt_consent: bool,
}

/// The answer given on the consent page for one pending authorization
/// (OIDC Core 3.1.2.4), by the user it names. `/authorize/continue` honours
/// it only for that user's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentAnswer {
    pub user_id: String,
    pub allowed: bool,
}

/// How the authorization response reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// A browser's single sign-on session, keyed by the hash of its cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SsoSession {
    /// Public identifier, the `sid` claim (OIDC Front-/Back-Channel Logout).
    pub sid: String,
    pub user_id: String,
    pub auth: Authentication,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl PendingAuthorization {
    /// What the user consents to (OIDC Core 3.1.2.4): the scope, plus the
    /// scope whose claims the `claims` parameter asks for one by one (OIDC
    /// Core 5.5), since those are released without their scope.
    pub fn consent_scope(&self) -> Vec<String> {
        let mut all = self.scope.clone();
        let claims = self.id_token_claims.iter().chain(&self.userinfo_claims);
        for claim in claims {
            let implied = match claim.as_str() {
                "name" => "profile",
                "email" | "email_verified" => "email",
                _ => continue,
            };
            if !all.iter().any(|s| s == implied) {
                all.push(implied.to_owned());
            }
        }
        all
    }
}

impl SsoSession {
    /// Whether this session satisfies a pending request on its own.
    pub fn satisfies(&self, pending: &PendingAuthorization) -> bool {
        self.auth.acr() >= pending.min_acr
            && pending.stale_auth.as_deref() != Some(self.auth.id.as_str())
    }
}

/// What an authorization code stands for, stored under the code's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub user_id: String,
    pub sid: String,
    pub auth: Authentication,
    pub expires_at: UnixTime,
    /// Claims of the `claims` parameter (OIDC Core 5.5).
    #[serde(default)]
    pub id_token_claims: Vec<String>,
    #[serde(default)]
    pub userinfo_claims: Vec<String>,
}

/// A grant: what one token response for a user issued. The access token of
/// a code exchange carries its id as `jti`, and deleting the grant revokes
/// it (RFC 6749 4.1.2: a code used twice revokes the tokens issued from
/// it). Access tokens from a refresh, and a client's tokens for itself,
/// have no stored grant: theirs is rebuilt from the token's own claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// The user; for a `client_credentials` grant, the client itself.
    pub user_id: String,
    pub scope: Vec<String>,
    pub expires_at: UnixTime,
    /// The refresh-token family issued with this grant, if any: revoking
    /// the family revokes this grant's access tokens too (RFC 7009 2.1).
    #[serde(default)]
    pub family: Option<String>,
    /// Issued to a client for itself (RFC 6749 4.4), with no user behind it.
    #[serde(default)]
    pub for_client: bool,
    /// Claims UserInfo returns whatever the scope (OIDC Core 5.5).
    #[serde(default)]
    pub userinfo_claims: Vec<String>,
}

/// Told when a browser's SSO session is signed out, so that the clients it
/// served can be notified (OIDC Back-Channel Logout). Implemented by `oidc`,
/// called by the `login` pages; it must not block the caller.
pub trait SessionEnded: Send + Sync + 'static {
    /// Session `sid` of `user_id` has ended.
    fn session_ended(&self, sid: &str, user_id: &str, now: UnixTime);
}

/// Renders the plain error page a browser sees when the request cannot be
/// sent back to a client (an unknown client or redirect URI), and the few
/// other pages the protocol endpoints show (the form-post response, the
/// sign-out confirmation). Implemented by the `login` crate's templates and
/// handed to `oidc` by the binary.
pub trait ErrorPages: Send + Sync + 'static {
    fn error_page(&self, wish: &LanguageWish, message_key: &str, request_id: &str) -> String;

    /// Renders the page template `name` with `context` (a JSON object).
    /// `locales` (the relying party's `ui_locales`) come first, then `wish`.
    fn page(
        &self,
        locales: &[String],
        wish: &LanguageWish,
        name: &str,
        context: serde_json::Value,
    ) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn pending(min_acr: Acr, stale_auth: Option<&str>) -> PendingAuthorization {
        PendingAuthorization {
            id: "p".into(),
            client_id: "c".into(),
            client_name: "C".into(),
            redirect_uri: "https://rp.example/cb".into(),
            scope: vec!["openid".into()],
            state: None,
            nonce: None,
            code_challenge: None,
            response_mode: ResponseMode::Query,
            min_acr,
            stale_auth: stale_auth.map(str::to_owned),
            login_hint: None,
            ui_locales: vec![],
            created_at: 1_000,
            id_token_claims: vec![],
            userinfo_claims: vec![],
            prompt_consent: false,
        }
    }

    fn session(id: &str, methods: Vec<AuthMethod>, time: UnixTime) -> SsoSession {
        SsoSession {
            sid: "s".into(),
            user_id: "u".into(),
            auth: Authentication::new(id.into(), methods, time),
            created_at: time,
            expires_at: time + 3600,
            user_agent: None,
            ip: None,
        }
    }

    #[test]
    fn claims_asked_one_by_one_count_as_their_scope_for_consent() {
        let mut p = pending(Acr::Pwd, None);
        p.userinfo_claims = vec!["email".into(), "name".into()];
        p.id_token_claims = vec!["email_verified".into(), "acr".into()];
        assert_eq!(p.consent_scope(), ["openid", "email", "profile"]);
    }

    #[test]
    fn cookie_values_are_found_by_exact_name() {
        let header = "a=1; zid_session=abc; zid_session_x=no";
        assert_eq!(cookie_value(header, "zid_session"), Some("abc"));
        assert_eq!(cookie_value(header, "zid"), None);
        assert_eq!(cookie_value("zid_session=", "zid_session"), None);
    }

    #[test]
    fn session_satisfies_only_at_or_above_the_level() {
        let pwd = session("a", vec![AuthMethod::Password], 900);
        assert!(pwd.satisfies(&pending(Acr::Pwd, None)));
        assert!(!pwd.satisfies(&pending(Acr::Mfa, None)));
    }

    #[test]
    fn forced_fresh_login_needs_another_event_even_in_the_same_second() {
        let old = session("old", vec![AuthMethod::Password], 1_000);
        let fresh = session("new", vec![AuthMethod::Password], 1_000);
        assert!(!old.satisfies(&pending(Acr::Pwd, Some("old"))));
        assert!(fresh.satisfies(&pending(Acr::Pwd, Some("old"))));
    }
}
