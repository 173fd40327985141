//! The two documents every relying party fetches, the discovery metadata
//! and the JWK Set, kept serialised. Both follow from the key ring (and the
//! settings, which a reload does not change); a reload that brings new keys
//! brings a new [`Documents`] with them.

use std::sync::{Mutex, OnceLock, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Documents {
    discovery: OnceLock<Bytes>,
    /// The JWK Set and the second it was made for: which keys are published
    /// depends on the time (activation and retirement), so it is made again
    /// when the second changes, at most once a second.
    jwks: Mutex<Option<(i64, Bytes)>>,
}

fn serialise(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

impl Documents {
    pub fn discovery(&self, build: impl FnOnce() -> Value) -> Bytes {
        self.discovery.get_or_init(|| serialise(&build())).clone()
    }

    pub fn jwks(&self, now: i64, build: impl FnOnce() -> Value) -> Bytes {
        let mut kept = self.jwks.lock().unwrap_or_else(PoisonError::into_inner);
        match &*kept {
            Some((at, bytes)) if *at == now => bytes.clone(),
            _ => {
                let bytes = serialise(&build());
                *kept = Some((now, bytes.clone()));
                bytes
            }
        }
    }
}

/// A public JSON document: cacheable for `max_age` seconds, and readable
/// from any origin (browser-based relying parties fetch both).
pub fn public_json(body: Bytes, max_age: i64) -> Response {
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_jwks_is_made_again_when_the_second_changes() {
        let documents = Documents::default();
        let first = documents.jwks(10, || json!({ "keys": [1] }));
        let cached = documents.jwks(10, || json!({ "keys": [2] }));
        assert_eq!(first, cached);
        let next = documents.jwks(11, || json!({ "keys": [2] }));
        assert_eq!(&next[..], br#"{"keys":[2]}"#);
        let once = documents.discovery(|| json!({ "a": 1 }));
        assert_eq!(once, documents.discovery(|| json!({ "a": 2 })));
    }
}
