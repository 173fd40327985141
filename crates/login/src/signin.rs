//! The sign-in page and its password step.
//!
//! A login transaction is created when the page is shown and bound to the
//! browser by a cookie; the form carries the transaction id and a CSRF token.
//! A submission from another browser, or with a stale token, is refused.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use zapini_core::crypto::{ct_eq, random_token, token_hash};
use zapini_core::flow::{
    PendingAuthorization, SsoSession, login_cookie_name, ns, session_cookie_name,
};
use zapini_core::form::Params;
use zapini_core::{AuthMethod, Authentication, Secret};

use crate::password::MAX_PASSWORD_BYTES;
use crate::{LoginState, cookies};

/// How long a sign-in page stays usable, in seconds.
const LOGIN_TX_TTL: i64 = 30 * 60;

/// How long the browser-binding cookie lives, in seconds.
const BINDING_TTL: i64 = 24 * 3600;

/// A login transaction: one attempt to sign in, in one browser.
#[derive(Debug, Serialize, Deserialize)]
struct LoginTx {
    /// Hash of the browser-binding cookie.
    binding: String,
    csrf: Secret,
    /// The pending authorization this sign-in serves, if any.
    authz: Option<String>,
    /// Preferred languages from the authorization request.
    ui_locales: Vec<String>,
    client_name: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    authz: Option<String>,
}

#[derive(Serialize)]
struct SigninPage<'a> {
    tx: &'a str,
    csrf: &'a str,
    client_name: Option<&'a str>,
    username: Option<&'a str>,
    error_key: Option<&'a str>,
    notice_key: Option<&'a str>,
}

fn html_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

fn lang_for(state: &LoginState, headers: &HeaderMap, ui_locales: &[String]) -> String {
    let preferred: Vec<&str> = ui_locales.iter().map(String::as_str).collect();
    state
        .templates
        .catalog()
        .negotiate(&preferred, accept_language(headers))
}

pub(crate) fn error_response(
    state: &LoginState,
    headers: &HeaderMap,
    status: StatusCode,
    key: &str,
) -> Response {
    let lang = lang_for(state, headers, &[]);
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let html = state.templates.page(
        "error.html",
        &lang,
        minijinja::context! { message_key => key, request_id => request_id },
    );
    (status, html_headers(), Html(html)).into_response()
}

fn unavailable(state: &LoginState, headers: &HeaderMap, err: &dyn std::error::Error) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::error!(request_id, error = %err, "store unavailable");
    error_response(
        state,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "error.unavailable",
    )
}

/// `GET /login`: the first sign-in page.
pub async fn show(
    State(state): State<LoginState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let now = state.clock.now();
    let pending = match q.authz.as_deref().filter(|id| id.len() <= 64) {
        Some(id) => match state
            .store
            .ephemeral()
            .get::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, id, now)
            .await
        {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                return error_response(
                    &state,
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "error.request_expired",
                );
            }
            Err(err) => return unavailable(&state, &headers, &err),
        },
        None => None,
    };
    render_fresh(&state, &headers, pending.as_ref(), None, now).await
}

/// Creates a login transaction and renders the sign-in form for it.
async fn render_fresh(
    state: &LoginState,
    headers: &HeaderMap,
    pending: Option<&PendingAuthorization>,
    notice_key: Option<&str>,
    now: i64,
) -> Response {
    let mut out = html_headers();
    let binding_name = login_cookie_name(state.secure_cookies);
    let binding = match cookies::read(headers, binding_name) {
        Some(value) => value,
        None => {
            let Ok(value) = random_token(32) else {
                return error_response(
                    state,
                    headers,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "error.unavailable",
                );
            };
            let value = value.expose().to_owned();
            cookies::append(
                &mut out,
                cookies::set(binding_name, &value, BINDING_TTL, state.secure_cookies),
            );
            value
        }
    };

    let (Ok(tx_id), Ok(csrf)) = (random_token(32), random_token(32)) else {
        return error_response(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let tx = LoginTx {
        binding: token_hash(&binding),
        csrf,
        authz: pending.map(|p| p.id.clone()),
        ui_locales: pending.map(|p| p.ui_locales.clone()).unwrap_or_default(),
        client_name: pending.map(|p| p.client_name.clone()),
    };
    let stored = state
        .store
        .ephemeral()
        .put(
            ns::LOGIN,
            &token_hash(tx_id.expose()),
            &tx,
            now + LOGIN_TX_TTL,
        )
        .await;
    if let Err(err) = stored {
        return unavailable(state, headers, &err);
    }

    let lang = lang_for(state, headers, &tx.ui_locales);
    let page = SigninPage {
        tx: tx_id.expose(),
        csrf: tx.csrf.expose(),
        client_name: tx.client_name.as_deref(),
        username: pending.and_then(|p| p.login_hint.as_deref()),
        error_key: None,
        notice_key,
    };
    (out, Html(state.templates.page("signin.html", &lang, page))).into_response()
}

/// `POST /login`: the password step.
pub async fn submit(State(state): State<LoginState>, headers: HeaderMap, body: Bytes) -> Response {
    let now = state.clock.now();
    let form = Params::parse(&body);
    if form.first_duplicate().is_some() {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    }

    let Some(tx_id) = form.get("tx").filter(|t| t.len() <= 64) else {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    };
    let tx_key = token_hash(tx_id);
    let tx: LoginTx = match state.store.ephemeral().get(ns::LOGIN, &tx_key, now).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return expired(&state, &headers, None, now).await,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let binding =
        cookies::read(&headers, login_cookie_name(state.secure_cookies)).unwrap_or_default();
    let csrf = form.get("csrf").unwrap_or_default();
    if !ct_eq(token_hash(&binding).as_bytes(), tx.binding.as_bytes())
        || !ct_eq(csrf.as_bytes(), tx.csrf.expose().as_bytes())
    {
        tracing::info!("sign-in form refused: browser binding or CSRF token mismatch");
        return expired(&state, &headers, tx.authz.as_deref(), now).await;
    }

    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = Secret::new(form.get("password").unwrap_or_default());
    let lang = lang_for(&state, &headers, &tx.ui_locales);
    let retry = |error_key: &'static str| {
        let page = SigninPage {
            tx: tx_id,
            csrf: tx.csrf.expose(),
            client_name: tx.client_name.as_deref(),
            username: Some(username.as_str()).filter(|u| !u.is_empty()),
            error_key: Some(error_key),
            notice_key: None,
        };
        (
            html_headers(),
            Html(state.templates.page("signin.html", &lang, page)),
        )
            .into_response()
    };
    if username.is_empty() || password.is_empty() || username.len() > 254 {
        return retry("signin.missing");
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return retry("signin.invalid");
    }

    let found = match state.store.users().find_by_email(&username).await {
        Ok(found) => found,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    // The hash is verified whether or not the user exists, so that an
    // unknown address costs the same time and gets the same answer.
    let hash = found.as_ref().and_then(|f| f.password_hash.as_ref());
    let verified = state.hasher.verify(&password, hash).await;
    let user = match found {
        Some(f) if verified && !f.user.disabled => f.user,
        _ => {
            tracing::info!("password sign-in failed");
            return retry("signin.invalid");
        }
    };

    // The transaction is finished: take it so the form cannot be replayed.
    match state
        .store
        .ephemeral()
        .take::<LoginTx>(ns::LOGIN, &tx_key, now)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => return expired(&state, &headers, tx.authz.as_deref(), now).await,
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let Ok(event) = random_token(16) else {
        return error_response(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let auth = Authentication::new(event.expose().to_owned(), vec![AuthMethod::Password], now);
    start_session(&state, &headers, &user.id, auth, tx.authz.as_deref(), now).await
}

async fn expired(
    state: &LoginState,
    headers: &HeaderMap,
    authz: Option<&str>,
    now: i64,
) -> Response {
    let pending = match authz {
        Some(id) => state
            .store
            .ephemeral()
            .get::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, id, now)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    if authz.is_some() && pending.is_none() {
        return error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_expired",
        );
    }
    render_fresh(
        state,
        headers,
        pending.as_ref(),
        Some("signin.expired"),
        now,
    )
    .await
}

/// Records a new SSO session, replacing any previous one in this browser
/// (a fresh cookie value on every sign-in prevents session fixation), and
/// sends the browser on.
async fn start_session(
    state: &LoginState,
    headers: &HeaderMap,
    user_id: &str,
    auth: Authentication,
    authz: Option<&str>,
    now: i64,
) -> Response {
    let cookie_name = session_cookie_name(state.secure_cookies);
    if let Some(old) = cookies::read(headers, cookie_name) {
        let _ = state.store.sessions().delete(&old).await;
    }
    let Ok(sid) = random_token(16) else {
        return error_response(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let session = SsoSession {
        sid: sid.expose().to_owned(),
        user_id: user_id.to_owned(),
        auth,
        created_at: now,
        expires_at: now + state.session_ttl,
        user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
        ip: None,
    };
    let secret = match state.store.sessions().create(&session).await {
        Ok(secret) => secret,
        Err(err) => return unavailable(state, headers, &err),
    };
    tracing::info!(user_id, "signed in");

    let mut out = html_headers();
    cookies::append(
        &mut out,
        cookies::set(
            cookie_name,
            secret.expose(),
            state.session_ttl,
            state.secure_cookies,
        ),
    );
    let next = match authz {
        Some(id) => format!("/authorize/continue?authz={id}"),
        None => "/account".to_owned(),
    };
    (out, Redirect::to(&next)).into_response()
}
