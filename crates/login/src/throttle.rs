//! Growing delays after failed attempts, per account and per client address,
//! kept in the ephemeral store so every instance sees them.
//!
//! A few failures are free; then each failure doubles the wait, from one
//! second up to fifteen minutes. A success clears an account's record. At
//! that pace NIST SP 800-63B 5.2.2's bound of 100 consecutive failures takes
//! days.

use serde::{Deserialize, Serialize};
use zapini_store::{Store, StoreError};

const NAMESPACE: &str = "throttle";
/// What is counted, and how many failures are free.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    name: &'static str,
    free: u32,
}

/// Wrong passwords for one account.
pub const ACCOUNT_PASSWORD: Kind = Kind {
    name: "pwd",
    free: 3,
};
/// Wrong passwords from one client address, whatever the account: an
/// office behind one address gets more room than one account.
pub const ADDRESS_PASSWORD: Kind = Kind {
    name: "pwd-ip",
    free: 20,
};
/// Wrong TOTP or recovery codes for one account.
pub const SECOND_FACTOR: Kind = Kind {
    name: "2fa",
    free: 3,
};
const MAX_DELAY: i64 = 15 * 60;
const RECORD_TTL: i64 = 24 * 3600;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    failures: u32,
    blocked_until: i64,
}

fn key(kind: Kind, subject: &str) -> String {
    format!("{}:{}", kind.name, zapini_core::crypto::token_hash(subject))
}

/// The wait a subject must observe, in seconds, if any.
pub async fn wait(
    store: &Store,
    kind: Kind,
    subject: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let record: Option<Record> = store
        .ephemeral()
        .get(NAMESPACE, &key(kind, subject), now)
        .await?;
    Ok(record.map(|r| r.blocked_until - now).filter(|w| *w > 0))
}

/// Records a failure; returns the wait it imposes (0 for the free ones).
pub async fn fail(store: &Store, kind: Kind, subject: &str, now: i64) -> Result<i64, StoreError> {
    let k = key(kind, subject);
    let mut record: Record = store
        .ephemeral()
        .get(NAMESPACE, &k, now)
        .await?
        .unwrap_or_default();
    record.failures = record.failures.saturating_add(1);
    let delay = delay_after(record.failures, kind.free);
    record.blocked_until = now + delay;
    store
        .ephemeral()
        .put(NAMESPACE, &k, &record, now + RECORD_TTL)
        .await?;
    Ok(delay)
}

pub async fn clear(store: &Store, kind: Kind, subject: &str) -> Result<(), StoreError> {
    store
        .ephemeral()
        .delete(NAMESPACE, &key(kind, subject))
        .await
        .map(|_| ())
}

fn delay_after(failures: u32, free: u32) -> i64 {
    if failures <= free {
        return 0;
    }
    let exponent = (failures - free - 1).min(20);
    (1i64 << exponent).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let delays: Vec<i64> = (1..=8).map(|n| delay_after(n, 3)).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16]);
        assert_eq!(delay_after(100, 3), MAX_DELAY);
        assert_eq!(delay_after(20, 20), 0);
    }
}
