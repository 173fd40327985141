//! The account security area: two-factor status and setup, recovery codes,
//! password change, sessions, connected apps (consents, revoked in
//! `consent`), and the user's recent security events.
//!
//! Turning 2FA off, renewing recovery codes and changing the password need an
//! authentication from the last few minutes; an older session is sent through
//! sign-in again first.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;
use zapini_core::Secret;
use zapini_core::audit::EventKind;
use zapini_core::crypto::{ct_eq, token_hash};
use zapini_core::flow::{SsoSession, ns, session_cookie_name};
use zapini_core::form::Params;
use zapini_core::user::User;

use crate::events::{Origin, Peer, record};
use crate::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::second_factor::{self as factor, SEED_PURPOSE};
use crate::signin::{error_response, html_headers, lang_for, turn_on, unavailable};
use crate::{LoginState, cookies};

/// An authentication older than this (seconds) must be repeated before a
/// sensitive change.
pub const REAUTH_WINDOW: i64 = 5 * 60;

/// Namespace of TOTP seeds waiting for confirmation in the account area.
const PENDING_ENROLMENT: &str = "enroll";
const ENROLMENT_TTL: i64 = 10 * 60;

/// The CSRF token of forms in the account area: derived from the session
/// cookie, which a cross-site page cannot read, so nothing extra is stored.
pub(crate) fn csrf_for(cookie: &str) -> String {
    token_hash(&format!("csrf\0{cookie}"))
}

/// The signed-in user of this request.
pub(crate) struct Signed {
    pub(crate) cookie: String,
    pub(crate) session: SsoSession,
    pub(crate) user: User,
}

impl Signed {
    pub(crate) fn key(&self) -> String {
        token_hash(&self.cookie)
    }
}

pub(crate) async fn signed_in(
    state: &LoginState,
    headers: &HeaderMap,
) -> Result<Option<Signed>, Response> {
    let now = state.clock.now();
    let Some(cookie) = cookies::read(headers, session_cookie_name(state.secure_cookies)) else {
        return Ok(None);
    };
    let fail = |err: zapini_store::StoreError| unavailable(state, headers, &err);
    let Some(session) = state
        .store
        .sessions()
        .find(&cookie, now)
        .await
        .map_err(fail)?
    else {
        return Ok(None);
    };
    let user = state
        .store
        .users()
        .find(&session.user_id)
        .await
        .map_err(fail)?;
    Ok(user.filter(|u| !u.disabled).map(|user| Signed {
        cookie,
        session,
        user,
    }))
}

fn to_signin(reauth: bool) -> Response {
    let query = if reauth { "&reauth=1" } else { "" };
    Redirect::to(&format!("/login?return_to=/account/security{query}")).into_response()
}

/// A posted account form: the user, its fields, CSRF checked.
pub(crate) async fn posted(
    state: &LoginState,
    headers: &HeaderMap,
    body: &[u8],
    sensitive: bool,
) -> Result<(Signed, Params), Response> {
    let form = Params::parse(body);
    if form.first_duplicate().is_some() {
        return Err(error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        ));
    }
    let Some(signed) = signed_in(state, headers).await? else {
        return Err(to_signin(false));
    };
    let csrf = form.get("csrf").unwrap_or_default();
    if !ct_eq(csrf.as_bytes(), csrf_for(&signed.cookie).as_bytes()) {
        return Err(error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        ));
    }
    if sensitive && state.clock.now() - signed.session.auth.time > REAUTH_WINDOW {
        return Err(to_signin(true));
    }
    Ok((signed, form))
}

/// A short device label from a User-Agent header: "Firefox on Windows".
pub fn device_label(user_agent: &str) -> Option<String> {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| user_agent.contains(needle))
    .map(|(_, name)| *name)?;
    let os = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| user_agent.contains(needle))
    .map(|(_, name)| *name);
    Some(match os {
        Some(os) => format!("{browser} · {os}"),
        None => browser.to_owned(),
    })
}

/// `GET /account`.
pub async fn home() -> Redirect {
    Redirect::to("/account/security")
}

/// `GET /account/security`.
pub async fn show(State(state): State<LoginState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok(Some(signed)) => page(&state, &headers, &signed, None, None).await,
        Ok(None) => to_signin(false),
        Err(response) => response,
    }
}

pub(crate) async fn page(
    state: &LoginState,
    headers: &HeaderMap,
    signed: &Signed,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let now = state.clock.now();
    let user_id = &signed.user.id;
    let store = &state.store;
    let loaded = async {
        let totp = store.totps().get(user_id).await?;
        let remaining = store.recovery_codes().remaining(user_id).await?;
        let sessions = store.sessions().list(user_id, now).await?;
        let events = store.audit().for_user(user_id, 20).await?;
        let passkeys = store.passkeys().list(user_id).await?;
        let apps = store.consents().list(user_id).await?;
        Ok::<_, zapini_store::StoreError>((totp, remaining, sessions, events, passkeys, apps))
    };
    let (totp, remaining, sessions, events, passkeys, apps) = match loaded.await {
        Ok(found) => found,
        Err(err) => return unavailable(state, headers, &err),
    };
    let lang = lang_for(state, headers, &[]);
    let catalog = state.templates.catalog();
    let format_time = |t: i64| catalog.date_time(&lang, t);
    let current = signed.key();
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "key": s.key,
                "created": format_time(s.created_at),
                "device": s.user_agent.as_deref().and_then(device_label),
                "user_agent": s.user_agent.clone().unwrap_or_default(),
                "ip": s.ip.clone().unwrap_or_default(),
                "current": s.key == current,
            })
        })
        .collect();
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "kind": format!("event.{}", e.kind.as_str()),
                "at": format_time(e.at),
                "ip": e.ip.clone().unwrap_or_default(),
                "user_agent": e.user_agent.clone().unwrap_or_default(),
            })
        })
        .collect();

    let passkeys: Vec<_> = passkeys
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "added": format_time(p.created_at),
                "last_used": p.last_used_at.map(&format_time),
                "synced": p.backup_eligible,
                "backed_up": p.backup_state,
            })
        })
        .collect();

    let apps: Vec<_> = apps
        .iter()
        .map(|c| {
            json!({
                "client_id": c.client_id,
                "name": c.client_name,
                "since": format_time(c.granted_at),
                "scopes": c.scope,
            })
        })
        .collect();

    let html = state.templates.page(
        "security.html",
        &lang,
        minijinja::context! {
            email => signed.user.email.clone(),
            totp_on => totp.is_some(),
            totp_since => totp.map(|t| format_time(t.created_at)),
            recovery_remaining => remaining,
            sessions => minijinja::Value::from(minijinja::value::Serde(&sessions)),
            events => minijinja::Value::from(minijinja::value::Serde(&events)),
            passkeys => minijinja::Value::from(minijinja::value::Serde(&passkeys)),
            apps => minijinja::Value::from(minijinja::value::Serde(&apps)),
            fresh => now - signed.session.auth.time <= REAUTH_WINDOW,
            csrf => csrf_for(&signed.cookie),
            methods => signed.session.auth.amr().join(", "),
            acr => signed.session.auth.acr().as_str(),
            notice_key => notice,
            error_key => error,
        },
    );
    (html_headers(), Html(html)).into_response()
}

/// Records a security event of the signed-in user and shows the security
/// area again with a notice.
pub(crate) async fn recorded(
    state: &LoginState,
    headers: &HeaderMap,
    peer: IpAddr,
    signed: &Signed,
    event: (EventKind, serde_json::Value),
    notice: &str,
) -> Response {
    let origin = Origin::from_headers(headers, Some(peer));
    let (kind, detail) = event;
    record(state, &origin, Some(&signed.user.id), kind, detail).await;
    page(state, headers, signed, Some(notice), None).await
}

/// `POST /account/security/totp/start`: a new seed waiting for a code.
pub async fn totp_start(
    State(state): State<LoginState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signed, _) = match posted(&state, &headers, &body, false).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let sealed = factor::new_seed().and_then(|seed| Ok(state.sealer.seal(SEED_PURPOSE, &seed)?));
    let Ok(sealed) = sealed else {
        return error_response(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let stored = state
        .store
        .ephemeral()
        .put(
            PENDING_ENROLMENT,
            &signed.key(),
            &sealed,
            now + ENROLMENT_TTL,
        )
        .await;
    if let Err(err) = stored {
        return unavailable(&state, &headers, &err);
    }
    enrol_page(&state, &headers, &signed, &sealed, None)
}

fn enrol_page(
    state: &LoginState,
    headers: &HeaderMap,
    signed: &Signed,
    sealed: &str,
    error: Option<String>,
) -> Response {
    let enrolment = state
        .sealer
        .open(SEED_PURPOSE, sealed)
        .ok()
        .and_then(|seed| {
            factor::enrolment(&seed, &state.templates.product_name, &signed.user.email).ok()
        });
    let Some(e) = enrolment else {
        return error_response(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let lang = lang_for(state, headers, &[]);
    let html = state.templates.page(
        "enroll_totp.html",
        &lang,
        minijinja::context! {
            action => "/account/security/totp/confirm",
            csrf => csrf_for(&signed.cookie),
            secret_groups => e.secret_groups(),
                    secret_text => e.secret_text,
            otpauth_url => e.otpauth_url,
            qr_svg => minijinja::Value::from_safe_string(e.qr_svg),
            during_signin => false,
            error => error,
        },
    );
    (html_headers(), Html(html)).into_response()
}

fn codes_page(state: &LoginState, headers: &HeaderMap, codes: &[String]) -> Response {
    let lang = lang_for(state, headers, &[]);
    let html = state.templates.page(
        "recovery_codes.html",
        &lang,
        minijinja::context! { codes => codes.to_vec(), done_url => "/account/security" },
    );
    (html_headers(), Html(html)).into_response()
}

/// `POST /account/security/totp/confirm`: checks a code against the waiting
/// seed; only then is 2FA on. Shows the recovery codes once.
pub async fn totp_confirm(
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
    let eph = state.store.ephemeral();
    let sealed: String = match eph.get(PENDING_ENROLMENT, &signed.key(), now).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return page(
                &state,
                &headers,
                &signed,
                None,
                Some("security.enrolment_expired"),
            )
            .await;
        }
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let code = form.get("code").unwrap_or_default();
    let step = state
        .sealer
        .open(SEED_PURPOSE, &sealed)
        .ok()
        .and_then(|seed| factor::matching_step(&seed, code, now));
    let Some(step) = step else {
        let lang = lang_for(&state, &headers, &[]);
        let error = state
            .templates
            .catalog()
            .text(&lang, "enroll.code_invalid")
            .to_owned();
        return enrol_page(&state, &headers, &signed, &sealed, Some(error));
    };
    let _ = eph.delete(PENDING_ENROLMENT, &signed.key()).await;
    let codes = match turn_on(&state, &signed.user.id, &sealed, step, now).await {
        Ok(codes) => codes,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let origin = Origin::from_headers(&headers, Some(peer));
    record(
        &state,
        &origin,
        Some(&signed.user.id),
        EventKind::TwoFactorEnabled,
        json!({"during": "account"}),
    )
    .await;
    let shown: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    codes_page(&state, &headers, &shown)
}

/// `POST /account/security/totp/disable`: needs a current TOTP code or a
/// recovery code, and a recent authentication.
pub async fn totp_disable(
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
    let user_id = &signed.user.id;
    let code = form.get("code").unwrap_or_default();
    let by_totp = factor::verify_totp(&state.store, &state.sealer, user_id, code, now).await;
    let ok = match by_totp {
        Ok(true) => true,
        Ok(false) => factor::use_recovery_code(&state.store, &state.sealer, user_id, code, now)
            .await
            .unwrap_or(false),
        Err(err) => return unavailable(&state, &headers, &err),
    };
    if !ok {
        return page(
            &state,
            &headers,
            &signed,
            None,
            Some("security.code_invalid"),
        )
        .await;
    }
    if let Err(err) = state.store.totps().disable(user_id).await {
        return unavailable(&state, &headers, &err);
    }
    let kind = EventKind::TwoFactorDisabled;
    recorded(
        &state,
        &headers,
        peer,
        &signed,
        (kind, json!({})),
        "security.totp_disabled",
    )
    .await
}

/// `POST /account/security/recovery/renew`: a new set; the old one dies.
pub async fn recovery_renew(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signed, _) = match posted(&state, &headers, &body, true).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.clock.now();
    match state.store.totps().get(&signed.user.id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return page(
                &state,
                &headers,
                &signed,
                None,
                Some("security.totp_needed"),
            )
            .await;
        }
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let made = async {
        let codes = factor::new_recovery_codes()?;
        factor::store_recovery_codes(&state.store, &state.sealer, &signed.user.id, &codes, now)
            .await?;
        Ok::<_, factor::FactorError>(codes)
    };
    let codes = match made.await {
        Ok(codes) => codes,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let origin = Origin::from_headers(&headers, Some(peer));
    record(
        &state,
        &origin,
        Some(&signed.user.id),
        EventKind::RecoveryCodesRenewed,
        json!({}),
    )
    .await;
    let shown: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    codes_page(&state, &headers, &shown)
}

/// `POST /account/security/password`: the current password, the new one
/// twice. Other sessions of the user are signed out.
pub async fn change_password(
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
    let current = Secret::new(form.get("current_password").unwrap_or_default());
    let new = Secret::new(form.get("new_password").unwrap_or_default());
    let confirm = form.get("confirm_password").unwrap_or_default();

    if new.expose().chars().count() < MIN_PASSWORD_CHARS || new.expose().len() > MAX_PASSWORD_BYTES
    {
        return page(
            &state,
            &headers,
            &signed,
            None,
            Some("security.password_length"),
        )
        .await;
    }
    if !ct_eq(new.expose().as_bytes(), confirm.as_bytes()) {
        return page(
            &state,
            &headers,
            &signed,
            None,
            Some("security.password_mismatch"),
        )
        .await;
    }
    let stored = match state.store.users().find_by_email(&signed.user.email).await {
        Ok(found) => found.and_then(|f| f.password_hash),
        Err(err) => return unavailable(&state, &headers, &err),
    };
    if current.expose().len() > MAX_PASSWORD_BYTES
        || !state.hasher.verify(&current, stored.as_ref()).await
    {
        return page(
            &state,
            &headers,
            &signed,
            None,
            Some("security.password_wrong"),
        )
        .await;
    }
    let hash = match state.hasher.hash(&new).await {
        Ok(hash) => hash,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let others = match state.store.sessions().list(&signed.user.id, now).await {
        Ok(list) => list,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    let saved = async {
        state
            .store
            .users()
            .set_password_hash(&signed.user.id, &hash, now)
            .await?;
        let tokens = state.store.refresh_tokens();
        tokens.revoke_user(&signed.user.id, now).await?;
        state
            .store
            .sessions()
            .end_all(&signed.user.id, Some(&signed.key()), now)
            .await
    };
    if let Err(err) = saved.await {
        return unavailable(&state, &headers, &err);
    }
    for other in others.iter().filter(|r| r.key != signed.key()) {
        state
            .session_ended
            .session_ended(&other.sid, &signed.user.id, now);
    }
    let kind = EventKind::PasswordChanged;
    recorded(
        &state,
        &headers,
        peer,
        &signed,
        (kind, json!({})),
        "security.password_changed",
    )
    .await
}

/// `POST /account/security/sessions/end`: signs out one session.
pub async fn end_session(
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
    let key = form.get("session").unwrap_or_default().to_owned();
    let revoked = state
        .store
        .revoke_session_refresh_tokens(&signed.user.id, &key, now);
    if let Err(err) = revoked.await {
        return unavailable(&state, &headers, &err);
    }
    let ending: Option<SsoSession> = match state.store.ephemeral().get(ns::SESSION, &key, now).await
    {
        Ok(found) => found,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    match state.store.sessions().end(&signed.user.id, &key, now).await {
        Ok(true) => {
            if let Some(s) = &ending {
                state.session_ended.session_ended(&s.sid, &s.user_id, now);
            }
        }
        Ok(false) => {
            return page(
                &state,
                &headers,
                &signed,
                None,
                Some("security.session_gone"),
            )
            .await;
        }
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let origin = Origin::from_headers(&headers, Some(peer));
    record(
        &state,
        &origin,
        Some(&signed.user.id),
        EventKind::SessionSignedOut,
        json!({}),
    )
    .await;
    if key == signed.key() {
        return signed_out(&state);
    }
    page(
        &state,
        &headers,
        &signed,
        Some("security.session_ended"),
        None,
    )
    .await
}

fn signed_out(state: &LoginState) -> Response {
    let mut out = HeaderMap::new();
    let name = session_cookie_name(state.secure_cookies);
    cookies::append(&mut out, cookies::set(name, "", 0, state.secure_cookies));
    (out, Redirect::to("/login?return_to=/account/security")).into_response()
}

/// `POST /logout`: ends the SSO session of this browser.
pub async fn logout(State(state): State<LoginState>, headers: HeaderMap, body: Bytes) -> Response {
    let (signed, _) = match posted(&state, &headers, &body, false).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let revoked = state.store.refresh_tokens();
    if let Err(err) = revoked.revoke_sid(&signed.session.sid, now).await {
        return unavailable(&state, &headers, &err);
    }
    if let Err(err) = state
        .store
        .sessions()
        .end(&signed.user.id, &signed.key(), now)
        .await
    {
        return unavailable(&state, &headers, &err);
    }
    let ended = &signed.session;
    state
        .session_ended
        .session_ended(&ended.sid, &ended.user_id, now);
    signed_out(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_the_user_agent() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0 Safari/537.36";
        assert_eq!(device_label(chrome).as_deref(), Some("Chrome · Linux"));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_label(iphone).as_deref(), Some("Safari · iPhone"));
        assert_eq!(device_label("curl/8.0").as_deref(), Some("curl"));
        assert_eq!(device_label("something"), None);
    }
}
