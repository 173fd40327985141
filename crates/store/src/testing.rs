//! Stores for unit tests: SQLite in memory, SQLite with a throwaway Redis
//! (started here from `redis-server`), and PostgreSQL when
//! `ZAPINI_TEST_POSTGRES_URL` names a server the tests may create databases
//! on (`tests/run` starts one).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use zapini_core::SystemClock;

use crate::Store;

/// A `redis-server` child process, killed on drop.
pub struct TestRedis {
    child: Child,
    pub url: String,
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Starts a Redis with no persistence on a free loopback port, or `None`
/// (with a message) if `redis-server` is not installed.
pub fn redis() -> Option<TestRedis> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!(
            "SKIPPED the Redis backend: redis-server is not installed (tests/run installs it)"
        );
        return None;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(TestRedis {
        child,
        url: format!("redis://127.0.0.1:{port}/"),
    })
}

/// A fresh, migrated store on every backend available, with its name and
/// whatever must live as long as it.
pub async fn stores() -> Vec<(&'static str, Store, Option<TestRedis>)> {
    let sqlite = Store::connect("sqlite::memory:", 1).await.unwrap();
    sqlite.migrate().await.unwrap();
    let mut all = vec![("sqlite", sqlite, None)];

    if let Some(redis) = redis() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        // The tests pass small Unix times as `now`; the clock that turns
        // expiry into Redis TTLs starts near zero to match them.
        let wall = zapini_core::Clock::now(&SystemClock::default());
        let clock = Arc::new(SystemClock::with_offset(-wall));
        let store = store.with_redis(&redis.url, clock).await.unwrap();
        all.push(("sqlite+redis", store, Some(redis)));
    }
    if let Some(store) = postgres().await {
        all.push(("postgres", store, None));
    }
    all
}

/// A fresh, migrated store for the repositories' tests: SQLite in memory,
/// or PostgreSQL when `ZAPINI_TEST_STORE_BACKEND=postgres` (`tests/run` runs
/// the store's tests both ways).
pub async fn primary() -> Store {
    if std::env::var("ZAPINI_TEST_STORE_BACKEND").as_deref() == Ok("postgres") {
        return postgres()
            .await
            .expect("ZAPINI_TEST_POSTGRES_URL for ZAPINI_TEST_STORE_BACKEND=postgres");
    }
    let store = Store::connect("sqlite::memory:", 1).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A migrated store on a new database of the PostgreSQL server named by
/// `ZAPINI_TEST_POSTGRES_URL`, if set.
pub async fn postgres() -> Option<Store> {
    let Ok(base) = std::env::var("ZAPINI_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED PostgreSQL: ZAPINI_TEST_POSTGRES_URL is not set (tests/run sets it)");
        return None;
    };
    let name = format!(
        "zid_unit_{}",
        zapini_core::crypto::random_bytes(8)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let admin = Database::connect(&base).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let _ = admin.close().await;

    let (path, query) = base.split_once('?').unwrap_or((&base, ""));
    let (server, _) = path.rsplit_once('/').unwrap();
    let url = match query {
        "" => format!("{server}/{name}"),
        q => format!("{server}/{name}?{q}"),
    };
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}
