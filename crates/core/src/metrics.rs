//! Counters the web crates move and the binary publishes on `/metrics`:
//! sign-in checks by method and outcome, tokens by grant type.
//!
//! A struct of atomics, shared through each crate's state rather than a
//! global, so a test or a second server in one process counts on its own.
//! The label values are fixed here, so nothing a client sends becomes one.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a sign-in step checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    Totp,
    RecoveryCode,
    Passkey,
}

impl SignInMethod {
    pub const ALL: [SignInMethod; 4] = [
        SignInMethod::Password,
        SignInMethod::Totp,
        SignInMethod::RecoveryCode,
        SignInMethod::Passkey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Totp => "totp",
            SignInMethod::RecoveryCode => "recovery_code",
            SignInMethod::Passkey => "passkey",
        }
    }
}

/// The grant a token response answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl Grant {
    pub const ALL: [Grant; 3] = [
        Grant::AuthorizationCode,
        Grant::RefreshToken,
        Grant::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::RefreshToken => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// The counters; share one behind an `Arc`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Indexed by method, then success (0) or failure (1).
    sign_ins: [[AtomicU64; 2]; 4],
    tokens: [AtomicU64; 3],
}

impl Counters {
    /// One sign-in check of `method`, passed or not.
    pub fn sign_in(&self, method: SignInMethod, success: bool) {
        self.sign_ins[method as usize][usize::from(!success)].fetch_add(1, Ordering::Relaxed);
    }

    /// One successful token response for `grant`.
    pub fn token_issued(&self, grant: Grant) {
        self.tokens[grant as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Checks of `method` with this outcome since start.
    pub fn sign_ins(&self, method: SignInMethod, success: bool) -> u64 {
        self.sign_ins[method as usize][usize::from(!success)].load(Ordering::Relaxed)
    }

    /// Token responses for `grant` since start.
    pub fn tokens(&self, grant: Grant) -> u64 {
        self.tokens[grant as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_moves_alone() {
        let c = Counters::default();
        c.sign_in(SignInMethod::Totp, false);
        c.sign_in(SignInMethod::Totp, false);
        c.sign_in(SignInMethod::Passkey, true);
        c.token_issued(Grant::RefreshToken);
        assert_eq!(c.sign_ins(SignInMethod::Totp, false), 2);
        assert_eq!(c.sign_ins(SignInMethod::Totp, true), 0);
        assert_eq!(c.sign_ins(SignInMethod::Passkey, true), 1);
        assert_eq!(c.sign_ins(SignInMethod::Password, false), 0);
        assert_eq!(c.tokens(Grant::RefreshToken), 1);
        assert_eq!(c.tokens(Grant::ClientCredentials), 0);
    }
}
