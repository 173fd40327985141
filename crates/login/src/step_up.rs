//! Step-up: a signed-in user whose session is below the level a request
//! asks for is asked only for what is missing, and a request for `phr`
//! from a user without a passkey is handed back as unmet.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use zapini_core::crypto::token_hash;
use zapini_core::flow::{PendingAuthorization, ns, session_cookie_name};
use zapini_core::{Acr, AuthMethod};
use zapini_store::StoreError;

use crate::signin::{LoginTx, Step, error_response, html_headers, unavailable};
use crate::{LoginState, cookies};

/// How long the "cannot be met" mark waits for `/authorize/continue`.
const UNMET_TTL: i64 = 10 * 60;

/// The step a sign-in for `pending` starts at when the browser's session
/// needs only a second factor: its event included a password, it is still
/// acceptable to the request (no `prompt=login`, `max_age` or other user),
/// and the user has a factor that reaches the level. The new event is the
/// password of the session's event plus that factor.
pub(crate) async fn second_step(
    state: &LoginState,
    headers: &HeaderMap,
    pending: Option<&PendingAuthorization>,
    now: i64,
) -> Result<Option<Step>, StoreError> {
    let Some(pending) = pending else {
        return Ok(None);
    };
    let name = session_cookie_name(state.secure_cookies);
    let Some(cookie) = cookies::read(headers, name) else {
        return Ok(None);
    };
    let Some(session) = state.store.sessions().find(&cookie, now).await? else {
        return Ok(None);
    };
    let refused = pending.stale_auth.as_deref() == Some(session.auth.id.as_str());
    let password = session.auth.methods.contains(&AuthMethod::Password);
    if refused || !password || session.auth.acr() >= pending.min_acr {
        return Ok(None);
    }
    let Some(user) = state.store.users().find(&session.user_id).await? else {
        return Ok(None);
    };
    // DESIGN: phr is reached only with a passkey, so TOTP is not offered.
    let totp = pending.min_acr < Acr::Phr && state.store.totps().get(&user.id).await?.is_some();
    let passkey = !state.store.passkeys().list(&user.id).await?.is_empty();
    if user.disabled || !(totp || passkey) {
        return Ok(None);
    }
    Ok(Some(Step::SecondFactor {
        user_id: user.id,
        email: user.email,
        totp,
        passkey,
    }))
}

/// The user proved their password but has no passkey, so a `phr` request
/// cannot be met: the transaction ends, the pending authorization is marked,
/// and `/authorize/continue` answers the client with
/// `unmet_authentication_requirements` (OIDC Core 3.1.2.6, RFC 9470 3).
pub(crate) async fn unmet(
    state: &LoginState,
    headers: &HeaderMap,
    tx_id: &str,
    tx: &LoginTx,
    now: i64,
) -> Response {
    let Some(authz) = &tx.authz else {
        let key = "error.request_expired";
        return error_response(state, headers, StatusCode::BAD_REQUEST, key);
    };
    let eph = state.store.ephemeral();
    let marked = async {
        eph.take::<LoginTx>(ns::LOGIN, &token_hash(tx_id), now)
            .await?;
        eph.put(ns::UNMET_ACR, authz, &true, now + UNMET_TTL).await
    };
    if let Err(err) = marked.await {
        return unavailable(state, headers, &err);
    }
    let next = format!("/authorize/continue?authz={authz}");
    (html_headers(), Redirect::to(&next)).into_response()
}
