//! Reading and writing the cookies of the hosted pages.

use axum::http::{HeaderMap, HeaderValue, header};
use zapini_core::flow::cookie_value;

/// The value of cookie `name` in the request, across all `Cookie` headers.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, name).map(str::to_owned))
}

/// A `Set-Cookie` value: host-only, whole site, `HttpOnly`, `SameSite=Lax`
/// (the redirect back from a relying party is a top-level navigation), and
/// `Secure` when served over HTTPS. `max_age` 0 deletes the cookie.
pub fn set(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds a `Set-Cookie` header to `headers`.
pub fn append(headers: &mut HeaderMap, cookie: HeaderValue) {
    if !cookie.is_empty() {
        headers.append(header::SET_COOKIE, cookie);
    }
}
