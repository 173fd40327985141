//! The ephemeral store: short-lived state with an expiry.
//!
//! On the embedded default it is a SQL table in the same database, so one
//! instance needs nothing else and a restart loses nothing. Single-use items
//! are consumed with `DELETE … RETURNING`: the delete is the decision, so of
//! any number of concurrent takers exactly one gets the value.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter, Set};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;
use crate::entity::ephemeral::{ActiveModel, Column, Entity};

/// Short-lived key-value state with expiry. Values are JSON.
#[derive(Clone, Debug)]
pub struct Ephemeral {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sql(DatabaseConnection),
}

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}:{key}")
}

impl Ephemeral {
    pub(crate) fn sql(db: DatabaseConnection) -> Self {
        Self {
            backend: Backend::Sql(db),
        }
    }

    /// Stores `value` under `ns:key` until `expires_at`, replacing any value.
    pub async fn put<T: Serialize>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let Backend::Sql(db) = &self.backend;
        let row = ActiveModel {
            key: Set(full_key(ns, key)),
            value: Set(serde_json::to_string(value)?),
            expires_at: Set(expires_at),
        };
        let upsert = OnConflict::column(Column::Key)
            .update_columns([Column::Value, Column::ExpiresAt])
            .to_owned();
        Entity::insert(row).on_conflict(upsert).exec(db).await?;
        Ok(())
    }

    /// Stores `value` under `ns:key` only if nothing live is there yet; true
    /// if it was stored. One statement, so of concurrent callers with the
    /// same key exactly one succeeds (a replay cache). An expired entry
    /// counts as absent and is replaced.
    pub async fn put_if_absent<T: Serialize>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Backend::Sql(db) = &self.backend;
        let row = ActiveModel {
            key: Set(full_key(ns, key)),
            value: Set(serde_json::to_string(value)?),
            expires_at: Set(expires_at),
        };
        let replace_expired = OnConflict::column(Column::Key)
            .update_columns([Column::Value, Column::ExpiresAt])
            .action_and_where(Expr::col((Entity, Column::ExpiresAt)).lte(now))
            .to_owned();
        let stored = Entity::insert(row)
            .on_conflict(replace_expired)
            .exec_without_returning(db)
            .await?;
        Ok(stored == 1)
    }

    /// The value under `ns:key`, if present and not expired at `now`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let Backend::Sql(db) = &self.backend;
        let row = Entity::find_by_id(full_key(ns, key))
            .filter(Column::ExpiresAt.gt(now))
            .one(db)
            .await?;
        row.map(|r| serde_json::from_str(&r.value))
            .transpose()
            .map_err(Into::into)
    }

    /// Removes and returns the value under `ns:key`, atomically: of several
    /// concurrent callers at most one receives it. An expired value is
    /// removed and reported as absent.
    pub async fn take<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let Backend::Sql(db) = &self.backend;
        let deleted = Entity::delete_by_id(full_key(ns, key))
            .exec_with_returning(db)
            .await?;
        match deleted {
            Some(row) if row.expires_at > now => Ok(Some(serde_json::from_str(&row.value)?)),
            _ => Ok(None),
        }
    }

    /// Removes `ns:key`; returns whether anything was there.
    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let Backend::Sql(db) = &self.backend;
        let result = Entity::delete_by_id(full_key(ns, key)).exec(db).await?;
        Ok(result.rows_affected > 0)
    }

    /// Removes every expired entry; returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let Backend::Sql(db) = &self.backend;
        let result = Entity::delete_many()
            .filter(Column::ExpiresAt.lte(now))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::Store;

    async fn store() -> Store {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn values_expire() {
        let store = store().await;
        let e = store.ephemeral();
        e.put("t", "k", &"v", 100).await.unwrap();
        assert_eq!(
            e.get::<String>("t", "k", 99).await.unwrap().as_deref(),
            Some("v")
        );
        assert_eq!(e.get::<String>("t", "k", 100).await.unwrap(), None);
        assert_eq!(e.take::<String>("t", "k", 100).await.unwrap(), None);
    }

    #[tokio::test]
    async fn take_returns_the_value_once() {
        let store = store().await;
        let e = store.ephemeral();
        e.put("t", "k", &42, 100).await.unwrap();
        assert_eq!(e.take::<i32>("t", "k", 1).await.unwrap(), Some(42));
        assert_eq!(e.take::<i32>("t", "k", 1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn put_if_absent_stores_once_until_expiry() {
        let store = store().await;
        let e = store.ephemeral();
        assert!(e.put_if_absent("j", "k", &1, 100, 1).await.unwrap());
        assert!(!e.put_if_absent("j", "k", &2, 200, 50).await.unwrap());
        assert_eq!(e.get::<i32>("j", "k", 50).await.unwrap(), Some(1));
        // Once expired, the key may be used again.
        assert!(e.put_if_absent("j", "k", &3, 300, 100).await.unwrap());
        assert_eq!(e.get::<i32>("j", "k", 150).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn concurrent_takers_get_the_value_exactly_once() {
        let dir = std::env::temp_dir().join(format!("zid-eph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let store = Store::connect(&url, 8).await.unwrap();
        store.migrate().await.unwrap();

        for round in 0..5 {
            let key = format!("k{round}");
            store.ephemeral().put("t", &key, &round, 100).await.unwrap();
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let store = store.clone();
                    let key = key.clone();
                    tokio::spawn(async move { store.ephemeral().take::<i32>("t", &key, 1).await })
                })
                .collect();
            let mut winners = BTreeSet::new();
            let mut wins = 0;
            for task in tasks {
                if let Some(v) = task.await.unwrap().unwrap() {
                    wins += 1;
                    winners.insert(v);
                }
            }
            assert_eq!(wins, 1, "round {round}");
        }
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
