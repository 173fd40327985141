//! OpenID Connect Back-Channel Logout 1.0: when a session ends, every
//! client that got a code in it and registered a `backchannel_logout_uri`
//! receives a logout token, posted from a background task that retries
//! with growing waits and never holds up the user's page.

use std::time::Duration;

use serde_json::{Map, Value, json};
use zapini_core::crypto::random_token;
use zapini_core::flow::{SessionEnded, SsoSession};

use crate::clients::Client;
use crate::{LiveState, OidcState};

/// Section 2.4: the event member of a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Ephemeral namespace: the clients that got a code in a session, by `sid`.
const SESSION_CLIENTS: &str = "session_clients";

/// How many times a delivery is tried; the waits between are 1, 2, 4, 8 s.
const ATTEMPTS: u32 = 5;

/// How long a logout token is valid, in seconds.
pub const LOGOUT_TOKEN_TTL: i64 = 120;

/// Notifies the clients of sessions signed out on the login pages.
pub struct Notifier {
    state: LiveState,
}

impl Notifier {
    pub fn new(state: LiveState) -> Self {
        Self { state }
    }
}

impl SessionEnded for Notifier {
    fn session_ended(&self, sid: &str, user_id: &str, now: i64) {
        // The clients and keys in force now, not those of start-up.
        let state = self.state.snapshot();
        let (sid, user_id) = (sid.to_owned(), user_id.to_owned());
        tokio::spawn(async move { notify(&state, &sid, &user_id, now).await });
    }
}

/// Remembers that `client_id` got a code in `session`, for its logout.
/// The list is read and written back, so two codes issued for different
/// clients of one session at the same instant can lose one entry; that
/// client then learns of the logout only from its next request.
pub async fn remember_client(
    state: &OidcState,
    session: &SsoSession,
    client_id: &str,
    now: i64,
) -> Result<(), zapini_store::StoreError> {
    let eph = state.store.ephemeral();
    let mut clients: Vec<String> = eph
        .get(SESSION_CLIENTS, &session.sid, now)
        .await?
        .unwrap_or_default();
    if clients.iter().any(|c| c == client_id) {
        return Ok(());
    }
    clients.push(client_id.to_owned());
    eph.put(SESSION_CLIENTS, &session.sid, &clients, session.expires_at)
        .await
}

/// Sends logout tokens for an ended session to its clients, in the
/// background.
pub async fn notify(state: &OidcState, sid: &str, user_id: &str, now: i64) {
    let taken = state
        .store
        .ephemeral()
        .take::<Vec<String>>(SESSION_CLIENTS, sid, now)
        .await;
    let clients = match taken {
        Ok(found) => found.unwrap_or_default(),
        Err(err) => {
            tracing::error!(error = %err, "back-channel logout: clients of the session unknown");
            return;
        }
    };
    for client in clients.iter().filter_map(|id| state.clients.get(id)) {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        match logout_token(state, client, sid, user_id, now) {
            Ok(token) => {
                let client_id = client.client_id.clone();
                tokio::spawn(deliver(state.http.clone(), client_id, uri, token));
            }
            Err(err) => tracing::error!(error = %err, "logout token could not be signed"),
        }
    }
}

/// Section 2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid` and
/// `events`, no `nonce`; section 2.4 recommends the `logout+jwt` type.
fn logout_token(
    state: &OidcState,
    client: &Client,
    sid: &str,
    user_id: &str,
    now: i64,
) -> Result<String, crate::keys::KeyError> {
    let jti = random_token(16)?;
    let claims = json!({
        "iss": state.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": jti.expose(),
        "sub": user_id,
        "sid": sid,
        "events": { EVENT: {} },
    });
    let claims = match claims {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    state
        .keys
        .sign(&client.id_token_alg, "logout+jwt", claims, now)
}

/// Posts the token, retrying network failures and 5xx answers. A 4xx
/// answer means the client refused the token (section 2.8): not retried.
async fn deliver(http: reqwest::Client, client_id: String, uri: String, token: String) {
    let mut wait = 1;
    for attempt in 1..=ATTEMPTS {
        match post_token(&http, &uri, &token).await {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(client_id, "back-channel logout delivered");
                return;
            }
            Ok(status) if (400..500).contains(&status) => {
                tracing::warn!(
                    client_id,
                    status,
                    "back-channel logout refused by the client"
                );
                return;
            }
            Ok(status) => {
                tracing::warn!(client_id, status, attempt, "back-channel logout failed")
            }
            Err(err) => {
                tracing::warn!(client_id, error = %err, attempt, "back-channel logout failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            wait *= 2;
        }
    }
    tracing::error!(client_id, "back-channel logout given up");
}

/// One form POST of `logout_token` (section 2.5), returning the status
/// code; the client's answer body is not read. Redirects are not followed:
/// the token goes only to the registered URI.
async fn post_token(http: &reqwest::Client, uri: &str, token: &str) -> Result<u16, String> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish();
    let response = http
        .post(uri)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}
