//! The ephemeral store: short-lived state with an expiry.
//!
//! Two backends with the same semantics: a SQL table in the main database
//! (the embedded default: one instance needs nothing else and a restart loses
//! nothing) and Redis (several instances share it). Expiry is always decided
//! by the `now` the caller passes, so both agree with the server's clock.

mod redis_store;
mod sql_table;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zapini_core::Clock;

use crate::StoreError;
use redis_store::RedisBackend;

/// Short-lived key-value state with expiry. Values are JSON.
#[derive(Clone, Debug)]
pub struct Ephemeral {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sql(DatabaseConnection),
    Redis(RedisBackend),
}

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}:{key}")
}

fn decode<T: DeserializeOwned>(value: Option<String>) -> Result<Option<T>, StoreError> {
    value
        .map(|v| serde_json::from_str(&v))
        .transpose()
        .map_err(Into::into)
}

impl Ephemeral {
    pub(crate) fn sql(db: DatabaseConnection) -> Self {
        Self {
            backend: Backend::Sql(db),
        }
    }

    /// Connects to Redis at `url`. `clock` is the server's clock, which
    /// turns expiry times into Redis TTLs where no `now` is passed.
    pub(crate) async fn redis(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Redis(RedisBackend::connect(url, clock).await?),
        })
    }

    /// Which backend holds the state: `"sql"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sql(_) => "sql",
            Backend::Redis(_) => "redis",
        }
    }

    /// Whether the backend answers. The SQL backend is the database, which
    /// the store checks on its own.
    pub async fn ping(&self) -> bool {
        match &self.backend {
            Backend::Sql(_) => true,
            Backend::Redis(r) => r.ping().await,
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
        let value = serde_json::to_string(value)?;
        match &self.backend {
            Backend::Sql(db) => sql_table::put(db, full_key(ns, key), value, expires_at).await,
            Backend::Redis(r) => r.put(ns, key, value, expires_at).await,
        }
    }

    /// Stores `value` under `ns:key` only if nothing live is there yet; true
    /// if it was stored. Atomic, so of concurrent callers with the same key
    /// exactly one succeeds (a replay cache). An expired entry counts as
    /// absent and is replaced.
    pub async fn put_if_absent<T: Serialize>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let value = serde_json::to_string(value)?;
        match &self.backend {
            Backend::Sql(db) => {
                sql_table::put_if_absent(db, full_key(ns, key), value, expires_at, now).await
            }
            Backend::Redis(r) => r.put_if_absent(ns, key, value, expires_at, now).await,
        }
    }

    /// The value under `ns:key`, if present and not expired at `now`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let value = match &self.backend {
            Backend::Sql(db) => sql_table::get(db, full_key(ns, key), now).await?,
            Backend::Redis(r) => r.get(ns, key, now).await?,
        };
        decode(value)
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
        let value = match &self.backend {
            Backend::Sql(db) => sql_table::take(db, full_key(ns, key), now).await?,
            Backend::Redis(r) => r.take(ns, key, now).await?,
        };
        decode(value)
    }

    /// Adds one to the counter under `ns:key` and returns the new count, in
    /// one atomic step: of N concurrent callers, on any number of instances,
    /// each gets a different count and the counter ends at N more. A counter
    /// absent or expired at `now` starts again from zero. Every increment
    /// sets the expiry to `expires_at` (a sliding window).
    pub async fn increment(
        &self,
        ns: &str,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sql(db) => sql_table::increment(db, full_key(ns, key), expires_at, now).await,
            Backend::Redis(r) => r.increment(ns, key, expires_at, now).await,
        }
    }

    /// The count under `ns:key` and its expiry, if live at `now`. Clear a
    /// counter with [`Ephemeral::delete`].
    pub async fn counter(
        &self,
        ns: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<(u64, i64)>, StoreError> {
        match &self.backend {
            Backend::Sql(db) => sql_table::counter(db, full_key(ns, key), now).await,
            Backend::Redis(r) => r.counter(ns, key, now).await,
        }
    }

    /// Removes `ns:key`; returns whether anything was there.
    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sql(db) => sql_table::delete(db, full_key(ns, key)).await,
            Backend::Redis(r) => r.delete(ns, key).await,
        }
    }

    /// Removes every expired entry; returns how many. Redis drops expired
    /// values itself, so there this does nothing.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sql(db) => sql_table::purge_expired(db, now).await,
            Backend::Redis(_) => Ok(0),
        }
    }

    /// Adds `member` with `value` to the index `ns` of `owner` (for example,
    /// a user's sessions) until `expires_at`. Members are stored one by one,
    /// so concurrent additions from several instances never lose each other.
    pub async fn index_add<T: Serialize>(
        &self,
        ns: &str,
        owner: &str,
        member: &str,
        value: &T,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_string(value)?;
        match &self.backend {
            Backend::Sql(db) => {
                sql_table::index_add(db, ns, owner, member, value, expires_at).await
            }
            Backend::Redis(r) => r.index_add(ns, owner, member, value, expires_at).await,
        }
    }

    /// The values of the live members of an index, in no particular order.
    pub async fn index_list<T: DeserializeOwned>(
        &self,
        ns: &str,
        owner: &str,
        now: i64,
    ) -> Result<Vec<T>, StoreError> {
        let values = match &self.backend {
            Backend::Sql(db) => sql_table::index_list(db, ns, owner, now).await?,
            Backend::Redis(r) => r.index_list(ns, owner, now).await?,
        };
        values
            .iter()
            .map(|v| serde_json::from_str(v).map_err(Into::into))
            .collect()
    }

    /// Removes one member of an index; returns whether it was there.
    pub async fn index_remove(
        &self,
        ns: &str,
        owner: &str,
        member: &str,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sql(db) => sql_table::index_remove(db, ns, owner, member).await,
            Backend::Redis(r) => r.index_remove(ns, owner, member).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::Store;
    use crate::testing::stores;

    #[tokio::test]
    async fn values_expire() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            e.put("t", "k", &"v", 100).await.unwrap();
            let live = e.get::<String>("t", "k", 99).await.unwrap();
            assert_eq!(live.as_deref(), Some("v"), "{name}");
            assert_eq!(
                e.get::<String>("t", "k", 100).await.unwrap(),
                None,
                "{name}"
            );
            assert_eq!(
                e.take::<String>("t", "k", 100).await.unwrap(),
                None,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn take_returns_the_value_once() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            e.put("t", "k", &42, i64::MAX / 2).await.unwrap();
            assert_eq!(
                e.take::<i32>("t", "k", 1).await.unwrap(),
                Some(42),
                "{name}"
            );
            assert_eq!(e.take::<i32>("t", "k", 1).await.unwrap(), None, "{name}");
            assert!(!e.delete("t", "k").await.unwrap(), "{name}");
        }
    }

    #[tokio::test]
    async fn put_replaces_and_delete_removes() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            e.put("t", "k", &1, i64::MAX / 2).await.unwrap();
            e.put("t", "k", &2, i64::MAX / 2).await.unwrap();
            assert_eq!(e.get::<i32>("t", "k", 1).await.unwrap(), Some(2), "{name}");
            assert_eq!(e.get::<i32>("u", "k", 1).await.unwrap(), None, "{name}");
            assert!(e.delete("t", "k").await.unwrap(), "{name}");
            assert_eq!(e.get::<i32>("t", "k", 1).await.unwrap(), None, "{name}");
        }
    }

    #[tokio::test]
    async fn put_if_absent_stores_once_until_expiry() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            assert!(
                e.put_if_absent("j", "k", &1, 100, 1).await.unwrap(),
                "{name}"
            );
            assert!(
                !e.put_if_absent("j", "k", &2, 200, 50).await.unwrap(),
                "{name}"
            );
            assert_eq!(e.get::<i32>("j", "k", 50).await.unwrap(), Some(1), "{name}");
            // Once expired, the key may be used again.
            assert!(
                e.put_if_absent("j", "k", &3, 300, 100).await.unwrap(),
                "{name}"
            );
            assert_eq!(
                e.get::<i32>("j", "k", 150).await.unwrap(),
                Some(3),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn redis_drops_expired_values_itself() {
        let Some(redis) = crate::testing::redis() else {
            return;
        };
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        let clock = std::sync::Arc::new(zapini_core::SystemClock::default());
        let now = zapini_core::Clock::now(clock.as_ref());
        let store = store.with_redis(&redis.url, clock).await.unwrap();
        let e = store.ephemeral();
        e.put("t", "short", &1, now + 1).await.unwrap();
        e.put("t", "long", &1, now + 100).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(keys, ["zid:t:long"]);
    }

    #[tokio::test]
    async fn index_members_are_listed_until_removed_or_expired() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            e.index_add("ix", "alice", "m1", &1, 100).await.unwrap();
            e.index_add("ix", "alice", "m2", &2, 200).await.unwrap();
            e.index_add("ix", "alice:x", "m3", &3, 200).await.unwrap();
            e.index_add("ix", "bob", "m1", &4, 200).await.unwrap();

            let mut alice: Vec<i32> = e.index_list("ix", "alice", 50).await.unwrap();
            alice.sort();
            assert_eq!(alice, [1, 2], "{name}");
            assert!(e.index_remove("ix", "alice", "m2").await.unwrap(), "{name}");
            assert!(
                !e.index_remove("ix", "alice", "m2").await.unwrap(),
                "{name}"
            );
            let left: Vec<i32> = e.index_list("ix", "alice", 50).await.unwrap();
            assert_eq!(left, [1], "{name}");
            let later: Vec<i32> = e.index_list("ix", "alice", 150).await.unwrap();
            assert!(later.is_empty(), "{name}");
            let bob: Vec<i32> = e.index_list("ix", "bob", 150).await.unwrap();
            assert_eq!(bob, [4], "{name}");
        }
    }

    #[tokio::test]
    async fn counters_count_until_expiry_and_slide() {
        for (name, store, _guard) in stores().await {
            let e = store.ephemeral();
            assert_eq!(e.counter("c", "k", 1).await.unwrap(), None, "{name}");
            assert_eq!(e.increment("c", "k", 100, 1).await.unwrap(), 1, "{name}");
            assert_eq!(e.increment("c", "k", 150, 50).await.unwrap(), 2, "{name}");
            assert_eq!(
                e.counter("c", "k", 120).await.unwrap(),
                Some((2, 150)),
                "{name}"
            );
            // Expired: counting starts again.
            assert_eq!(e.increment("c", "k", 300, 150).await.unwrap(), 1, "{name}");
            assert!(e.delete("c", "k").await.unwrap(), "{name}");
            assert_eq!(e.counter("c", "k", 1).await.unwrap(), None, "{name}");
        }
    }

    async fn increments_all_land(store: &Store, name: &str) {
        const N: u64 = 50;
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .ephemeral()
                        .increment("n", "same", i64::MAX / 2, 1)
                        .await
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        for task in tasks {
            seen.insert(task.await.unwrap().unwrap());
        }
        assert_eq!(seen, (1..=N).collect::<BTreeSet<_>>(), "{name}");
        let count = store.ephemeral().counter("n", "same", 1).await.unwrap();
        assert_eq!(count.map(|c| c.0), Some(N), "{name}");
    }

    async fn exactly_one_taker(store: &Store, name: &str) {
        for round in 0..5 {
            let key = format!("k{round}");
            store
                .ephemeral()
                .put("t", &key, &round, i64::MAX / 2)
                .await
                .unwrap();
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
            assert_eq!(wins, 1, "{name} round {round}");
        }
    }

    async fn exactly_one_putter(store: &Store, name: &str) {
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .ephemeral()
                        .put_if_absent("jti", "same", &i, i64::MAX / 2, 1)
                        .await
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            stored += usize::from(task.await.unwrap().unwrap());
        }
        assert_eq!(stored, 1, "{name}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takers_putters_and_counters_are_exact() {
        let dir = std::env::temp_dir().join(format!("zid-eph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let file = Store::connect(&url, 8).await.unwrap();
        file.migrate().await.unwrap();
        exactly_one_taker(&file, "sqlite file").await;
        exactly_one_putter(&file, "sqlite file").await;
        increments_all_land(&file, "sqlite file").await;
        file.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        for (name, store, _guard) in stores().await {
            if name != "sqlite" {
                exactly_one_taker(&store, name).await;
                exactly_one_putter(&store, name).await;
                increments_all_land(&store, name).await;
            }
        }
    }
}
