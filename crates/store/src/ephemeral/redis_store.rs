//! The ephemeral store on Redis, for several instances sharing state.
//!
//! Every value is stored as `expires_at:json`, so expiry is decided by the
//! caller's clock exactly as on SQL, and Redis also gets a TTL so that it
//! drops the value itself. Single-use items are taken with `GETDEL`; every
//! check-and-change is one Lua script, which Redis runs atomically.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use zapini_core::Clock;

use crate::StoreError;

/// Requests fail after this long without an answer, so that a page or a
/// token request answers "try again" instead of hanging while Redis is away.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Stores ARGV[1] with a TTL of ARGV[2] ms unless a value whose expiry
/// (its prefix) is after ARGV[3] is there.
static PUT_IF_ABSENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if current then
            local expires = tonumber(string.match(current, '^(-?%d+):'))
            if expires ~= nil and expires > tonumber(ARGV[3]) then
                return 0
            end
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        ",
    )
});

/// Adds field ARGV[1] = ARGV[2] to hash KEYS[1] and makes the hash live at
/// least ARGV[3] ms, never shortening the life of its other members.
static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
            redis.call('PEXPIRE', KEYS[1], ARGV[3])
        end
        return 1
        ",
    )
});

/// Adds one to the counter in KEYS[1] (an envelope `expires:n`), starting
/// from zero if it is absent or expired at ARGV[2]; stores it with expiry
/// ARGV[1] and a TTL of ARGV[3] ms, and returns the new count.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local n = 0
        local current = redis.call('GET', KEYS[1])
        if current then
            local expires, count = string.match(current, '^(-?%d+):(%d+)$')
            if expires ~= nil and tonumber(expires) > tonumber(ARGV[2]) then
                n = tonumber(count)
            end
        end
        n = n + 1
        redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%d', n), 'PX', ARGV[3])
        return n
        ",
    )
});

#[derive(Clone)]
pub(super) struct RedisBackend {
    conn: ConnectionManager,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").finish_non_exhaustive()
    }
}

fn key(ns: &str, key: &str) -> String {
    format!("zid:{ns}:{key}")
}

fn index_key(ns: &str, owner: &str) -> String {
    format!("zid:idx:{ns}:{owner}")
}

fn envelope(value: &str, expires_at: i64) -> String {
    format!("{expires_at}:{value}")
}

/// The value of an envelope if it is live at `now`.
fn open(envelope: &str, now: i64) -> Option<String> {
    let (expires, value) = envelope.split_once(':')?;
    let expires: i64 = expires.parse().ok()?;
    (expires > now).then(|| value.to_owned())
}

/// Longest TTL given to Redis; nothing ephemeral lives this long, and Redis
/// refuses TTLs that overflow its clock.
const MAX_TTL_MS: i64 = 400 * 24 * 3600 * 1000;

/// Milliseconds from `now` to `expires_at`, at least one: Redis refuses a
/// zero TTL, and a value that is already expired is never returned anyway.
fn ttl_ms(expires_at: i64, now: i64) -> i64 {
    expires_at
        .saturating_sub(now)
        .saturating_mul(1000)
        .clamp(1, MAX_TTL_MS)
}

impl RedisBackend {
    /// Connects to `url` (`redis://host:port/db`); fails if Redis does not
    /// answer now. Later, a lost connection is re-made in the background.
    pub(super) async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn, clock })
    }

    pub(super) async fn put(
        &self,
        ns: &str,
        k: &str,
        value: String,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let ttl = ttl_ms(expires_at, self.clock.now());
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(key(ns, k))
            .arg(envelope(&value, expires_at))
            .arg("PX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(super) async fn put_if_absent(
        &self,
        ns: &str,
        k: &str,
        value: String,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let stored: i64 = PUT_IF_ABSENT
            .key(key(ns, k))
            .arg(envelope(&value, expires_at))
            .arg(ttl_ms(expires_at, now))
            .arg(now)
            .invoke_async(&mut conn)
            .await?;
        Ok(stored == 1)
    }

    pub(super) async fn increment(
        &self,
        ns: &str,
        k: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let count: u64 = INCREMENT
            .key(key(ns, k))
            .arg(expires_at)
            .arg(now)
            .arg(ttl_ms(expires_at, now))
            .invoke_async(&mut conn)
            .await?;
        Ok(count)
    }

    pub(super) async fn counter(
        &self,
        ns: &str,
        k: &str,
        now: i64,
    ) -> Result<Option<(u64, i64)>, StoreError> {
        let mut conn = self.conn.clone();
        let stored: Option<String> = conn.get(key(ns, k)).await?;
        Ok(stored.as_deref().and_then(|e| {
            let (expires, count) = e.split_once(':')?;
            let expires: i64 = expires.parse().ok()?;
            (expires > now).then_some((count.parse().ok()?, expires))
        }))
    }

    pub(super) async fn get(
        &self,
        ns: &str,
        k: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let stored: Option<String> = conn.get(key(ns, k)).await?;
        Ok(stored.and_then(|e| open(&e, now)))
    }

    pub(super) async fn take(
        &self,
        ns: &str,
        k: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let stored: Option<String> = conn.get_del(key(ns, k)).await?;
        Ok(stored.and_then(|e| open(&e, now)))
    }

    pub(super) async fn delete(&self, ns: &str, k: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 = conn.del(key(ns, k)).await?;
        Ok(removed > 0)
    }

    pub(super) async fn index_add(
        &self,
        ns: &str,
        owner: &str,
        member: &str,
        value: String,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = INDEX_ADD
            .key(index_key(ns, owner))
            .arg(member)
            .arg(envelope(&value, expires_at))
            .arg(ttl_ms(expires_at, self.clock.now()))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The live members; expired ones are removed on the way.
    pub(super) async fn index_list(
        &self,
        ns: &str,
        owner: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, String)> = conn.hgetall(index_key(ns, owner)).await?;
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (member, stored) in all {
            match open(&stored, now) {
                Some(value) => live.push(value),
                None => expired.push(member),
            }
        }
        if !expired.is_empty() {
            let _: i64 = conn.hdel(index_key(ns, owner), expired).await?;
        }
        Ok(live)
    }

    pub(super) async fn index_remove(
        &self,
        ns: &str,
        owner: &str,
        member: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 = conn.hdel(index_key(ns, owner), member).await?;
        Ok(removed > 0)
    }

    /// Whether Redis answers `PING`.
    pub(super) async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_their_expiry() {
        let e = envelope("{\"a\":\"b:c\"}", 100);
        assert_eq!(open(&e, 99).as_deref(), Some("{\"a\":\"b:c\"}"));
        assert_eq!(open(&e, 100), None);
        assert_eq!(open("garbage", 0), None);
        assert_eq!(ttl_ms(100, 99), 1000);
        assert_eq!(ttl_ms(100, 200), 1);
        assert_eq!(ttl_ms(i64::MAX, 0), MAX_TTL_MS);
    }
}
