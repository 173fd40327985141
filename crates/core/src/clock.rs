//! Time as an argument.
//!
//! Handlers read the clock once per request and pass `now` down, so domain
//! code never reads the wall clock and tests can fix time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

/// Where the current time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The system clock, optionally shifted by a fixed offset.
///
/// The offset exists for black-box tests of expiry and TOTP skew: the server
/// binary accepts it only when started with the test-clock switch, which the
/// documentation marks as never for production.
#[derive(Debug, Default)]
pub struct SystemClock {
    offset: AtomicI64,
}

impl SystemClock {
    pub fn with_offset(offset: i64) -> Self {
        Self {
            offset: AtomicI64::new(offset),
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        wall + self.offset.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = SystemClock::default();
        let before = clock.now();
        clock.advance(3600);
        assert!(clock.now() >= before + 3600);
    }
}
