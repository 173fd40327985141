//! The authorization endpoint (RFC 6749 4.1.1, OIDC Core 3.1.2).
//!
//! A request is checked in two stages. Until the client and its redirect URI
//! are known to be good, errors are shown as a page and never redirected
//! (RFC 6749 4.1.2.1). After that, errors go back to the client with `error`,
//! `state` and `iss` (RFC 9207). A good request becomes a pending
//! authorization and the browser goes to the login pages, or, if its SSO
//! session already satisfies the request, straight back with a code.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use zapini_core::Acr;
use zapini_core::crypto::{random_token, token_hash};
use zapini_core::flow::{
    AuthorizationCode, PendingAuthorization, ResponseMode, SsoSession, cookie_value, ns,
    session_cookie_name,
};

use crate::clients::Client;
use crate::error::{OAuthError, error_page, unavailable_page};
use crate::id_token_hint::{self, IdTokenHint};
use crate::{OidcState, claims};

mod checks;
mod consent;
mod response;

use checks::{check_prompt_display_max_age, granted_scope, max_age, pkce_challenge, response_mode};
use consent::Consent;
pub(crate) use response::append_query;
use response::{ErrorTarget, redirect_error, respond, see_other};
use zapini_core::form::Params;

/// Longest `state` and `nonce` accepted; longer ones are refused rather than
/// echoed into redirect URLs.
const MAX_OPAQUE_LEN: usize = 2048;

/// OIDC Core 3.1.2.1 `display` values.
pub const DISPLAY_VALUES: [&str; 4] = ["page", "popup", "touch", "wap"];

pub async fn get(
    State(state): State<OidcState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&state, &headers, &params).await
}

/// OIDC Core 3.1.2.1: POST requests carry the parameters form-serialised.
pub async fn post(State(state): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return error_page(
            &state,
            &headers,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "error.request_invalid",
        );
    }
    authorize(&state, &headers, &Params::parse(&body)).await
}

async fn authorize(state: &OidcState, headers: &HeaderMap, params: &Params) -> Response {
    let (client, redirect_uri) = match verify_client(state, params) {
        Ok(found) => found,
        Err(key) => return error_page(state, headers, StatusCode::BAD_REQUEST, key),
    };

    let client_state = params.get("state").filter(|s| s.len() <= MAX_OPAQUE_LEN);
    let mut target = ErrorTarget {
        redirect_uri,
        state: client_state,
        mode: ResponseMode::Query,
    };
    let now = state.clock.now();

    let (mut pending, hint) = match validate(state, client, redirect_uri, params, now) {
        Ok(valid) => valid,
        Err(err) => return redirect_error(state, &target, &err),
    };
    target.mode = pending.response_mode;
    if state.require_2fa {
        pending.min_acr = pending.min_acr.max(Acr::Mfa);
    }
    let session = match current_session(state, headers, now).await {
        Ok(session) => session,
        Err(err) => return unavailable_page(state, headers, &err),
    };
    match decide(state, params, &mut pending, session, hint.as_ref(), now).await {
        Ok(Decision::Issue(session)) => match issue_code(state, &pending, &session, now).await {
            Ok(response) => response,
            Err(err) => unavailable_page(state, headers, &err),
        },
        Ok(Decision::SignIn) => save_and_go(state, headers, &pending, "/login", now).await,
        Ok(Decision::AskConsent) => save_and_go(state, headers, &pending, "/consent", now).await,
        Ok(Decision::Refuse(err)) => redirect_error(state, &target, &err),
        Err(err) => unavailable_page(state, headers, &err),
    }
}

/// What to do with a valid request, given the browser's session.
enum Decision {
    /// The session satisfies it: issue a code at once.
    Issue(SsoSession),
    /// The user must (re)authenticate or step up on the login pages.
    SignIn,
    /// The session suffices but the user must consent first (OIDC Core
    /// 3.1.2.4).
    AskConsent,
    /// Answer the client with an error.
    Refuse(OAuthError),
}

async fn decide(
    state: &OidcState,
    params: &Params,
    pending: &mut PendingAuthorization,
    session: Option<SsoSession>,
    hint: Option<&IdTokenHint>,
    now: i64,
) -> Result<Decision, zapini_store::StoreError> {
    let prompt = params.list("prompt");
    let none = prompt.iter().any(|p| p == "none");
    if let Some(hint) = hint
        && pending.login_hint.is_none()
        && session.as_ref().is_none_or(|s| s.user_id != hint.sub)
    {
        let user = state.store.users().find(&hint.sub).await?;
        pending.login_hint = user.map(|u| u.email);
    }
    let Some(session) = session else {
        // OIDC Core 3.1.2.6: no UI may be shown.
        return Ok(if none {
            Decision::Refuse(OAuthError::new(
                "login_required",
                "the user is not signed in",
            ))
        } else {
            Decision::SignIn
        });
    };

    // OIDC Core 3.1.2.1: prompt=login, or an authentication older than
    // max_age, must be repeated; the current event no longer counts. So
    // must a session of another user than the id_token_hint names.
    // select_account is answered like login: a browser holds one session,
    // and the sign-in page is where another account can be chosen.
    let too_old = max_age(params).is_some_and(|max| now - session.auth.time > max);
    let other_user = hint.is_some_and(|h| h.sub != session.user_id);
    let fresh = prompt.iter().any(|p| p == "login" || p == "select_account");
    if too_old || other_user || fresh {
        pending.stale_auth = Some(session.auth.id.clone());
    }
    if session.satisfies(pending) {
        return Ok(match consent::check(state, pending, &session, now).await? {
            Consent::Given => Decision::Issue(session),
            // OIDC Core 3.1.2.6: no page may be shown.
            Consent::Ask if none => Decision::Refuse(consent::required()),
            Consent::Ask => Decision::AskConsent,
            // No answer exists before the request is saved.
            Consent::Refused => Decision::Refuse(consent::denied()),
        });
    }

    // A phishing-resistant level needs a passkey; a user without one can
    // never reach it (OIDC Core 3.1.2.6, RFC 9470 3).
    let no_passkey = pending.min_acr >= Acr::Phr
        && state
            .store
            .passkeys()
            .list(&session.user_id)
            .await?
            .is_empty();
    let stale = pending.stale_auth.is_some();
    Ok(match (none, no_passkey) {
        (true, _) if stale => Decision::Refuse(OAuthError::new(
            "login_required",
            "a new authentication is required",
        )),
        (true, _) => Decision::Refuse(OAuthError::new(
            "interaction_required",
            "a stronger authentication is required",
        )),
        (false, true) => Decision::Refuse(unmet()),
        (false, false) => Decision::SignIn,
    })
}

fn unmet() -> OAuthError {
    OAuthError::new(
        "unmet_authentication_requirements",
        "the user cannot reach the requested authentication level",
    )
}

/// Saves the request and sends the browser to a login page (`/login` or
/// `/consent`) that takes it by id.
async fn save_and_go(
    state: &OidcState,
    headers: &HeaderMap,
    pending: &PendingAuthorization,
    page: &str,
    now: i64,
) -> Response {
    let expires = now + state.tokens.pending_ttl;
    if let Err(err) = state
        .store
        .ephemeral()
        .put(ns::PENDING_AUTHORIZATION, &pending.id, pending, expires)
        .await
    {
        return unavailable_page(state, headers, &err);
    }
    see_other(&format!("{page}?authz={}", pending.id))
}

/// Stage one: `client_id` and `redirect_uri`, whose errors are shown, not
/// redirected. Returns the message key of the page on failure.
fn verify_client<'a>(
    state: &'a OidcState,
    params: &'a Params,
) -> Result<(&'a Client, &'a str), &'static str> {
    if params.is_duplicated("client_id") || params.is_duplicated("redirect_uri") {
        return Err("error.request_invalid");
    }
    let client_id = params.get("client_id").ok_or("error.client_missing")?;
    let client = state.clients.get(client_id).ok_or("error.client_unknown")?;
    // OIDC Core 3.1.2.1: redirect_uri is REQUIRED and must match exactly.
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or("error.redirect_uri_missing")?;
    if !client.redirect_uri_allowed(redirect_uri) {
        return Err("error.redirect_uri_mismatch");
    }
    Ok((client, redirect_uri))
}

/// Stage two: everything else, in the order of OIDC Core 3.1.2.2.
fn validate(
    state: &OidcState,
    client: &Client,
    redirect_uri: &str,
    params: &Params,
    now: i64,
) -> Result<(PendingAuthorization, Option<IdTokenHint>), OAuthError> {
    // RFC 6749 3.1: request parameters MUST NOT be included more than once.
    if let Some(name) = params.first_duplicate() {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name} was sent more than once"
        )));
    }
    if params
        .get("state")
        .is_some_and(|s| s.len() > MAX_OPAQUE_LEN)
    {
        return Err(OAuthError::invalid_request(
            "state is longer than 2048 characters",
        ));
    }
    // OIDC Core 6: we read no request objects, and say so in discovery.
    if params.get("request").is_some() {
        return Err(OAuthError::new(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(OAuthError::new(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }

    match params.get("response_type") {
        None => return Err(OAuthError::invalid_request("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let response_mode = response_mode(params)?;

    let scope = granted_scope(client, params)?;
    let code_challenge = pkce_challenge(client, params)?;
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_OPAQUE_LEN) {
        return Err(OAuthError::invalid_request(
            "nonce is longer than 2048 characters",
        ));
    }
    check_prompt_display_max_age(params)?;

    let claims = match params.get("claims") {
        Some(text) => claims::parse(text)?,
        None => claims::ClaimsRequest::default(),
    };
    let requested = claims::requested_level(&params.list("acr_values"), claims.acr.as_ref())?;
    let hint = match params.get("id_token_hint") {
        // OIDC Core 3.1.2.1: a hint we did not issue to this client is not
        // one we can act on.
        Some(token) => match id_token_hint::verify(state, token) {
            Some(h) if h.issued_to(&client.client_id) => Some(h),
            _ => return Err(OAuthError::invalid_request("id_token_hint is not valid")),
        },
        None => None,
    };

    let pending = PendingAuthorization {
        id: random_token(32)
            .map_err(|_| OAuthError::new("server_error", "no randomness"))?
            .expose()
            .to_owned(),
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: params.get("state").map(str::to_owned),
        nonce,
        code_challenge,
        response_mode,
        min_acr: requested.map_or(client.min_acr, |r| r.max(client.min_acr)),
        stale_auth: None,
        login_hint: params
            .get("login_hint")
            .map(|h| h.chars().take(256).collect()),
        ui_locales: params.list("ui_locales"),
        created_at: now,
        id_token_claims: claims.id_token,
        userinfo_claims: claims.userinfo,
        prompt_consent: params.list("prompt").iter().any(|p| p == "consent"),
    };
    Ok((pending, hint))
}

/// The value of the SSO session cookie, if the browser sent one.
pub(crate) fn session_cookie(state: &OidcState, headers: &HeaderMap) -> Option<String> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    cookie_value(&cookies, session_cookie_name(state.secure_cookies)).map(str::to_owned)
}

/// The SSO session behind the request's cookie, if it is live and its user
/// may still sign in.
pub(crate) async fn current_session(
    state: &OidcState,
    headers: &HeaderMap,
    now: i64,
) -> Result<Option<SsoSession>, zapini_store::StoreError> {
    let Some(cookie) = session_cookie(state, headers) else {
        return Ok(None);
    };
    let Some(session) = state.store.sessions().find(&cookie, now).await? else {
        return Ok(None);
    };
    let user = state.store.users().find(&session.user_id).await?;
    Ok(user.filter(|u| !u.disabled).map(|_| session))
}

/// `/authorize/continue`: where the login pages send the browser once the
/// user has authenticated or answered the consent page. Finishes the
/// pending authorization if the session now satisfies it and consent is
/// given, answers `access_denied` if the user refused, and otherwise returns
/// to the login or consent page.
pub async fn resume(
    State(state): State<OidcState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let q = Params::parse(query.unwrap_or_default().as_bytes());
    let single = q.first_duplicate().is_none();
    let Some(id) = q
        .get("authz")
        .filter(|id| single && id.len() <= 64)
        .map(str::to_owned)
    else {
        return error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_expired",
        );
    };
    let eph = state.store.ephemeral();
    let pending: Option<PendingAuthorization> =
        match eph.get(ns::PENDING_AUTHORIZATION, &id, now).await {
            Ok(p) => p,
            Err(err) => return unavailable_page(&state, &headers, &err),
        };
    let Some(pending) = pending else {
        return error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_expired",
        );
    };
    // A reload may have removed the client, or this redirect URI, since
    // the request began: nothing, not even an error, is sent there now.
    let registered = state
        .clients
        .get(&pending.client_id)
        .is_some_and(|c| c.redirect_uris.contains(&pending.redirect_uri));
    if !registered {
        if let Err(err) = eph
            .take::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, &id, now)
            .await
        {
            return unavailable_page(&state, &headers, &err);
        }
        return error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.redirect_uri_mismatch",
        );
    }
    let session = match current_session(&state, &headers, now).await {
        Ok(s) => s,
        Err(err) => return unavailable_page(&state, &headers, &err),
    };
    let Some(session) = session.filter(|s| s.satisfies(&pending)) else {
        return match eph.take::<bool>(ns::UNMET_ACR, &id, now).await {
            Ok(Some(_)) => refuse_pending(&state, &headers, &id, &unmet(), now).await,
            Ok(None) => see_other(&format!("/login?authz={id}")),
            Err(err) => unavailable_page(&state, &headers, &err),
        };
    };

    match consent::check(&state, &pending, &session, now).await {
        Ok(Consent::Given) => {}
        Ok(Consent::Ask) => return see_other(&format!("/consent?authz={id}")),
        Ok(Consent::Refused) => {
            return refuse_pending(&state, &headers, &id, &consent::denied(), now).await;
        }
        Err(err) => return unavailable_page(&state, &headers, &err),
    }

    // Taking the pending authorization is the single-use step: a double
    // submission finishes it once.
    match eph
        .take::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, &id, now)
        .await
    {
        Ok(Some(pending)) => match issue_code(&state, &pending, &session, now).await {
            Ok(response) => response,
            Err(err) => unavailable_page(&state, &headers, &err),
        },
        Ok(None) => error_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "error.request_expired",
        ),
        Err(err) => unavailable_page(&state, &headers, &err),
    }
}

async fn issue_code(
    state: &OidcState,
    pending: &PendingAuthorization,
    session: &SsoSession,
    now: i64,
) -> Result<Response, zapini_store::StoreError> {
    let code = random_token(32).map_err(|e| zapini_store::StoreError::Random(e.to_string()))?;
    let record = AuthorizationCode {
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        scope: pending.scope.clone(),
        nonce: pending.nonce.clone(),
        user_id: session.user_id.clone(),
        sid: session.sid.clone(),
        auth: session.auth.clone(),
        expires_at: now + state.tokens.code_ttl,
        id_token_claims: pending.id_token_claims.clone(),
        userinfo_claims: pending.userinfo_claims.clone(),
    };
    state
        .store
        .ephemeral()
        .put(
            ns::CODE,
            &token_hash(code.expose()),
            &record,
            record.expires_at,
        )
        .await?;
    crate::backchannel::remember_client(state, session, &pending.client_id, now).await?;
    tracing::info!(client_id = %pending.client_id, user_id = %session.user_id, "authorization code issued");

    let mut pairs = vec![("code", code.expose())];
    if let Some(s) = &pending.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    let to = (pending.redirect_uri.as_str(), pending.response_mode);
    Ok(respond(state, to, &pairs, &pending.ui_locales))
}

/// Ends a pending authorization the user cannot complete with an error to
/// its client.
async fn refuse_pending(
    state: &OidcState,
    headers: &HeaderMap,
    id: &str,
    err: &OAuthError,
    now: i64,
) -> Response {
    let eph = state.store.ephemeral();
    match eph
        .take::<PendingAuthorization>(ns::PENDING_AUTHORIZATION, id, now)
        .await
    {
        Ok(Some(pending)) => {
            let target = ErrorTarget {
                redirect_uri: &pending.redirect_uri,
                state: pending.state.as_deref(),
                mode: pending.response_mode,
            };
            redirect_error(state, &target, err)
        }
        Ok(None) => error_page(
            state,
            headers,
            StatusCode::BAD_REQUEST,
            "error.request_expired",
        ),
        Err(e) => unavailable_page(state, headers, &e),
    }
}
