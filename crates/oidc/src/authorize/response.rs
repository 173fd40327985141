//! Writing authorization responses to a verified redirect URI: in its
//! query, or as a form the browser posts (OAuth 2.0 Form Post Response
//! Mode), with `iss` (RFC 9207) on every one.

use axum::response::{Html, IntoResponse, Redirect, Response};
use zapini_core::flow::ResponseMode;

use crate::OidcState;
use crate::error::{OAuthError, no_store};

/// Where an error can be sent once the redirect URI is verified.
pub(super) struct ErrorTarget<'a> {
    pub(super) redirect_uri: &'a str,
    pub(super) state: Option<&'a str>,
    pub(super) mode: ResponseMode,
}

/// RFC 6749 4.1.2.1 error response, with `iss` per RFC 9207 2.
pub(super) fn redirect_error(
    state: &OidcState,
    target: &ErrorTarget<'_>,
    err: &OAuthError,
) -> Response {
    let mut pairs = vec![
        ("error", err.code),
        ("error_description", err.description.as_ref()),
    ];
    if let Some(s) = target.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    respond(state, (target.redirect_uri, target.mode), &pairs, &[])
}

/// Sends an authorization response to a verified redirect URI: in its
/// query, or (OAuth 2.0 Form Post Response Mode 2) as a form the browser
/// posts there. The form has a visible button and is sent by the page's
/// script from `/static`, since the CSP allows no inline script.
pub(super) fn respond(
    state: &OidcState,
    (uri, mode): (&str, ResponseMode),
    pairs: &[(&str, &str)],
    locales: &[String],
) -> Response {
    match mode {
        ResponseMode::Query => see_other(&append_query(uri, pairs)),
        ResponseMode::FormPost => {
            let fields: Vec<[&str; 2]> = pairs.iter().map(|(k, v)| [*k, *v]).collect();
            let context = serde_json::json!({ "action": uri, "fields": fields });
            // The page only says "Continue" until the script sends it.
            let wish = zapini_core::flow::LanguageWish::default();
            let html = state.pages.page(locales, &wish, "form_post.html", context);
            (no_store(), Html(html)).into_response()
        }
    }
}

/// Adds parameters to a registered redirect URI without re-serialising it
/// (RFC 6749 3.1.2: its own query component must be retained).
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

pub(super) fn see_other(location: &str) -> Response {
    (no_store(), Redirect::to(location)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_to_an_existing_one() {
        assert_eq!(
            append_query("https://a/cb", &[("code", "x y")]),
            "https://a/cb?code=x+y"
        );
        assert_eq!(
            append_query("https://a/cb?t=1", &[("code", "c")]),
            "https://a/cb?t=1&code=c"
        );
    }
}
