//! The sign-in steps: password, then a TOTP code or a recovery code, or
//! enrolment in TOTP where policy requires two factors and the user has none.
//!
//! A login transaction is a server-side state machine bound to the browser
//! by a cookie; each form carries the transaction id and a CSRF token. A step
//! can be taken only from the state before it, and nothing is issued until
//! the last required step is done.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zapini_core::audit::EventKind;
use zapini_core::crypto::{ct_eq, random_token, token_hash};
use zapini_core::flow::{
    PendingAuthorization, SsoSession, login_cookie_name, ns, session_cookie_name,
};
use zapini_core::form::Params;
use zapini_core::metrics::SignInMethod;
use zapini_core::{Acr, AuthMethod, Authentication, Secret};

use crate::events::{Origin, Peer, record};
use crate::password::MAX_PASSWORD_BYTES;
use crate::second_factor::{self as factor, SEED_PURPOSE};
use crate::{LoginState, cookies, step_up, throttle};

/// How long a sign-in page stays usable, in seconds.
const LOGIN_TX_TTL: i64 = 30 * 60;

/// How long the browser-binding cookie lives, in seconds.
const BINDING_TTL: i64 = 24 * 3600;

const CODES_PURPOSE: &str = "recovery-codes-shown-once";

/// Where a login transaction stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Step {
    Password,
    /// Password done; a TOTP or recovery code, or a passkey, is due.
    SecondFactor {
        user_id: String,
        email: String,
        /// Whether the user has TOTP (and so recovery codes).
        #[serde(default = "yes")]
        totp: bool,
        /// Whether the user has a passkey to use instead.
        #[serde(default)]
        passkey: bool,
    },
    /// Password done; policy wants two factors and the user has none yet.
    Enroll {
        user_id: String,
        email: String,
        seed_sealed: String,
    },
    /// TOTP turned on; the new recovery codes are shown once, then done.
    Codes {
        user_id: String,
        codes_sealed: String,
        methods: Vec<AuthMethod>,
    },
}

fn yes() -> bool {
    true
}

/// A login transaction: one attempt to sign in, in one browser.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LoginTx {
    /// Hash of the browser-binding cookie.
    pub(crate) binding: String,
    pub(crate) csrf: Secret,
    /// The pending authorization this sign-in serves, if any.
    pub(crate) authz: Option<String>,
    /// Where to go afterwards when not serving an authorization.
    pub(crate) return_to: Option<String>,
    pub(crate) ui_locales: Vec<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) login_hint: Option<String>,
    pub(crate) require_2fa: bool,
    /// The request wants `phr`: only a passkey completes the sign-in.
    #[serde(default)]
    pub(crate) require_phr: bool,
    pub(crate) step: Step,
}

pub(crate) fn html_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

pub(crate) fn lang_for(state: &LoginState, headers: &HeaderMap, ui_locales: &[String]) -> String {
    let chosen = cookies::read(headers, crate::language::LANG_COOKIE);
    let preferred: Vec<&str> = ui_locales
        .iter()
        .map(String::as_str)
        .chain(chosen.as_deref())
        .collect();
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    state.templates.catalog().negotiate(&preferred, accept)
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

pub(crate) fn unavailable(
    state: &LoginState,
    headers: &HeaderMap,
    err: &dyn std::error::Error,
) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::error!(request_id, error = %err, "dependency failed");
    error_response(
        state,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "error.unavailable",
    )
}

/// Only pages of the account area may be returned to, so the parameter
/// cannot be used as an open redirect.
fn safe_return(path: Option<&str>) -> Option<String> {
    path.filter(|p| {
        p.starts_with("/account")
            && !p.contains("//")
            && p.len() < 200
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~?=&%".contains(&b))
    })
    .map(str::to_owned)
}

/// `GET /login`: the first sign-in page, or `?tx=` to show a transaction's
/// current step again.
pub async fn show(
    State(state): State<LoginState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let q = Params::parse(query.unwrap_or_default().as_bytes());
    if q.first_duplicate().is_some() {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    }
    if let Some(tx_id) = q.get("tx") {
        return match load_bound(&state, &headers, tx_id, None, now).await {
            Ok(tx) => render(&state, &headers, tx_id, &tx, None, None),
            Err(response) => response,
        };
    }
    let pending = match q.get("authz") {
        Some(id) if id.len() > 64 => {
            return error_response(
                &state,
                &headers,
                StatusCode::BAD_REQUEST,
                "error.request_expired",
            );
        }
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
    let notice = q.get("reauth").is_some().then_some("signin.reauth");
    start(
        &state,
        &headers,
        pending.as_ref(),
        safe_return(q.get("return_to")),
        notice,
        now,
    )
    .await
}

/// Creates a login transaction at the password step and renders it.
async fn start(
    state: &LoginState,
    headers: &HeaderMap,
    pending: Option<&PendingAuthorization>,
    return_to: Option<String>,
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
        return_to,
        ui_locales: pending.map(|p| p.ui_locales.clone()).unwrap_or_default(),
        client_name: pending.map(|p| p.client_name.clone()),
        login_hint: pending.and_then(|p| p.login_hint.clone()),
        require_2fa: state.require_2fa || pending.is_some_and(|p| p.min_acr >= Acr::Mfa),
        require_phr: pending.is_some_and(|p| p.min_acr >= Acr::Phr),
        step: match step_up::second_step(state, headers, pending, now).await {
            Ok(step) => step.unwrap_or(Step::Password),
            Err(err) => return unavailable(state, headers, &err),
        },
    };
    if let Err(err) = save(state, tx_id.expose(), &tx, now).await {
        return unavailable(state, headers, &err);
    }
    let mut response = render(state, headers, tx_id.expose(), &tx, None, notice_key);
    response.headers_mut().extend(out);
    response
}

pub(crate) async fn save(
    state: &LoginState,
    tx_id: &str,
    tx: &LoginTx,
    now: i64,
) -> Result<(), zapini_store::StoreError> {
    state
        .store
        .ephemeral()
        .put(ns::LOGIN, &token_hash(tx_id), tx, now + LOGIN_TX_TTL)
        .await
}

/// Renders the page of the transaction's current step.
pub(crate) fn render(
    state: &LoginState,
    headers: &HeaderMap,
    tx_id: &str,
    tx: &LoginTx,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let lang = lang_for(state, headers, &tx.ui_locales);
    let base = minijinja::context! {
        tx => tx_id,
        csrf => tx.csrf.expose(),
        client_name => tx.client_name.clone(),
        error => error,
        notice_key => notice_key,
    };
    let html = match &tx.step {
        Step::Password => state.templates.page(
            "signin.html",
            &lang,
            minijinja::context! { username => tx.login_hint.clone(), ..base },
        ),
        Step::SecondFactor { totp, passkey, .. } => state.templates.page(
            "signin_totp.html",
            &lang,
            minijinja::context! { totp => totp, passkey => passkey, ..base },
        ),
        Step::Enroll {
            email, seed_sealed, ..
        } => {
            let enrolment = state
                .sealer
                .open(SEED_PURPOSE, seed_sealed)
                .ok()
                .and_then(|seed| {
                    factor::enrolment(&seed, &state.templates.product_name, email).ok()
                });
            let Some(e) = enrolment else {
                return error_response(
                    state,
                    headers,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "error.unavailable",
                );
            };
            state.templates.page(
                "enroll_totp.html",
                &lang,
                minijinja::context! {
                    action => "/login/enroll",
                    secret_groups => e.secret_groups(),
                    secret_text => e.secret_text,
                    otpauth_url => e.otpauth_url,
                    qr_svg => minijinja::Value::from_safe_string(e.qr_svg),
                    during_signin => true,
                    ..base
                },
            )
        }
        Step::Codes { codes_sealed, .. } => {
            let codes = open_codes(state, codes_sealed);
            state.templates.page(
                "recovery_codes.html",
                &lang,
                minijinja::context! { codes => codes, action => "/login/finish", ..base },
            )
        }
    };
    (html_headers(), Html(html)).into_response()
}

/// Loads a transaction and checks that this browser started it; with a form,
/// also checks its CSRF token. Stale or foreign submissions get a fresh
/// sign-in page saying the old one expired.
pub(crate) async fn load_bound(
    state: &LoginState,
    headers: &HeaderMap,
    tx_id: &str,
    csrf: Option<&str>,
    now: i64,
) -> Result<LoginTx, Response> {
    if tx_id.len() > 64 {
        return Err(error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        ));
    }
    let tx: LoginTx = match state
        .store
        .ephemeral()
        .get(ns::LOGIN, &token_hash(tx_id), now)
        .await
    {
        Ok(Some(tx)) => tx,
        Ok(None) => return Err(expired(state, headers, None, None, now).await),
        Err(err) => return Err(unavailable(state, headers, &err)),
    };
    let binding =
        cookies::read(headers, login_cookie_name(state.secure_cookies)).unwrap_or_default();
    let csrf_ok = csrf.is_none_or(|c| ct_eq(c.as_bytes(), tx.csrf.expose().as_bytes()));
    if !ct_eq(token_hash(&binding).as_bytes(), tx.binding.as_bytes()) || !csrf_ok {
        tracing::info!("sign-in form refused: browser binding or CSRF token mismatch");
        return Err(expired(
            state,
            headers,
            tx.authz.as_deref(),
            tx.return_to.clone(),
            now,
        )
        .await);
    }
    Ok(tx)
}

async fn expired(
    state: &LoginState,
    headers: &HeaderMap,
    authz: Option<&str>,
    return_to: Option<String>,
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
    start(
        state,
        headers,
        pending.as_ref(),
        return_to,
        Some("signin.expired"),
        now,
    )
    .await
}

/// A parsed form of one of the steps, with its transaction.
pub(crate) struct Submission {
    pub(crate) form: Params,
    pub(crate) tx_id: String,
    pub(crate) tx: LoginTx,
    pub(crate) origin: Origin,
    pub(crate) now: i64,
}

pub(crate) async fn submission(
    state: &LoginState,
    headers: &HeaderMap,
    peer: IpAddr,
    body: &[u8],
) -> Result<Submission, Response> {
    let now = state.clock.now();
    let form = Params::parse(body);
    if form.first_duplicate().is_some() {
        return Err(error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        ));
    }
    let Some(tx_id) = form.get("tx").map(str::to_owned) else {
        return Err(error_response(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        ));
    };
    let csrf = form.get("csrf").unwrap_or_default().to_owned();
    let tx = load_bound(state, headers, &tx_id, Some(&csrf), now).await?;
    Ok(Submission {
        form,
        tx_id,
        tx,
        origin: Origin::from_headers(headers, Some(peer)),
        now,
    })
}

fn wait_message(state: &LoginState, headers: &HeaderMap, tx: &LoginTx, seconds: i64) -> String {
    let lang = lang_for(state, headers, &tx.ui_locales);
    state
        .templates
        .catalog()
        .text(&lang, "signin.throttled")
        .replace("{seconds}", &seconds.to_string())
}

pub(crate) fn message(state: &LoginState, headers: &HeaderMap, tx: &LoginTx, key: &str) -> String {
    let lang = lang_for(state, headers, &tx.ui_locales);
    state.templates.catalog().text(&lang, key).to_owned()
}

/// `POST /login`: the password step.
pub async fn submit(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = match submission(&state, &headers, peer, &body).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if !matches!(s.tx.step, Step::Password) {
        return render(&state, &headers, &s.tx_id, &s.tx, None, None);
    }

    let username = s.form.get("username").unwrap_or_default().trim().to_owned();
    let password = Secret::new(s.form.get("password").unwrap_or_default());
    s.tx.login_hint = Some(username.chars().take(254).collect()).filter(|u: &String| !u.is_empty());
    if username.is_empty() || password.is_empty() || username.len() > 254 {
        let error = message(&state, &headers, &s.tx, "signin.missing");
        return render(&state, &headers, &s.tx_id, &s.tx, Some(error), None);
    }

    let account = username.to_lowercase();
    let address = s.origin.ip.clone().unwrap_or_default();
    let waits = async {
        let by_account =
            throttle::wait(&state.store, throttle::ACCOUNT_PASSWORD, &account, s.now).await?;
        let by_address =
            throttle::wait(&state.store, throttle::ADDRESS_PASSWORD, &address, s.now).await?;
        Ok::<_, zapini_store::StoreError>(by_account.max(by_address))
    };
    match waits.await {
        Ok(Some(seconds)) => {
            let error = wait_message(&state, &headers, &s.tx, seconds);
            return render(&state, &headers, &s.tx_id, &s.tx, Some(error), None);
        }
        Ok(None) => {}
        Err(err) => return unavailable(&state, &headers, &err),
    }

    let found = match state.store.users().find_by_email(&username).await {
        Ok(found) => found,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    // The hash is verified whether or not the user exists, so that an
    // unknown address costs the same time and gets the same answer.
    let too_long = password.expose().len() > MAX_PASSWORD_BYTES;
    let hash = found
        .as_ref()
        .and_then(|f| f.password_hash.as_ref())
        .filter(|_| !too_long);
    let verified = state.hasher.verify(&password, hash).await;
    let user = match found {
        Some(f) if verified && !f.user.disabled => f.user,
        other => {
            state.counters.sign_in(SignInMethod::Password, false);
            let user_id = other.as_ref().map(|f| f.user.id.clone());
            record(
                &state,
                &s.origin,
                user_id.as_deref(),
                EventKind::SignInFailed,
                json!({"step": "password"}),
            )
            .await;
            let _ = throttle::fail(&state.store, throttle::ACCOUNT_PASSWORD, &account, s.now).await;
            let _ = throttle::fail(&state.store, throttle::ADDRESS_PASSWORD, &address, s.now).await;
            let error = message(&state, &headers, &s.tx, "signin.invalid");
            return render(&state, &headers, &s.tx_id, &s.tx, Some(error), None);
        }
    };
    state.counters.sign_in(SignInMethod::Password, true);
    let _ = throttle::clear(&state.store, throttle::ACCOUNT_PASSWORD, &account).await;

    let factors = async {
        let totp = state.store.totps().get(&user.id).await?.is_some();
        let passkey = !state.store.passkeys().list(&user.id).await?.is_empty();
        Ok::<_, zapini_store::StoreError>((totp, passkey))
    };
    let (has_totp, has_passkey) = match factors.await {
        Ok(found) => found,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    if s.tx.require_phr && !has_passkey {
        return step_up::unmet(&state, &headers, &s.tx_id, &s.tx, s.now).await;
    }
    // A user with a passkey but no TOTP uses the passkey as the second
    // step; enrolling TOTP here would let a password alone add a factor to
    // an account that already has a stronger one. For phr only the passkey
    // is offered.
    if has_totp || (has_passkey && s.tx.require_2fa) || s.tx.require_phr {
        s.tx.step = Step::SecondFactor {
            user_id: user.id,
            email: user.email,
            totp: has_totp && !s.tx.require_phr,
            passkey: has_passkey,
        };
    } else if s.tx.require_2fa {
        let seed =
            factor::new_seed().and_then(|seed| Ok(state.sealer.seal(SEED_PURPOSE, &seed)?));
        let Ok(seed_sealed) = seed else {
            return error_response(
                &state,
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "error.unavailable",
            );
        };
        s.tx.step = Step::Enroll {
            user_id: user.id,
            email: user.email,
            seed_sealed,
        };
    } else {
        return finish(&state, &headers, &s, &user.id, vec![AuthMethod::Password]).await;
    }
    if let Err(err) = save(&state, &s.tx_id, &s.tx, s.now).await {
        return unavailable(&state, &headers, &err);
    }
    see_other(&format!("/login?tx={}", s.tx_id))
}

fn see_other(location: &str) -> Response {
    (html_headers(), Redirect::to(location)).into_response()
}

/// `POST /login/totp` and `POST /login/recovery`: the second step.
pub async fn submit_code(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let s = match submission(&state, &headers, peer, &body).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    // A step without TOTP (no TOTP, or phr asked) takes no codes.
    let Step::SecondFactor {
        user_id,
        totp: true,
        ..
    } = s.tx.step.clone()
    else {
        return render(&state, &headers, &s.tx_id, &s.tx, None, None);
    };
    let recovery = uri.path().ends_with("/recovery");
    let code = s
        .form
        .get("code")
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect::<String>();
    let retry = |error: String| {
        if recovery {
            recovery_page(&state, &headers, &s.tx_id, &s.tx, Some(error))
        } else {
            render(&state, &headers, &s.tx_id, &s.tx, Some(error), None)
        }
    };

    match throttle::wait(&state.store, throttle::SECOND_FACTOR, &user_id, s.now).await {
        Ok(Some(seconds)) => {
            record(
                &state,
                &s.origin,
                Some(&user_id),
                EventKind::Throttled,
                json!({"step": "second_factor"}),
            )
            .await;
            return retry(wait_message(&state, &headers, &s.tx, seconds));
        }
        Ok(None) => {}
        Err(err) => return unavailable(&state, &headers, &err),
    }

    let checked = if recovery {
        factor::use_recovery_code(&state.store, &state.sealer, &user_id, &code, s.now).await
    } else {
        factor::verify_totp(&state.store, &state.sealer, &user_id, &code, s.now).await
    };
    let method = if recovery {
        SignInMethod::RecoveryCode
    } else {
        SignInMethod::Totp
    };
    if let Ok(passed) = checked {
        state.counters.sign_in(method, passed);
    }
    match checked {
        Ok(true) => {}
        Ok(false) => {
            let step = method.as_str();
            record(
                &state,
                &s.origin,
                Some(&user_id),
                EventKind::SignInFailed,
                json!({ "step": step }),
            )
            .await;
            let _ = throttle::fail(&state.store, throttle::SECOND_FACTOR, &user_id, s.now).await;
            let key = if recovery {
                "signin.recovery_invalid"
            } else {
                "signin.code_invalid"
            };
            return retry(message(&state, &headers, &s.tx, key));
        }
        Err(err) => return unavailable(&state, &headers, &err),
    }
    let _ = throttle::clear(&state.store, throttle::SECOND_FACTOR, &user_id).await;

    let second = if recovery {
        let remaining = state
            .store
            .recovery_codes()
            .remaining(&user_id)
            .await
            .unwrap_or(0);
        record(
            &state,
            &s.origin,
            Some(&user_id),
            EventKind::RecoveryCodeUsed,
            json!({ "remaining": remaining }),
        )
        .await;
        AuthMethod::RecoveryCode
    } else {
        AuthMethod::Totp
    };
    finish(
        &state,
        &headers,
        &s,
        &user_id,
        vec![AuthMethod::Password, second],
    )
    .await
}

fn recovery_page(
    state: &LoginState,
    headers: &HeaderMap,
    tx_id: &str,
    tx: &LoginTx,
    error: Option<String>,
) -> Response {
    let lang = lang_for(state, headers, &tx.ui_locales);
    let html = state.templates.page(
        "signin_recovery.html",
        &lang,
        minijinja::context! { tx => tx_id, csrf => tx.csrf.expose(), error => error, client_name => tx.client_name.clone() },
    );
    (html_headers(), Html(html)).into_response()
}

/// `GET /login/recovery?tx=`: the recovery-code form instead of the TOTP one.
pub async fn show_recovery(
    State(state): State<LoginState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let q = Params::parse(query.unwrap_or_default().as_bytes());
    let (Some(tx_id), None) = (q.get("tx"), q.first_duplicate()) else {
        return error_response(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_invalid",
        );
    };
    match load_bound(&state, &headers, tx_id, None, now).await {
        Ok(tx) if matches!(tx.step, Step::SecondFactor { totp: true, .. }) => {
            recovery_page(&state, &headers, tx_id, &tx, None)
        }
        Ok(tx) => render(&state, &headers, tx_id, &tx, None, None),
        Err(response) => response,
    }
}

/// `POST /login/enroll`: confirms the new TOTP seed with a code, turns 2FA
/// on, and shows the recovery codes.
pub async fn submit_enroll(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = match submission(&state, &headers, peer, &body).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let Step::Enroll {
        user_id,
        seed_sealed,
        ..
    } = s.tx.step.clone()
    else {
        return render(&state, &headers, &s.tx_id, &s.tx, None, None);
    };
    let code = s.form.get("code").unwrap_or_default().to_owned();
    let step = state
        .sealer
        .open(SEED_PURPOSE, &seed_sealed)
        .ok()
        .and_then(|seed| factor::matching_step(&seed, &code, s.now));
    let Some(step) = step else {
        let error = message(&state, &headers, &s.tx, "enroll.code_invalid");
        return render(&state, &headers, &s.tx_id, &s.tx, Some(error), None);
    };

    let codes = match turn_on(&state, &user_id, &seed_sealed, step, s.now).await {
        Ok(codes) => codes,
        Err(err) => return unavailable(&state, &headers, &err),
    };
    record(
        &state,
        &s.origin,
        Some(&user_id),
        EventKind::TwoFactorEnabled,
        json!({"during": "sign_in"}),
    )
    .await;
    let Ok(codes_sealed) = seal_codes(&state, &codes) else {
        return error_response(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    s.tx.step = Step::Codes {
        user_id,
        codes_sealed,
        methods: vec![AuthMethod::Password, AuthMethod::Totp],
    };
    if let Err(err) = save(&state, &s.tx_id, &s.tx, s.now).await {
        return unavailable(&state, &headers, &err);
    }
    see_other(&format!("/login?tx={}", s.tx_id))
}

/// Stores a confirmed TOTP seed and a new set of recovery codes.
pub(crate) async fn turn_on(
    state: &LoginState,
    user_id: &str,
    seed_sealed: &str,
    step: i64,
    now: i64,
) -> Result<Vec<Secret>, factor::FactorError> {
    state
        .store
        .totps()
        .enable(user_id, seed_sealed, step, now)
        .await?;
    let codes = factor::new_recovery_codes()?;
    factor::store_recovery_codes(&state.store, &state.sealer, user_id, &codes, now).await?;
    Ok(codes)
}

fn seal_codes(
    state: &LoginState,
    codes: &[Secret],
) -> Result<String, zapini_core::crypto::CryptoError> {
    let plain: Vec<&str> = codes.iter().map(Secret::expose).collect();
    state.sealer.seal(
        CODES_PURPOSE,
        &serde_json::to_vec(&plain).unwrap_or_default(),
    )
}

fn open_codes(state: &LoginState, sealed: &str) -> Vec<String> {
    state
        .sealer
        .open(CODES_PURPOSE, sealed)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}

/// `POST /login/finish`: the user has seen the recovery codes; sign in.
pub async fn submit_finish(
    State(state): State<LoginState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = match submission(&state, &headers, peer, &body).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let Step::Codes {
        user_id, methods, ..
    } = s.tx.step.clone()
    else {
        return render(&state, &headers, &s.tx_id, &s.tx, None, None);
    };
    finish(&state, &headers, &s, &user_id, methods).await
}

/// The last step: consume the transaction, start the SSO session, go on.
pub(crate) async fn finish(
    state: &LoginState,
    headers: &HeaderMap,
    s: &Submission,
    user_id: &str,
    methods: Vec<AuthMethod>,
) -> Response {
    match state
        .store
        .ephemeral()
        .take::<LoginTx>(ns::LOGIN, &token_hash(&s.tx_id), s.now)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            return expired(
                state,
                headers,
                s.tx.authz.as_deref(),
                s.tx.return_to.clone(),
                s.now,
            )
            .await;
        }
        Err(err) => return unavailable(state, headers, &err),
    }
    let Ok(event) = random_token(16) else {
        return error_response(
            state,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "error.unavailable",
        );
    };
    let auth = Authentication::new(event.expose().to_owned(), methods, s.now);
    record(
        state,
        &s.origin,
        Some(user_id),
        EventKind::SignInSucceeded,
        json!({ "amr": auth.amr() }),
    )
    .await;

    let next = match (&s.tx.authz, &s.tx.return_to) {
        (Some(id), _) => format!("/authorize/continue?authz={id}"),
        (None, Some(path)) => path.clone(),
        (None, None) => "/account/security".to_owned(),
    };
    let mut response = start_session(state, headers, &s.origin, user_id, auth, &next, s.now).await;
    // A language the relying party asked for (ui_locales) is kept for the
    // account pages, as if the person had picked it in the switcher.
    if !s.tx.ui_locales.is_empty() {
        let lang = lang_for(state, headers, &s.tx.ui_locales);
        // Appended: the session cookie is already among the headers.
        cookies::append(
            response.headers_mut(),
            cookies::set(
                crate::language::LANG_COOKIE,
                &lang,
                crate::language::LANG_TTL,
                state.secure_cookies,
            ),
        );
    }
    response
}

/// Records a new SSO session, replacing any previous one in this browser
/// (a fresh cookie value on every sign-in prevents session fixation), and
/// sends the browser on.
async fn start_session(
    state: &LoginState,
    headers: &HeaderMap,
    origin: &Origin,
    user_id: &str,
    auth: Authentication,
    next: &str,
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
    let session = SsoSession {
        sid: sid.expose().to_owned(),
        user_id: user_id.to_owned(),
        auth,
        created_at: now,
        expires_at: now + state.session_ttl,
        user_agent: origin.user_agent.clone(),
        ip: origin.ip.clone(),
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
    (out, Redirect::to(next)).into_response()
}
