//! The passkey pages: sign-in with a passkey (button or autofill), a passkey
//! as the second step after a password, and adding and removing passkeys in
//! the security area.
//!
//! The browser fetches the ceremony options as JSON, runs the WebAuthn
//! ceremony, and posts the answer in an ordinary form, so the server's answer
//! is a normal page or redirect, as for the password and TOTP steps.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};
use zapini_core::AuthMethod;
use zapini_core::audit::EventKind;
use zapini_core::crypto::{ct_eq, random_token, token_hash};
use zapini_core::metrics::SignInMethod;

use crate::LoginState;
use crate::account::{Signed, device_label, page, posted, recorded};
use crate::events::{Origin, Peer, record};
use crate::passkeys::{
    Assertion, CEREMONY_TTL, NS_ASSERTION, NS_REGISTRATION, PasskeyError, Registration, clean_name,
    creation_options, exclusions, parsed, register, request_options, user_handle, verify,
};
use crate::signin::{
    Step, Submission, error_response, finish, html_headers, lang_for, message, render, submission,
    unavailable,
};

/// A JSON answer that is never cached.
fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The JSON answer when the store or the random source failed.
fn json_unavailable() -> Response {
    json_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": "unavailable" }),
    )
}

/// `POST /login/passkey/options` (form: `tx`, `csrf`): a challenge for the
/// transaction's current step, as `navigator.credentials.get()` options.
pub async fn signin_options(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(s) = submission(&state, &headers, peer, &body).await else {
        // The page is stale; the script reloads it when the user asks.
        return json_answer(StatusCode::CONFLICT, json!({ "error": "expired" }));
    };
    let started = match &s.tx.step {
        Step::Password => state
            .webauthn
            .start_discoverable_authentication()
            .map(|(rcr, st)| (rcr, Assertion::Discoverable(st))),
        Step::SecondFactor {
            user_id,
            passkey: true,
            ..
        } => {
            let keys = match state.store.passkeys().list(user_id).await {
                Ok(rows) => parsed(&rows),
                Err(err) => return unavailable(&state, &headers, &err),
            };
            state
                .webauthn
                .start_passkey_authentication(&keys)
                .map(|(rcr, st)| {
                    let assertion = Assertion::SecondStep {
                        user_id: user_id.clone(),
                        state: st,
                    };
                    (rcr, assertion)
                })
        }
        _ => return json_answer(StatusCode::CONFLICT, json!({ "error": "wrong_step" })),
    };
    let (rcr, assertion) = match started {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, "could not start a passkey assertion");
            return json_unavailable();
        }
    };
    let stored = state
        .store
        .ephemeral()
        .put(
            NS_ASSERTION,
            &token_hash(&s.tx_id),
            &assertion,
            s.now + CEREMONY_TTL,
        )
        .await;
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not store a passkey challenge");
        return json_unavailable();
    }
    json_answer(StatusCode::OK, request_options(&rcr))
}

fn retry(state: &LoginState, headers: &HeaderMap, s: &Submission, key: &str) -> Response {
    let error = message(state, headers, &s.tx, key);
    render(state, headers, &s.tx_id, &s.tx, Some(error), None)
}

/// `POST /login/passkey` (form: `tx`, `csrf`, `credential`): the browser's
/// answer to the challenge. Completes the sign-in, alone on the first step
/// or after the password on the second.
pub async fn signin_submit(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = match submission(&state, &headers, peer, &body).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    // Taken, not read: each challenge is answered once (WebAuthn L2 13.4.3).
    let assertion = match state
        .store
        .ephemeral()
        .take::<Assertion>(NS_ASSERTION, &token_hash(&s.tx_id), s.now)
        .await
    {
        Ok(Some(a)) => a,
        Ok(None) => return retry(&state, &headers, &s, "passkey.expired"),
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let step_matches = match (&s.tx.step, &assertion) {
        (Step::Password, Assertion::Discoverable(_)) => true,
        (Step::SecondFactor { user_id, .. }, Assertion::SecondStep { user_id: asked, .. }) => {
            user_id == asked
        }
        _ => false,
    };
    if !step_matches {
        return render(&state, &headers, &s.tx_id, &s.tx, None, None);
    }
    let second_step = matches!(assertion, Assertion::SecondStep { .. });
    let raw = s.form.get("credential").unwrap_or_default();
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(raw) else {
        state.counters.sign_in(SignInMethod::Passkey, false);
        return retry(&state, &headers, &s, "passkey.failed");
    };

    let verified = match verify(&state.webauthn, &state.store, assertion, &answer, s.now).await {
        Ok(v) => v,
        Err((_, PasskeyError::Store(err))) => return unavailable(&state, &headers, &err),
        Err((owner, err)) => {
            state.counters.sign_in(SignInMethod::Passkey, false);
            tracing::info!(reason = err.reason(), error = %err, "passkey refused");
            // Anyone who knows a credential id can send a bad assertion, so
            // only a refusal that needed a valid signature (a counter going
            // backwards: a cloned authenticator) goes into the owner's log;
            // the others are recorded without a user.
            let owner = owner.filter(|_| matches!(err, PasskeyError::Counter));
            record(
                &state,
                &s.origin,
                owner.as_deref(),
                EventKind::PasskeyRefused,
                json!({ "reason": err.reason(), "during": "sign_in" }),
            )
            .await;
            let key = match err {
                PasskeyError::Unknown => "passkey.unknown",
                _ => "passkey.failed",
            };
            return retry(&state, &headers, &s, key);
        }
    };
    let user = match state.store.users().find(&verified.user_id).await {
        Ok(user) => user.filter(|u| !u.disabled),
        Err(err) => return unavailable(&state, &headers, &err),
    };
    state
        .counters
        .sign_in(SignInMethod::Passkey, user.is_some());
    if user.is_none() {
        record(
            &state,
            &s.origin,
            Some(&verified.user_id),
            EventKind::SignInFailed,
            json!({ "step": "passkey", "reason": "disabled" }),
        )
        .await;
        return retry(&state, &headers, &s, "passkey.failed");
    }
    record(
        &state,
        &s.origin,
        Some(&verified.user_id),
        EventKind::PasskeyUsed,
        json!({ "name": verified.name, "passkey": verified.passkey_id }),
    )
    .await;
    let passkey = AuthMethod::Passkey {
        synced: verified.synced,
    };
    let methods = if second_step {
        vec![AuthMethod::Password, passkey]
    } else {
        vec![passkey]
    };
    finish(&state, &headers, &s, &verified.user_id, methods).await
}

/// `POST /account/security/passkeys/options` (form: `csrf`): starts adding a
/// passkey. Answers `{ceremony, options}`, or `{location}` when the user must
/// sign in (again) first.
pub async fn register_options(
    State(state): State<LoginState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = match posted(&state, &headers, &body, true).await {
        Ok((signed, _)) => signed,
        Err(response) => {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return match location {
                Some(location) => {
                    json_answer(StatusCode::UNAUTHORIZED, json!({ "location": location }))
                }
                None => json_answer(StatusCode::BAD_REQUEST, json!({ "error": "invalid" })),
            };
        }
    };
    let now = state.clock.now();
    let user = &signed.user;
    let loaded = async {
        let handle = user_handle(&state.store, &user.id).await?;
        let existing = state.store.passkeys().list(&user.id).await?;
        Ok::<_, zapini_store::StoreError>((handle, existing))
    };
    let (handle, existing) = match loaded.await {
        Ok(found) => found,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let display = user.name.clone().unwrap_or_else(|| user.email.clone());
    let started = state.webauthn.start_passkey_registration(
        handle,
        &user.email,
        &display,
        Some(exclusions(&existing)),
    );
    let (Ok((ccr, reg_state)), Ok(ceremony)) = (started, random_token(32)) else {
        return json_unavailable();
    };
    let pending = Registration {
        session: signed.key(),
        user_id: user.id.clone(),
        user_handle: handle.to_string(),
        state: reg_state,
    };
    let stored = state
        .store
        .ephemeral()
        .put(
            NS_REGISTRATION,
            &token_hash(ceremony.expose()),
            &pending,
            now + CEREMONY_TTL,
        )
        .await;
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not store a passkey registration");
        return json_unavailable();
    }
    json_answer(
        StatusCode::OK,
        json!({ "ceremony": ceremony.expose(), "options": creation_options(&ccr) }),
    )
}

/// `POST /account/security/passkeys` (form: `csrf`, `ceremony`, `name`,
/// `credential`): verifies the new credential and stores it.
pub async fn register_submit(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signed, form) = match posted(&state, &headers, &body, true).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let (Some(ceremony), Some(raw)) = (form.get("ceremony"), form.get("credential")) else {
        // The form was sent without the script: nothing to verify.
        return page(&state, &headers, &signed, None, Some("passkey.needs_js")).await;
    };
    if ceremony.is_empty() || raw.is_empty() || ceremony.len() > 64 {
        return page(&state, &headers, &signed, None, Some("passkey.needs_js")).await;
    }
    let pending = match state
        .store
        .ephemeral()
        .take::<Registration>(NS_REGISTRATION, &token_hash(ceremony), now)
        .await
    {
        Ok(Some(p)) => p,
        Ok(None) => return page(&state, &headers, &signed, None, Some("passkey.expired")).await,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    // The ceremony is bound to the session that started it.
    if !ct_eq(pending.session.as_bytes(), signed.key().as_bytes())
        || pending.user_id != signed.user.id
    {
        return page(&state, &headers, &signed, None, Some("passkey.expired")).await;
    }
    let origin = Origin::from_headers(&headers, Some(peer));
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(raw) else {
        return page(&state, &headers, &signed, None, Some("passkey.failed")).await;
    };
    let fallback = origin
        .user_agent
        .as_deref()
        .and_then(device_label)
        .unwrap_or_else(|| "Passkey".to_owned());
    let name = clean_name(form.get("name").unwrap_or_default(), &fallback);
    let Ok(id) = random_token(16) else {
        return error_response(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let id = id.expose().to_owned();
    match register(
        &state.webauthn,
        &state.store,
        pending,
        &answer,
        &name,
        id,
        now,
    )
    .await
    {
        Ok(row) => {
            let detail =
                json!({ "name": row.name, "passkey": row.id, "synced": row.backup_eligible });
            let event = (EventKind::PasskeyAdded, detail);
            recorded(&state, &headers, peer, &signed, event, "passkey.added").await
        }
        Err(PasskeyError::Store(err)) => unavailable(&state, &headers, &err),
        Err(err) => {
            tracing::info!(reason = err.reason(), error = %err, "passkey registration refused");
            record(
                &state,
                &origin,
                Some(&signed.user.id),
                EventKind::PasskeyRefused,
                json!({ "reason": err.reason(), "during": "registration" }),
            )
            .await;
            let key = match err {
                PasskeyError::Duplicate => "passkey.duplicate",
                _ => "passkey.register_failed",
            };
            page(&state, &headers, &signed, None, Some(key)).await
        }
    }
}

/// `POST /account/security/passkeys/remove` (form: `csrf`, `id`, and
/// `confirm=yes` once the user has confirmed on the page this shows first).
pub async fn remove(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signed, form) = match posted(&state, &headers, &body, true).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = form.get("id").unwrap_or_default();
    let rows = match state.store.passkeys().list(&signed.user.id).await {
        Ok(rows) => rows,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let Some(row) = rows.into_iter().find(|r| r.id == id) else {
        return page(&state, &headers, &signed, None, Some("passkey.not_found")).await;
    };
    if form.get("confirm") != Some("yes") {
        return confirm_page(&state, &headers, &signed, &row.id, &row.name);
    }
    match state
        .store
        .passkeys()
        .remove(&signed.user.id, &row.id)
        .await
    {
        Ok(true) => {}
        Ok(false) => return page(&state, &headers, &signed, None, Some("passkey.not_found")).await,
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let detail = json!({ "name": row.name, "passkey": row.id });
    let event = (EventKind::PasskeyRemoved, detail);
    recorded(&state, &headers, peer, &signed, event, "passkey.removed").await
}

fn confirm_page(
    state: &LoginState,
    headers: &HeaderMap,
    signed: &Signed,
    id: &str,
    name: &str,
) -> Response {
    let lang = lang_for(state, headers, &[]);
    let html = state.templates.page(
        "passkey_remove.html",
        &lang,
        minijinja::context! {
            id => id,
            name => name,
            csrf => crate::account::csrf_for(&signed.cookie),
        },
    );
    (html_headers(), Html(html)).into_response()
}
