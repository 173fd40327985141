//! Password hashing with Argon2id (RFC 9106), off the async threads and with
//! bounded concurrency, so a burst of sign-ins cannot exhaust memory.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;
use zapini_core::Secret;

/// Argon2id cost parameters. The OWASP minimum (19 MiB, 2 passes, 1 lane) is
/// also the floor: configuration cannot go below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordPolicy {
    pub const MINIMUM: PasswordPolicy = PasswordPolicy {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Whether these parameters are at least the OWASP minimum.
    pub fn is_strong_enough(&self) -> bool {
        self.memory_kib >= Self::MINIMUM.memory_kib
            && self.iterations >= Self::MINIMUM.iterations
            && self.parallelism >= 1
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::MINIMUM
    }
}

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The parameters are not valid Argon2 parameters.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The worker running the hash stopped.
    #[error("hashing worker failed")]
    Worker,
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user is unknown
    /// so that unknown and known users cost the same time.
    dummy: Arc<String>,
    pub policy: PasswordPolicy,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("policy", &self.policy)
            .finish()
    }
}

/// Longest password accepted, in bytes; longer input is refused before any
/// hashing so it cannot be used to burn CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Shortest new password (NIST SP 800-63B 3.1.1.2 asks for at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;

impl PasswordHasher {
    /// `concurrency` hashes may run at once (one per core is right).
    pub fn new(policy: PasswordPolicy, concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon2
            .hash_password(
                zapini_core::crypto::random_bytes(32)
                    .unwrap_or_default()
                    .as_slice(),
            )
            .map_err(|e| HashError::Argon2(e.to_string()))?
            .to_string();
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
            policy,
        })
    }

    /// Hashes a new password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: &Secret) -> Result<Secret, HashError> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        self.run(move || {
            argon2
                .hash_password(password.expose().as_bytes())
                .map(|h| Secret::new(h.to_string()))
                .map_err(|e| HashError::Argon2(e.to_string()))
        })
        .await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown user, no
    /// password set) it verifies against the dummy hash and returns false.
    pub async fn verify(&self, password: &Secret, hash: Option<&Secret>) -> bool {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        let known = hash.is_some();
        let hash = hash
            .map(|h| h.expose().to_owned())
            .unwrap_or_else(|| self.dummy.to_string());
        let verified = self
            .run(move || {
                argon2
                    .verify_password(password.expose().as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await;
        known && verified.unwrap_or(false)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Worker)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| HashError::Worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(PasswordPolicy::MINIMUM, 2).unwrap();
        let hash = hasher.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify(&Secret::new("correct horse"), Some(&hash))
                .await
        );
        assert!(
            !hasher
                .verify(&Secret::new("wrong horse"), Some(&hash))
                .await
        );
        assert!(!hasher.verify(&Secret::new("correct horse"), None).await);
    }

    #[test]
    fn weaker_than_owasp_is_refused() {
        let weak = PasswordPolicy {
            memory_kib: 4096,
            ..PasswordPolicy::MINIMUM
        };
        assert!(!weak.is_strong_enough());
        assert!(PasswordPolicy::MINIMUM.is_strong_enough());
    }
}
