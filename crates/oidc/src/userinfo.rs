//! The UserInfo endpoint (OIDC Core 5.3), a bearer-protected resource
//! (RFC 6750).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::OidcState;
use crate::error::no_store;
use crate::tokens::check_access_token;
use zapini_core::form::Params;

pub async fn get(State(state): State<OidcState>, headers: HeaderMap) -> Response {
    match bearer_from_header(&headers) {
        Ok(Some(token)) => answer(&state, &token).await,
        Ok(None) => challenge(StatusCode::UNAUTHORIZED, None),
        Err(()) => challenge(StatusCode::BAD_REQUEST, Some("invalid_request")),
    }
}

/// RFC 6750 2.1 and 2.2: the token in the header or in a form body, never in
/// both (2: "MUST NOT use more than one method").
pub async fn post(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let params = if is_form {
        Params::parse(&body)
    } else {
        Params::default()
    };
    if params.is_duplicated("access_token") {
        return challenge(StatusCode::BAD_REQUEST, Some("invalid_request"));
    }
    let from_header = match bearer_from_header(&headers) {
        Ok(token) => token,
        Err(()) => return challenge(StatusCode::BAD_REQUEST, Some("invalid_request")),
    };
    match (from_header, params.get("access_token")) {
        (Some(_), Some(_)) => challenge(StatusCode::BAD_REQUEST, Some("invalid_request")),
        (Some(token), None) => answer(&state, &token).await,
        (None, Some(token)) => answer(&state, token).await,
        (None, None) => challenge(StatusCode::UNAUTHORIZED, None),
    }
}

fn bearer_from_header(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let value = value.to_str().map_err(|_| ())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(()),
    }
}

async fn answer(state: &OidcState, token: &str) -> Response {
    let now = state.clock.now();
    // A client's token for itself (client_credentials) has no user to
    // describe.
    let Some(access) = check_access_token(state, token, now)
        .await
        .filter(|a| !a.for_client)
    else {
        return challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"));
    };
    if !access.scope.iter().any(|s| s == "openid") {
        return challenge(StatusCode::FORBIDDEN, Some("insufficient_scope"));
    }
    let user = match state.store.users().find(&access.sub).await {
        Ok(Some(user)) if !user.disabled => user,
        Ok(_) => return challenge(StatusCode::UNAUTHORIZED, Some("invalid_token")),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };

    // OIDC Core 5.4: claims by scope.
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(user.id.clone()));
    if access.scope.iter().any(|s| s == "profile")
        && let Some(name) = &user.name
    {
        claims.insert("name".into(), Value::from(name.clone()));
    }
    if access.scope.iter().any(|s| s == "email") {
        claims.insert("email".into(), Value::from(user.email.clone()));
        claims.insert("email_verified".into(), Value::from(user.email_verified));
    }
    // OIDC Core 5.5: claims asked for one by one, whatever the scope.
    crate::claims::user_claims(&user, &access.userinfo_claims, &mut claims);
    tracing::debug!(client_id = %access.client_id, "userinfo answered");
    (no_store(), Json(Value::Object(claims))).into_response()
}

/// RFC 6750 3: the `WWW-Authenticate` challenge. Without credentials the
/// answer carries no error code (3.1).
fn challenge(status: StatusCode, error: Option<&str>) -> Response {
    let value = match error {
        Some(code) => format!("Bearer realm=\"zapini-id\", error=\"{code}\""),
        None => "Bearer realm=\"zapini-id\"".to_owned(),
    };
    let mut response = (status, no_store()).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}
