//! The JWK Set document (RFC 7517 5) referenced by `jwks_uri`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::OidcState;

/// How long relying parties may cache the JWKS, in seconds. A rotated key
/// starts to sign only after `key_activation_delay`, which the settings
/// check keeps longer than this plus the reload interval.
pub const MAX_AGE: i64 = 300;

pub async fn handler(State(state): State<OidcState>) -> Response {
    let mut response = Json(state.keys.jwks(state.clock.now())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={MAX_AGE}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
