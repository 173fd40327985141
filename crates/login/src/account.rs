//! The account area: who is signed in, and signing out.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use zapini_core::crypto::{ct_eq, token_hash};
use zapini_core::flow::{SsoSession, session_cookie_name};
use zapini_core::form::Params;
use zapini_core::user::User;

use crate::signin::error_response;
use crate::{LoginState, cookies};

/// The CSRF token of forms in the account area: derived from the session
/// cookie, which a cross-site page cannot read, so nothing extra is stored.
fn csrf_for(cookie: &str) -> String {
    token_hash(&format!("csrf\0{cookie}"))
}

async fn signed_in(
    state: &LoginState,
    headers: &HeaderMap,
) -> Result<Option<(String, SsoSession, User)>, Response> {
    let now = state.clock.now();
    let Some(cookie) = cookies::read(headers, session_cookie_name(state.secure_cookies)) else {
        return Ok(None);
    };
    let unavailable = |_| {
        error_response(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        )
    };
    let Some(session) = state
        .store
        .sessions()
        .find(&cookie, now)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let user = state
        .store
        .users()
        .find(&session.user_id)
        .await
        .map_err(unavailable)?;
    Ok(user.filter(|u| !u.disabled).map(|u| (cookie, session, u)))
}

/// `GET /account`.
pub async fn show(State(state): State<LoginState>, headers: HeaderMap) -> Response {
    let (cookie, session, user) = match signed_in(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(response) => return response,
    };
    let lang = state.templates.catalog().negotiate(
        &[],
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let html = state.templates.page(
        "account.html",
        &lang,
        minijinja::context! {
            email => user.email,
            methods => session.auth.amr().join(", "),
            acr => session.auth.acr().as_str(),
            csrf => csrf_for(&cookie),
        },
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// `POST /logout`: ends the SSO session of this browser.
pub async fn logout(State(state): State<LoginState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Params::parse(&body);
    let name = session_cookie_name(state.secure_cookies);
    let Some(cookie) = cookies::read(&headers, name) else {
        return Redirect::to("/login").into_response();
    };
    let csrf = form.get("csrf").unwrap_or_default();
    if !ct_eq(csrf.as_bytes(), csrf_for(&cookie).as_bytes()) {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    }
    if let Err(err) = state.store.sessions().delete(&cookie).await {
        tracing::error!(error = %err, "could not delete a session");
        return error_response(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    }
    let mut out = HeaderMap::new();
    cookies::append(&mut out, cookies::set(name, "", 0, state.secure_cookies));
    (out, Redirect::to("/login")).into_response()
}
