//! Growing delays after failed attempts, per account and per client address,
//! kept in the ephemeral store so every instance sees them.
//!
//! A few failures are free; then each failure doubles the wait, from one
//! second up to fifteen minutes. A success clears an account's record. At
//! that pace NIST SP 800-63B 5.2.2's bound of 100 consecutive failures takes
//! days.
//!
//! A failure is one atomic increment of a counter in the store, so failures
//! sent at the same moment to several instances are all counted. The wait
//! follows from the count and the time of the last failure, which the
//! counter's sliding expiry gives (`expires_at - RECORD_TTL`); no second
//! value has to be written, so there is nothing for a race to overwrite.

use zapini_store::{Store, StoreError};

/// Not the namespace of the earlier read-modify-write records (`throttle`),
/// whose JSON values are not counts; those expire within a day.
const NAMESPACE: &str = "failures";
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
    let counter = store
        .ephemeral()
        .counter(NAMESPACE, &key(kind, subject), now)
        .await?;
    Ok(counter
        .map(|(failures, expires_at)| blocked_until(failures, expires_at - RECORD_TTL, kind) - now)
        .filter(|w| *w > 0))
}

/// Records a failure; returns the wait it imposes (0 for the free ones).
pub async fn fail(store: &Store, kind: Kind, subject: &str, now: i64) -> Result<i64, StoreError> {
    let failures = store
        .ephemeral()
        .increment(NAMESPACE, &key(kind, subject), now + RECORD_TTL, now)
        .await?;
    Ok(blocked_until(failures, now, kind) - now)
}

fn blocked_until(failures: u64, last_failure: i64, kind: Kind) -> i64 {
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    last_failure + delay_after(failures, kind.free)
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
