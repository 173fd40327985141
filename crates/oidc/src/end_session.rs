//! OpenID Connect RP-Initiated Logout 1.0: `/session/end`.
//!
//! A request that names the current session's user with a valid
//! `id_token_hint` ends the session at once. Any other request only shows a
//! confirmation page whose form (with a CSRF token derived from the session
//! cookie) ends it, so a cross-site link cannot sign anyone out (section 6).
//! The browser is sent back only to a `post_logout_redirect_uri` registered
//! for the client; otherwise it sees a page.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;
use zapini_core::audit::{Event, EventKind};
use zapini_core::crypto::{ct_eq, token_hash};
use zapini_core::flow::SsoSession;
use zapini_core::form::Params;

use crate::OidcState;
use crate::authorize::{append_query, current_session, session_cookie};
use crate::clients::Client;
use crate::error::{error_page, no_store, request_id, unavailable_page};
use crate::id_token_hint::{self, IdTokenHint};

/// Longest `state` echoed back, as at the authorization endpoint.
const MAX_STATE_LEN: usize = 2048;

/// A checked logout request.
struct Logout<'a> {
    client: Option<&'a Client>,
    /// Registered for `client` (checked).
    redirect: Option<String>,
    state: Option<String>,
    hint: Option<IdTokenHint>,
    logout_hint: Option<String>,
    locales: Vec<String>,
    /// The browser's language choice and `Accept-Language`.
    wish: zapini_core::flow::LanguageWish,
}

/// `GET /session/end`.
pub async fn get(
    State(state): State<OidcState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    end(&state, &headers, &params).await
}

/// `POST /session/end`: section 2 allows the parameters form-serialised.
pub async fn post(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return error_page(
            &state,
            &headers,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "error.request_invalid",
        );
    }
    end(&state, &headers, &Params::parse(&body)).await
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn end(state: &OidcState, headers: &HeaderMap, params: &Params) -> Response {
    let mut request = match validate(state, params) {
        Ok(request) => request,
        Err(key) => return error_page(state, headers, StatusCode::BAD_REQUEST, key),
    };
    request.wish = crate::error::language_wish(headers);
    let now = state.clock.now();
    let session = match current_session(state, headers, now).await {
        Ok(session) => session,
        Err(err) => return unavailable_page(state, headers, &err),
    };
    match session {
        // Nothing to end: the user is already signed out here.
        None => done(state, &request),
        Some(session) if tied_to(&request, &session, state).await => {
            match sign_out(state, headers, &session, now).await {
                Ok(cookie) => with_cookie(done(state, &request), cookie),
                Err(err) => unavailable_page(state, headers, &err),
            }
        }
        Some(_) => confirmation(state, headers, &request),
    }
}

/// Section 2: each parameter at most once; the hint must be ours; a
/// `client_id` must agree with the hint's audience; a redirect needs a
/// client that registered exactly that URI (section 3.1).
fn validate<'a>(state: &'a OidcState, params: &Params) -> Result<Logout<'a>, &'static str> {
    if params.first_duplicate().is_some() {
        return Err("error.request_invalid");
    }
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(id_token_hint::verify(state, token).ok_or("logout.hint_invalid")?),
        None => None,
    };
    let client = match params.get("client_id") {
        Some(id) => Some(state.clients.get(id).ok_or("logout.client_unknown")?),
        None => hint
            .as_ref()
            .and_then(|h| h.aud.first())
            .and_then(|id| state.clients.get(id)),
    };
    if let (Some(h), Some(c)) = (&hint, client)
        && !h.issued_to(&c.client_id)
    {
        return Err("logout.hint_invalid");
    }
    let redirect = match params.get("post_logout_redirect_uri") {
        Some(uri) if client.is_some_and(|c| c.post_logout_uri_allowed(uri)) => Some(uri.to_owned()),
        Some(_) => return Err("logout.redirect_unregistered"),
        None => None,
    };
    let client_state = params.get("state");
    if client_state.is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err("error.request_invalid");
    }
    Ok(Logout {
        client,
        redirect,
        state: client_state.map(str::to_owned),
        hint,
        logout_hint: params
            .get("logout_hint")
            .map(|h| h.chars().take(256).collect()),
        locales: params.list("ui_locales"),
        wish: zapini_core::flow::LanguageWish::default(),
    })
}

/// Whether the request is known to come for this session's user: a valid
/// hint naming them, and a `logout_hint`, if any, naming them too.
async fn tied_to(request: &Logout<'_>, session: &SsoSession, state: &OidcState) -> bool {
    let Some(hint) = &request.hint else {
        return false;
    };
    if hint.sub != session.user_id {
        return false;
    }
    match &request.logout_hint {
        None => true,
        Some(named) if *named == session.user_id => true,
        Some(named) => match state.store.users().find(&session.user_id).await {
            Ok(Some(user)) => user.email.eq_ignore_ascii_case(named.trim()),
            _ => false,
        },
    }
}

/// Ends the SSO session and revokes the refresh tokens that came from it;
/// returns the `Set-Cookie` that deletes the cookie.
async fn sign_out(
    state: &OidcState,
    headers: &HeaderMap,
    session: &SsoSession,
    now: i64,
) -> Result<HeaderValue, zapini_store::StoreError> {
    state
        .store
        .refresh_tokens()
        .revoke_sid(&session.sid, now)
        .await?;
    if let Some(cookie) = session_cookie(state, headers) {
        let key = token_hash(&cookie);
        state
            .store
            .sessions()
            .end(&session.user_id, &key, now)
            .await?;
        state.store.sessions().delete(&cookie).await?;
    }
    let event = Event {
        user_id: Some(session.user_id.clone()),
        kind: EventKind::SessionSignedOut,
        detail: json!({ "by": "relying_party" }),
        ip: None,
        user_agent: None,
        at: now,
    };
    if let Err(err) = state.store.audit().record(&event).await {
        tracing::error!(error = %err, "could not record a security event");
    }
    crate::backchannel::notify(state, &session.sid, &session.user_id, now).await;
    tracing::info!(user_id = %session.user_id, "signed out by a relying party");
    Ok(expired_cookie(state))
}

fn expired_cookie(state: &OidcState) -> HeaderValue {
    let name = zapini_core::flow::session_cookie_name(state.secure_cookies);
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let text = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    if !cookie.is_empty() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Section 3: back to the registered URI with `state`, or a page saying the
/// user is signed out.
fn done(state: &OidcState, request: &Logout<'_>) -> Response {
    if let Some(uri) = &request.redirect {
        let mut pairs = Vec::new();
        if let Some(s) = &request.state {
            pairs.push(("state", s.as_str()));
        }
        let location = if pairs.is_empty() {
            uri.clone()
        } else {
            append_query(uri, &pairs)
        };
        return (no_store(), Redirect::to(&location)).into_response();
    }
    let html = state.pages.page(
        &request.locales,
        &request.wish,
        "logged_out.html",
        json!({}),
    );
    (no_store(), Html(html)).into_response()
}

/// The CSRF token of the confirmation form: a hash of the session cookie
/// under a purpose label, which only this browser can know.
fn csrf_for(cookie: &str) -> String {
    token_hash(&format!("end-session-confirm:{cookie}"))
}

/// Section 6: a request not tied to the session asks the user first.
fn confirmation(state: &OidcState, headers: &HeaderMap, request: &Logout<'_>) -> Response {
    let Some(cookie) = session_cookie(state, headers) else {
        return done(state, request);
    };
    let mut fields: Vec<[&str; 2]> = Vec::new();
    if let Some(c) = request.client {
        fields.push(["client_id", &c.client_id]);
    }
    if let Some(uri) = &request.redirect {
        fields.push(["post_logout_redirect_uri", uri]);
    }
    if let Some(s) = &request.state {
        fields.push(["state", s]);
    }
    let locales = request.locales.join(" ");
    if !locales.is_empty() {
        fields.push(["ui_locales", &locales]);
    }
    let context = json!({
        "csrf": csrf_for(&cookie),
        "fields": fields,
        "client_name": request.client.map(|c| c.name.clone()),
    });
    let html = state.pages.page(
        &request.locales,
        &request.wish,
        "logout_confirm.html",
        context,
    );
    (no_store(), Html(html)).into_response()
}

/// `POST /session/end/confirm`: the user confirmed on our page.
pub async fn confirm(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if !is_form(&headers) || form.first_duplicate().is_some() {
        return error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    }
    let request = match validate(&state, &form) {
        Ok(mut request) if request.hint.is_none() => {
            request.wish = crate::error::language_wish(&headers);
            request
        }
        _ => {
            return error_page(
                &state,
                &headers,
                StatusCode::BAD_REQUEST,
                "error.request_invalid",
            );
        }
    };
    let now = state.clock.now();
    let session = match current_session(&state, &headers, now).await {
        Ok(session) => session,
        Err(err) => return unavailable_page(&state, &headers, &err),
    };
    let (Some(session), Some(cookie)) = (session, session_cookie(&state, &headers)) else {
        return done(&state, &request);
    };
    let presented = form.get("csrf").unwrap_or_default();
    if !ct_eq(presented.as_bytes(), csrf_for(&cookie).as_bytes()) {
        tracing::info!(request_id = %request_id(&headers), "sign-out confirmation refused: CSRF token mismatch");
        return error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    }
    match sign_out(&state, &headers, &session, now).await {
        Ok(cookie) => with_cookie(done(&state, &request), cookie),
        Err(err) => unavailable_page(&state, &headers, &err),
    }
}
