use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::DbErr;

/// Database and Redis failures since start, for `/metrics`.
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many database or Redis operations have failed since start (conflicts
/// and unreadable values not included).
pub fn error_count() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or cannot be reached.
    #[error("database: {0}")]
    Db(#[source] DbErr),
    /// Redis (the shared ephemeral store) refused a command or cannot be
    /// reached.
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
    /// A row that must be unique already exists (for example, the e-mail).
    #[error("already exists")]
    Conflict,
    /// The system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A stored value could not be decoded; the row is left untouched.
    #[error("stored value is not readable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        ERRORS.fetch_add(1, Ordering::Relaxed);
        StoreError::Db(err)
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        ERRORS.fetch_add(1, Ordering::Relaxed);
        StoreError::Redis(err)
    }
}

impl StoreError {
    /// Whether the error means a store is unreachable or failing (as opposed
    /// to a conflict or bad data): the request may succeed if retried later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Db(_) | StoreError::Redis(_))
    }

    pub(crate) fn from_insert(err: DbErr) -> Self {
        let text = err.to_string().to_lowercase();
        if text.contains("unique") || text.contains("duplicate") {
            StoreError::Conflict
        } else {
            StoreError::from(err)
        }
    }
}
