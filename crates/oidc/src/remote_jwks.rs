//! Client keys fetched from a client's `jwks_uri` (RFC 7591 2, OIDC Core
//! 10.1), with the server's one outgoing HTTP client.
//!
//! A client that publishes its keys at a URL can rotate them without the
//! operator editing its file. The set is fetched when first needed and kept
//! for the time the client's `Cache-Control: max-age` allows, within
//! bounds. An assertion whose `kid` is not in the kept set makes the server
//! fetch again, at most once per [`REFETCH_AFTER`] seconds per client, which
//! is how OIDC Core 10.1.1 expects a signer's new key to be picked up. When
//! the URL cannot be reached, a set fetched within the last
//! [`STALE_LIMIT`] seconds keeps working, so a brief outage at the client
//! does not lock it out.
//!
//! The URL is the one the operator registered: redirects are not followed,
//! the answer must be a `200` with at most [`MAX_BODY`] bytes, no key may
//! have private parts, and the keys used are those that pass the checks of
//! inline `jwks`; encryption keys and other key types are left out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::assertion::{ClientKey, parse_published_jwks};

/// Kept this long when the answer says nothing about caching.
const DEFAULT_MAX_AGE: i64 = 300;
/// The bounds put on the client's `max-age`.
const MIN_MAX_AGE: i64 = 60;
const MAX_MAX_AGE: i64 = 24 * 3600;
/// An unknown `kid` causes a new fetch only if the last one is older.
pub const REFETCH_AFTER: i64 = 30;
/// A set older than this is no longer used when the URL fails.
pub const STALE_LIMIT: i64 = 24 * 3600;
/// A JWK Set of a handful of RSA keys is a few kilobytes.
const MAX_BODY: usize = 64 * 1024;

const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// The outgoing HTTP client: TLS through the system's OpenSSL and its
/// certificate store, short timeouts, no redirects, no cookies.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("zapini-id/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(NETWORK_TIMEOUT)
        .timeout(NETWORK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

struct Cached {
    keys: Arc<Vec<ClientKey>>,
    fetched_at: i64,
    fresh_until: i64,
}

/// The key sets of the clients that use `jwks_uri`, shared by the requests
/// of one instance.
pub struct RemoteKeySets {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// The moment of the last fetch attempt per URL, so that a stream of
    /// assertions with unknown `kid`s cannot make the server hammer the
    /// client's URL.
    attempts: Mutex<HashMap<String, i64>>,
    /// One fetch at a time per URL: a burst of first requests waits for
    /// one answer instead of sending a request each.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RemoteKeySets {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// The keys published at `uri`, fetched again when the kept set is
    /// stale or lacks `kid`.
    pub async fn keys(
        &self,
        uri: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<Vec<ClientKey>>, String> {
        if let Some(keys) = self.usable(uri, kid, now) {
            return Ok(keys);
        }
        let lock = self
            .fetching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(uri.to_owned())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(keys) = self.usable(uri, kid, now) {
            return Ok(keys);
        }
        let kept = self.kept(uri);
        let attempted_recently = {
            let attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            attempts
                .get(uri)
                .is_some_and(|at| now - at < REFETCH_AFTER && now >= *at)
        };
        if attempted_recently {
            return kept
                .map(|c| c.keys)
                .ok_or_else(|| "the last fetch failed moments ago".into());
        }
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uri.to_owned(), now);
        match self.fetch(uri).await {
            Ok((keys, max_age)) => {
                let keys = Arc::new(keys);
                let entry = Cached {
                    keys: keys.clone(),
                    fetched_at: now,
                    fresh_until: now + max_age,
                };
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(uri.to_owned(), entry);
                Ok(keys)
            }
            Err(reason) => match kept {
                Some(c) if now - c.fetched_at <= STALE_LIMIT => {
                    tracing::warn!(uri, reason, "client keys not refreshed; using the kept set");
                    Ok(c.keys)
                }
                _ => Err(reason),
            },
        }
    }

    fn kept(&self, uri: &str) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(uri).map(|c| Cached {
            keys: c.keys.clone(),
            fetched_at: c.fetched_at,
            fresh_until: c.fresh_until,
        })
    }

    /// The kept set, if it is fresh and holds `kid` (or no `kid` is asked).
    fn usable(&self, uri: &str, kid: Option<&str>, now: i64) -> Option<Arc<Vec<ClientKey>>> {
        let cached = self.kept(uri)?;
        let fresh = now < cached.fresh_until && now >= cached.fetched_at;
        let has_kid =
            kid.is_none_or(|k| cached.keys.iter().any(|key| key.kid.as_deref() == Some(k)));
        (fresh && has_kid).then_some(cached.keys)
    }

    async fn fetch(&self, uri: &str) -> Result<(Vec<ClientKey>, i64), String> {
        let mut response = self
            .http
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| format!("not reachable: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("answered {}", response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or(DEFAULT_MAX_AGE, max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("answer cut short: {e}"))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("answer longer than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        let keys = parse_published_jwks(&value)?;
        Ok((keys, max_age))
    }
}

/// The `max-age` of a `Cache-Control` value (RFC 9111 5.2.2.1), within the
/// bounds; `no-store` and `no-cache` give the least.
fn max_age(header: &str) -> i64 {
    let mut age = DEFAULT_MAX_AGE;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_MAX_AGE;
        }
        if let Some(value) = lower.strip_prefix("max-age=")
            && let Ok(seconds) = value.trim_matches('"').parse::<i64>()
        {
            age = seconds;
        }
    }
    age.clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_bounded() {
        assert_eq!(max_age("public, max-age=600"), 600);
        assert_eq!(max_age("max-age=5"), MIN_MAX_AGE);
        assert_eq!(max_age("max-age=99999999"), MAX_MAX_AGE);
        assert_eq!(max_age("no-store"), MIN_MAX_AGE);
        assert_eq!(max_age("Max-Age=\"120\""), 120);
        assert_eq!(max_age("private"), DEFAULT_MAX_AGE);
        assert_eq!(max_age("max-age=abc"), DEFAULT_MAX_AGE);
    }
}
