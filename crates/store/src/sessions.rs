//! SSO sessions in the ephemeral store, keyed by the hash of their cookie,
//! with a per-user index so that a user can see and end their sessions.

use serde::{Deserialize, Serialize};
use zapini_core::Secret;
use zapini_core::crypto::{random_token, token_hash};
use zapini_core::flow::{SsoSession, ns};

use crate::{Ephemeral, StoreError};

/// Namespace of the per-user session index: one member per session, so
/// sign-ins on several instances at once never drop each other's entry.
/// (Before, the index was one JSON list under `user_sessions`.)
const USER_SESSIONS: &str = "user_session";

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

        let entry = SessionRef {
            key: key.clone(),
            sid: session.sid.clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
        };
        self.ephemeral
            .index_add(
                USER_SESSIONS,
                &session.user_id,
                &key,
                &entry,
                session.expires_at,
            )
            .await?;
        Ok(secret)
    }

    async fn index(&self, user_id: &str, now: i64) -> Result<Vec<SessionRef>, StoreError> {
        self.ephemeral.index_list(USER_SESSIONS, user_id, now).await
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
        let theirs = self.index(user_id, now).await?.iter().any(|r| r.key == key);
        if !theirs {
            return Ok(false);
        }
        let ended = self.ephemeral.delete(ns::SESSION, key).await?;
        self.ephemeral
            .index_remove(USER_SESSIONS, user_id, key)
            .await?;
        Ok(ended)
    }

    /// Ends every session of a user except `keep` (a key); returns how many.
    pub async fn end_all(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut ended = 0;
        for entry in self.index(user_id, now).await? {
            if Some(entry.key.as_str()) == keep {
                continue;
            }
            if self.ephemeral.delete(ns::SESSION, &entry.key).await? {
                ended += 1;
            }
            self.ephemeral
                .index_remove(USER_SESSIONS, user_id, &entry.key)
                .await?;
        }
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use zapini_core::flow::SsoSession;
    use zapini_core::{AuthMethod, Authentication};

    use crate::testing::stores;

    fn session(user: &str, sid: &str, created_at: i64) -> SsoSession {
        SsoSession {
            sid: sid.into(),
            user_id: user.into(),
            auth: Authentication::new("a".into(), vec![AuthMethod::Password], created_at),
            created_at,
            expires_at: created_at + 1000,
            user_agent: None,
            ip: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sign_ins_all_appear_and_end_all_ends_them() {
        for (name, store, _guard) in stores().await {
            let created: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .sessions()
                            .create(&session("u1", &format!("s{i}"), 100 + i))
                            .await
                    })
                })
                .collect();
            let mut cookies = Vec::new();
            for task in created {
                cookies.push(task.await.unwrap().unwrap());
            }
            store
                .sessions()
                .create(&session("u2", "other", 100))
                .await
                .unwrap();

            let listed = store.sessions().list("u1", 150).await.unwrap();
            assert_eq!(listed.len(), 8, "{name}");
            assert_eq!(listed[0].sid, "s7", "{name}: newest first");

            let keep = zapini_core::crypto::token_hash(cookies[0].expose());
            let ended = store
                .sessions()
                .end_all("u1", Some(&keep), 150)
                .await
                .unwrap();
            assert_eq!(ended, 7, "{name}");
            let left = store.sessions().list("u1", 150).await.unwrap();
            assert_eq!(left.len(), 1, "{name}");
            assert!(
                store
                    .sessions()
                    .find(cookies[0].expose(), 150)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .sessions()
                    .find(cookies[1].expose(), 150)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(
                store.sessions().list("u2", 150).await.unwrap().len(),
                1,
                "{name}"
            );

            assert!(
                store.sessions().end("u1", &keep, 150).await.unwrap(),
                "{name}"
            );
            assert!(
                !store.sessions().end("u2", &keep, 150).await.unwrap(),
                "{name}"
            );
            assert!(
                store.sessions().list("u1", 150).await.unwrap().is_empty(),
                "{name}"
            );
        }
    }
}
