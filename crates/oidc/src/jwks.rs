//! The JWK Set document (RFC 7517 5) referenced by `jwks_uri`.

use axum::extract::State;
use axum::response::Response;

use crate::OidcState;
use crate::documents::public_json;

/// How long relying parties may cache the JWKS, in seconds. A rotated key
/// starts to sign only after `key_activation_delay`, which the settings
/// check keeps longer than this plus the reload interval.
pub const MAX_AGE: i64 = 300;

pub async fn handler(State(state): State<OidcState>) -> Response {
    let now = state.clock.now();
    let body = state.documents.jwks(now, || state.keys.jwks(now));
    public_json(body, MAX_AGE)
}
