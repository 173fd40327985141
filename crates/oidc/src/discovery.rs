//! OpenID Connect Discovery 1.0, section 3: the provider metadata.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use crate::OidcState;
use crate::assertion::ASSERTION_ALGS;
use crate::authorize::DISPLAY_VALUES;
use crate::clients::{GrantType, KNOWN_SCOPES};
use crate::documents::public_json;

/// Client authentication methods, those that authenticate first.
const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// The metadata document; every value says what the server really does.
pub fn metadata(state: &OidcState) -> Value {
    json!({
        // Discovery 3: REQUIRED members.
        "issuer": state.issuer,
        "authorization_endpoint": state.endpoint("/authorize"),
        "token_endpoint": state.endpoint("/token"),
        "jwks_uri": state.endpoint("/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": state.keys.algorithms(),
        // RECOMMENDED and OPTIONAL members.
        "userinfo_endpoint": state.endpoint("/userinfo"),
        "scopes_supported": KNOWN_SCOPES,
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        // RFC 8414 2: revocation (RFC 7009) and introspection (RFC 7662).
        // Public clients may revoke their tokens; only clients that
        // authenticate may introspect.
        "revocation_endpoint": state.endpoint("/revoke"),
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint": state.endpoint("/introspect"),
        "introspection_endpoint_auth_methods_supported": &AUTH_METHODS[..3],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
            "azp", "sid", "at_hash", "name", "email", "email_verified",
        ],
        "claim_types_supported": ["normal"],
        // OIDC Core 5.5: name, email and email_verified one by one, and an
        // acr request (essential or not) that the sign-in must meet.
        "claims_parameter_supported": true,
        "acr_values_supported": ["pwd", "mfa", "phr"],
        "display_values_supported": DISPLAY_VALUES,
        // OpenID Connect RP-Initiated Logout 1.0, section 2.1.
        "end_session_endpoint": state.endpoint("/session/end"),
        // OpenID Connect Back-Channel Logout 1.0, section 2.1.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        // Discovery 3: request_uri_parameter_supported defaults to true, so
        // it must be said explicitly that neither request object is read.
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "ui_locales_supported": state.ui_locales,
        // RFC 7636 and RFC 9207.
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    })
}

pub async fn handler(State(state): State<OidcState>) -> Response {
    let body = state.documents.discovery(|| metadata(&state));
    public_json(body, 300)
}
