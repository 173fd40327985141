//! SSO sessions in the ephemeral store, keyed by the hash of their cookie.

use zapini_core::Secret;
use zapini_core::crypto::{random_token, token_hash};
use zapini_core::flow::{SsoSession, ns};

use crate::{Ephemeral, StoreError};

/// Repository of SSO sessions.
#[derive(Debug)]
pub struct Sessions<'a> {
    ephemeral: &'a Ephemeral,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(ephemeral: &'a Ephemeral) -> Self {
        Self { ephemeral }
    }

    /// Stores `session` and returns the secret for its cookie.
    pub async fn create(&self, session: &SsoSession) -> Result<Secret, StoreError> {
        let secret = random_token(32).map_err(|e| StoreError::Random(e.to_string()))?;
        let key = token_hash(secret.expose());
        self.ephemeral
            .put(ns::SESSION, &key, session, session.expires_at)
            .await?;
        Ok(secret)
    }

    /// The live session behind a cookie value, if any.
    pub async fn find(&self, cookie: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
        let key = token_hash(cookie);
        self.ephemeral.get(ns::SESSION, &key, now).await
    }

    /// Ends the session behind a cookie value.
    pub async fn delete(&self, cookie: &str) -> Result<bool, StoreError> {
        self.ephemeral
            .delete(ns::SESSION, &token_hash(cookie))
            .await
    }
}
