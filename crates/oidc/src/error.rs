//! The one place that turns protocol errors into HTTP answers: RFC 6749 5.2
//! JSON for the token endpoint, RFC 6750 3 `WWW-Authenticate` for bearer
//! resources, and a plain page for browsers that cannot be sent back.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::OidcState;

/// An OAuth 2.0 / OIDC error: the registered code and a human description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new("invalid_grant", description)
    }

    pub fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed")
    }

    pub fn unavailable() -> Self {
        Self::new(
            "temporarily_unavailable",
            "the service is briefly unavailable; try again",
        )
    }

    /// The answer of the token endpoint (RFC 6749 5.2).
    pub fn token_response(&self) -> Response {
        let status = match self.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (status, no_store(), axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 5.2: a 401 names the authentication scheme.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"zapini-id\""),
            );
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 5.1).
pub fn no_store() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

/// The request id set by the server's middleware, for error pages and logs.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The languages the browser asks for: the footer's choice, then
/// `Accept-Language`.
pub fn language_wish(headers: &HeaderMap) -> zapini_core::flow::LanguageWish {
    let chosen = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| zapini_core::flow::cookie_value(v, zapini_core::flow::LANG_COOKIE))
        .map(str::to_owned);
    let accept_language = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    zapini_core::flow::LanguageWish {
        chosen,
        accept_language,
    }
}

/// A plain page for a browser whose request cannot be answered by redirect
/// (RFC 6749 4.1.2.1: never redirect to an unverified URI).
pub fn error_page(
    state: &OidcState,
    headers: &HeaderMap,
    status: StatusCode,
    key: &str,
) -> Response {
    let id = request_id(headers);
    let html = state.pages.error_page(&language_wish(headers), key, &id);
    (status, no_store(), Html(html)).into_response()
}

/// Logs a failure of a dependency once, with the request id, and returns
/// the error page a browser sees.
pub fn unavailable_page(
    state: &OidcState,
    headers: &HeaderMap,
    err: &dyn std::error::Error,
) -> Response {
    tracing::error!(request_id = %request_id(headers), error = %err, "store unavailable");
    error_page(
        state,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "error.unavailable",
    )
}
