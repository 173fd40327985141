//! The language switcher: `POST /language` remembers the choice in a cookie
//! and goes back to the page it was made on.
//!
//! Order of precedence for a page's language: the relying party's
//! `ui_locales` (OIDC Core 3.1.2.1), then this cookie, then
//! `Accept-Language`, then the default. A choice made on a sign-in page also
//! replaces that sign-in's `ui_locales`, so the switch takes effect there too,
//! and a sign-in shown in the relying party's `ui_locales` leaves that
//! language in the cookie for the account pages.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use zapini_core::form::Params;

use crate::signin::{error_response, html_headers, load_bound, save};
use crate::{LoginState, cookies};

pub use zapini_core::flow::LANG_COOKIE;

/// How long the choice is remembered, in seconds.
pub(crate) const LANG_TTL: i64 = 365 * 24 * 3600;

/// `POST /language` (form: `lang`, optional `tx`).
pub async fn switch(State(state): State<LoginState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Params::parse(&body);
    let chosen = form.get("lang").and_then(|wanted| {
        state
            .templates
            .catalog()
            .languages()
            .find(|code| *code == wanted)
            .map(str::to_owned)
    });
    // Only the site's own pages may switch (Fetch Metadata): a cross-site
    // form cannot change someone's language.
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    if cross_site {
        return error_response(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            "error.request_invalid",
        );
    }
    let (None, Some(lang)) = (form.first_duplicate(), chosen) else {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    };
    let mut back = None;
    if let Some(tx_id) = form.get("tx") {
        let now = state.clock.now();
        if let Ok(mut tx) = load_bound(&state, &headers, tx_id, None, now).await {
            tx.ui_locales = vec![lang.clone()];
            if let Err(err) = save(&state, tx_id, &tx, now).await {
                tracing::warn!(error = %err, "could not store the sign-in's language");
            }
            // The sign-in's own page, whatever address the form was on.
            back = Some(format!("/login?tx={tx_id}"));
        }
    }
    let mut out = html_headers();
    cookies::append(
        &mut out,
        cookies::set(LANG_COOKIE, &lang, LANG_TTL, state.secure_cookies),
    );
    let back = back.unwrap_or_else(|| back_to(&headers));
    (out, Redirect::to(&back)).into_response()
}

/// The page the switch was made on, when it can be shown again by a GET:
/// the path and query of a same-origin `Referer` (pages send it within the
/// site only) for the sign-in and security pages; the security area for
/// anything else, such as the address of a form that was posted.
fn back_to(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|r| {
            let authority = match r.port() {
                Some(port) => format!("{}:{port}", r.host_str().unwrap_or_default()),
                None => r.host_str().unwrap_or_default().to_owned(),
            };
            host == Some(authority.as_str())
        })
        .map(|r| match r.query() {
            Some(q) => format!("{}?{q}", r.path()),
            None => r.path().to_owned(),
        })
        .filter(|p| {
            let path = p.split('?').next().unwrap_or_default();
            matches!(
                path,
                "/login" | "/login/recovery" | "/consent" | "/account/security"
            ) && p.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| "/account/security".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, referer: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h.insert(header::REFERER, referer.parse().unwrap());
        h
    }

    #[test]
    fn only_a_same_origin_page_is_gone_back_to() {
        let same = headers("id.example.com", "https://id.example.com/login?tx=abc");
        assert_eq!(back_to(&same), "/login?tx=abc");
        let port = headers("localhost:8080", "http://localhost:8080/account/security");
        assert_eq!(back_to(&port), "/account/security");
        let posted = headers(
            "id.example.com",
            "https://id.example.com/account/security/passkeys",
        );
        assert_eq!(back_to(&posted), "/account/security", "a POST-only address");
        let other = headers("id.example.com", "https://evil.example/login");
        assert_eq!(back_to(&other), "/account/security");
        let sneaky = headers("id.example.com", "https://id.example.com//evil.example/x");
        assert_eq!(back_to(&sneaky), "/account/security");
    }
}
