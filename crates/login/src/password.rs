//! Password hashing with Argon2id (RFC 9106), off the async threads and with
//! bounded concurrency, so a burst of sign-ins cannot exhaust memory.
//!
//! Hashes run on a fixed set of worker threads, one per core, rather than on
//! the runtime's pool of blocking threads, and each worker keeps its Argon2
//! working memory (19 MiB at the minimum parameters) for the next
//! verification. Allocating it per hash left the C allocator holding
//! several freed working sets per thread: hundreds of MiB after a burst of
//! sign-ins, where kept buffers are one working set per core.

use std::cell::RefCell;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version};
use tokio::sync::oneshot;
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
    workers: Workers,
    /// A hash of a random password, verified against when the user is unknown
    /// so that unknown and known users cost the same time. Made by the first
    /// job of the workers, so that start-up does not wait for a hash.
    dummy: Arc<OnceLock<String>>,
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
        let argon2 = Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params));
        let hasher = Self {
            argon2,
            workers: Workers::start(concurrency.max(1))?,
            dummy: Arc::new(OnceLock::new()),
            policy,
        };
        let (argon2, dummy) = (hasher.argon2.clone(), hasher.dummy.clone());
        let warm_up: Job = Box::new(move || {
            dummy.get_or_init(|| dummy_hash(&argon2));
        });
        hasher
            .workers
            .queue
            .send(warm_up)
            .map_err(|_| HashError::Worker)?;
        Ok(hasher)
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
        let hash = hash.map(|h| h.expose().to_owned());
        let dummy = self.dummy.clone();
        let verified = self
            .run(move || {
                let hash = match &hash {
                    Some(hash) => hash.as_str(),
                    None => dummy.get_or_init(|| dummy_hash(&argon2)).as_str(),
                };
                verify_with_kept_memory(password.expose().as_bytes(), hash)
            })
            .await;
        known && verified.unwrap_or(false)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The waiting request may have gone; then nobody needs the result.
            let _ = done.send(job());
        });
        self.workers
            .queue
            .send(job)
            .map_err(|_| HashError::Worker)?;
        result.await.map_err(|_| HashError::Worker)
    }
}

thread_local! {
    /// The Argon2 working memory of this worker thread, grown to the largest
    /// parameters it has verified with.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Verifies `password` against a PHC string (RFC 9106 parameters, salt and
/// tag read from it, so hashes made under older parameters still verify),
/// in this thread's kept memory; the tags are compared in constant time.
fn verify_with_kept_memory(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut tag = vec![0u8; expected.len()];
    let computed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt.as_ref(), &mut tag, &mut memory[..])
            .is_ok()
    });
    computed && zapini_core::crypto::ct_eq(&tag, expected.as_bytes())
}

/// The hash of a random password. Should the random source fail, an empty
/// password is hashed instead: nobody can sign in with it, since it is only
/// verified against when no account matched.
fn dummy_hash(argon2: &Argon2<'static>) -> String {
    let random = zapini_core::crypto::random_bytes(32).unwrap_or_default();
    argon2
        .hash_password(random.as_slice())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and the queue they take jobs from. The threads stop
/// when the last sender is dropped.
#[derive(Clone)]
struct Workers {
    queue: mpsc::Sender<Job>,
}

impl Workers {
    fn start(count: usize) -> Result<Self, HashError> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..count {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // Holding the lock only while waiting for the next job.
                        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match next {
                            // A job that panics loses its answer (the
                            // request sees HashError::Worker), not the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|_| HashError::Worker)?;
        }
        Ok(Self { queue })
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
    fn hashes_under_other_parameters_verify_in_the_kept_memory() {
        let password = b"correct horse";
        for (m, t) in [(19 * 1024, 2), (8 * 1024, 3), (32 * 1024, 1)] {
            let params = Params::new(m, t, 1, None).unwrap();
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let phc = argon2.hash_password(password).unwrap().to_string();
            assert!(verify_with_kept_memory(password, &phc), "m={m} t={t}");
            assert!(!verify_with_kept_memory(b"correct horsf", &phc));
            // The library's own verification agrees.
            use argon2::PasswordVerifier as _;
            assert!(argon2.verify_password(password, phc.as_str()).is_ok());
        }
        for broken in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "not a hash",
        ] {
            assert!(!verify_with_kept_memory(password, broken));
        }
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
