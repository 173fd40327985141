//! SSO sessions in the ephemeral store, keyed by the hash of their cookie,
//! with a per-user index so that a user can see and end their sessions.

use serde::{Deserialize, Serialize};
use zapini_core::Secret;
use zapini_core::crypto::{random_token, token_hash};
use zapini_core::flow::{SsoSession, ns};

use crate::{Ephemeral, StoreError};

/// Namespace of the per-user session index.
const USER_SESSIONS: &str = "user_sessions";

/// An entry of a user's session index. `key` is the hash of the cookie,
/// which identifies the session without being able to open it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRef {
    pub key: String,
    pub sid: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

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

        let mut index = self.index(&session.user_id, session.created_at).await?;
        index.push(SessionRef {
            key,
            sid: session.sid.clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
        });
        self.save_index(&session.user_id, &index).await?;
        Ok(secret)
    }

    async fn index(&self, user_id: &str, now: i64) -> Result<Vec<SessionRef>, StoreError> {
        let index: Vec<SessionRef> = self
            .ephemeral
            .get(USER_SESSIONS, user_id, now)
            .await?
            .unwrap_or_default();
        Ok(index.into_iter().filter(|r| r.expires_at > now).collect())
    }

    async fn save_index(&self, user_id: &str, index: &[SessionRef]) -> Result<(), StoreError> {
        match index.iter().map(|r| r.expires_at).max() {
            Some(until) => {
                self.ephemeral
                    .put(USER_SESSIONS, user_id, &index, until)
                    .await
            }
            None => self
                .ephemeral
                .delete(USER_SESSIONS, user_id)
                .await
                .map(|_| ()),
        }
    }

    /// The live session behind a cookie value, if any.
    pub async fn find(&self, cookie: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
        self.ephemeral
            .get(ns::SESSION, &token_hash(cookie), now)
            .await
    }

    /// Ends the session behind a cookie value.
    pub async fn delete(&self, cookie: &str) -> Result<bool, StoreError> {
        self.ephemeral
            .delete(ns::SESSION, &token_hash(cookie))
            .await
    }

    /// A user's live sessions, newest first.
    pub async fn list(&self, user_id: &str, now: i64) -> Result<Vec<SessionRef>, StoreError> {
        let mut live = Vec::new();
        for entry in self.index(user_id, now).await? {
            let exists: Option<SsoSession> =
                self.ephemeral.get(ns::SESSION, &entry.key, now).await?;
            if exists.is_some() {
                live.push(entry);
            }
        }
        live.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(live)
    }

    /// Ends one of a user's sessions by its index key; false if it is not
    /// theirs or already gone.
    pub async fn end(&self, user_id: &str, key: &str, now: i64) -> Result<bool, StoreError> {
        let mut index = self.index(user_id, now).await?;
        let before = index.len();
        index.retain(|r| r.key != key);
        if index.len() == before {
            return Ok(false);
        }
        let ended = self.ephemeral.delete(ns::SESSION, key).await?;
        self.save_index(user_id, &index).await?;
        Ok(ended)
    }

    /// Ends every session of a user except `keep` (a key); returns how many.
    pub async fn end_all(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<usize, StoreError> {
        let index = self.index(user_id, now).await?;
        let mut ended = 0;
        let mut kept = Vec::new();
        for entry in index {
            if Some(entry.key.as_str()) == keep {
                kept.push(entry);
            } else if self.ephemeral.delete(ns::SESSION, &entry.key).await? {
                ended += 1;
            }
        }
        self.save_index(user_id, &kept).await?;
        Ok(ended)
    }
}
