//! The consent page (OIDC Core 3.1.2.4): after sign-in, before a code is
//! issued, the user allows or refuses what a client asks for.
//!
//! `oidc` decides when the page is needed and answers the client; this page
//! only records the user's answer, in the durable consent table (when
//! allowed) and as a mark on the pending authorization, then sends the
//! browser back to `/authorize/continue`.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;
use zapini_core::audit::EventKind;
use zapini_core::crypto::{ct_eq, token_hash};
use zapini_core::flow::{ConsentAnswer, PendingAuthorization, ns};
use zapini_core::form::Params;

use crate::LoginState;
use crate::account::{self, Signed, posted, signed_in};
use crate::events::{Origin, Peer, record};
use crate::signin::{error_response, html_headers, lang_for, unavailable};

/// Scopes the page can explain; others are listed by name.
const EXPLAINED: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The form's CSRF token: bound to the session cookie, which another site
/// cannot read, and to this request, so that a token cannot be replayed on
/// another request's page.
fn csrf_for(cookie: &str, authz: &str) -> String {
    token_hash(&format!("consent\0{authz}\0{cookie}"))
}

fn bad_request(state: &LoginState, headers: &HeaderMap, key: &str) -> Response {
    error_response(state, headers, StatusCode::BAD_REQUEST, key)
}

/// The pending authorization `id`, if it is a plausible id and still waits.
async fn pending(
    state: &LoginState,
    headers: &HeaderMap,
    id: Option<&str>,
) -> Result<(String, PendingAuthorization), Response> {
    let Some(id) = id.filter(|id| !id.is_empty() && id.len() <= 64) else {
        return Err(bad_request(state, headers, "error.request_expired"));
    };
    let now = state.clock.now();
    let eph = state.store.ephemeral();
    match eph
        .get::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, id, now)
        .await
    {
        Ok(Some(p)) => Ok((id.to_owned(), p)),
        Ok(None) => Err(bad_request(state, headers, "error.request_expired")),
        Err(err) => Err(unavailable(state, headers, &err)),
    }
}

/// The signed-in user, or the way to sign in for this request.
async fn user(state: &LoginState, headers: &HeaderMap, id: &str) -> Result<Signed, Response> {
    match signed_in(state, headers).await? {
        Some(signed) => Ok(signed),
        None => Err(Redirect::to(&format!("/login?authz={id}")).into_response()),
    }
}

/// `GET /consent?authz=…`.
pub async fn show(
    State(state): State<LoginState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = Params::parse(query.unwrap_or_default().as_bytes());
    if q.first_duplicate().is_some() {
        return bad_request(&state, &headers, "error.request_invalid");
    }
    let (id, pending) = match pending(&state, &headers, q.get("authz")).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let signed = match user(&state, &headers, &id).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let earlier = state
        .store
        .consents()
        .find(&signed.user.id, &pending.client_id)
        .await;
    let allowed = match earlier {
        Ok(found) => found.map(|c| c.scope).unwrap_or_default(),
        Err(err) => return unavailable(&state, &headers, &err),
    };
    page(&state, &headers, &signed, &id, &pending, &allowed)
}

fn page(
    state: &LoginState,
    headers: &HeaderMap,
    signed: &Signed,
    id: &str,
    pending: &PendingAuthorization,
    allowed: &[String],
) -> Response {
    let scopes: Vec<_> = pending
        .consent_scope()
        .iter()
        .map(|s| {
            json!({
                "name": s,
                "key": EXPLAINED.contains(&s.as_str()).then(|| format!("scope.{s}")),
                "new": !allowed.is_empty() && !allowed.contains(s),
            })
        })
        .collect();
    let lang = lang_for(state, headers, &pending.ui_locales);
    let html = state.templates.page(
        "consent.html",
        &lang,
        minijinja::context! {
            client_name => pending.client_name.clone(),
            email => signed.user.email.clone(),
            scopes => minijinja::Value::from(minijinja::value::Serde(&scopes)),
            more => !allowed.is_empty(),
            authz => id,
            csrf => csrf_for(&signed.cookie, id),
        },
    );
    (html_headers(), Html(html)).into_response()
}

/// `POST /consent`: `authz`, `csrf` and `decision` (`allow` or `deny`).
/// The scopes are those of the pending authorization, never the form's.
pub async fn submit(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Params::parse(&body);
    if form.first_duplicate().is_some() {
        return bad_request(&state, &headers, "error.request_invalid");
    }
    let allowed = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return bad_request(&state, &headers, "error.request_invalid"),
    };
    let (id, pending) = match pending(&state, &headers, form.get("authz")).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let signed = match user(&state, &headers, &id).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let csrf = form.get("csrf").unwrap_or_default();
    if !ct_eq(csrf.as_bytes(), csrf_for(&signed.cookie, &id).as_bytes()) {
        return bad_request(&state, &headers, "error.request_invalid");
    }
    if let Err(response) = answer(&state, &headers, peer, &signed, &id, &pending, allowed).await {
        return response;
    }
    Redirect::to(&format!("/authorize/continue?authz={id}")).into_response()
}

/// Records the answer: the durable consent and a security event when
/// allowed, and the mark `/authorize/continue` reads in both cases.
async fn answer(
    state: &LoginState,
    headers: &HeaderMap,
    peer: IpAddr,
    signed: &Signed,
    id: &str,
    pending: &PendingAuthorization,
    allowed: bool,
) -> Result<(), Response> {
    let now = state.clock.now();
    let user_id = &signed.user.id;
    if allowed {
        let consents = state.store.consents();
        let client = (pending.client_id.as_str(), pending.client_name.as_str());
        let scope = pending.consent_scope();
        if let Err(err) = consents.grant(user_id, client, &scope, now).await {
            return Err(unavailable(state, headers, &err));
        }
        let origin = Origin::from_headers(headers, Some(peer));
        let detail = json!({"client_id": pending.client_id, "scope": scope});
        record(
            state,
            &origin,
            Some(user_id),
            EventKind::ConsentGranted,
            detail,
        )
        .await;
    }
    let mark = ConsentAnswer {
        user_id: user_id.clone(),
        allowed,
    };
    let stored = state
        .store
        .ephemeral()
        .put(ns::CONSENT, id, &mark, now + MARK_TTL);
    stored
        .await
        .map_err(|err| unavailable(state, headers, &err))
}

/// How long the answer waits for `/authorize/continue`, which the browser
/// is sent to at once.
const MARK_TTL: i64 = 10 * 60;

/// `POST /account/security/apps/revoke`: forgets the consent to `client`
/// and revokes the refresh tokens the user's sign-ins gave that client, so
/// its offline access ends too; the next sign-in asks again.
pub async fn revoke(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signed, form) = match posted(&state, &headers, &body, false).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let user_id = &signed.user.id;
    let client_id = form.get("client").unwrap_or_default();
    let revoked = async {
        let tokens = state.store.refresh_tokens();
        tokens.revoke_user_client(user_id, client_id, now).await?;
        state.store.consents().revoke(user_id, client_id).await
    };
    match revoked.await {
        Ok(true) => {}
        Ok(false) => {
            let gone = Some("security.app_gone");
            return account::page(&state, &headers, &signed, None, gone).await;
        }
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let event = (EventKind::ConsentRevoked, json!({ "client_id": client_id }));
    account::recorded(
        &state,
        &headers,
        peer,
        &signed,
        event,
        "security.app_revoked",
    )
    .await
}
