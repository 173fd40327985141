//! The JWK Set document (RFC 7517 5) referenced by `jwks_uri`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::OidcState;

pub async fn handler(State(state): State<OidcState>) -> Response {
    let mut response = Json(state.keys.jwks()).into_response();
    let headers = response.headers_mut();
    // Five minutes: key rotation waits longer than this before signing with
    // a newly published key.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
