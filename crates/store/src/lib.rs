//! Persistence for Zapini ID: durable rows through sea-orm (SQLite by default,
//! PostgreSQL when scaled out) and the ephemeral store for short-lived state.
//!
//! Repositories speak in `zapini-core` types; no HTTP and no protocol rules
//! live here, only what is stored and how it is read back atomically.

mod audit;
mod bulk;
mod consents;
mod entity;
mod ephemeral;
mod error;
mod keys;
mod passkeys;
mod refresh;
mod second_factor;
mod sessions;
#[cfg(test)]
pub(crate) mod testing;
mod users;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use zapini_core::Clock;
use zapini_migrations::{Migrator, MigratorTrait};

pub use audit::Audit;
pub use bulk::{Bulk, SeedUser};
pub use consents::{Consent, Consents};
pub use ephemeral::Ephemeral;
pub use error::{StoreError, error_count};
pub use keys::{SigningKeyRow, SigningKeys};
pub use passkeys::{PasskeyRow, PasskeyUse, Passkeys};
pub use refresh::{RefreshToken, RefreshTokens, Taken};
pub use second_factor::{RecoveryCodes, TotpCredential, Totps};
pub use sessions::{SessionRef, Sessions};
pub use users::{NewUser, UserWithPassword, Users};

/// Key of the PostgreSQL advisory lock held while migrating ("zapini" in
/// ASCII, so that it does not collide with another application's lock).
const MIGRATION_LOCK: i64 = 0x7a61_7069_6e69;

/// SQLite in write-ahead-log mode: readers no longer wait for the writer,
/// and a commit is one append to the log instead of a rewritten journal.
/// With WAL, `synchronous = NORMAL` keeps the database consistent after a
/// power cut and loses at most the last commits, which is what the SQLite
/// documentation recommends for WAL; the default (FULL) syncs on every
/// commit. Writers that meet a lock wait up to five seconds.
fn sqlite_settings(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
}

/// Handle to everything stored; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    ephemeral: Ephemeral,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) with a pool of at
    /// most `pool_size` connections. SQLite files are created if missing.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(pool_size.max(1))
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(sqlite_settings);
        let db = Database::connect(options).await?;
        let ephemeral = Ephemeral::sql(db.clone());
        Ok(Self { db, ephemeral })
    }

    /// Moves the ephemeral state to Redis at `url` (`redis://…`), for
    /// several instances sharing it. `clock` is the server's clock.
    pub async fn with_redis(
        mut self,
        url: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        self.ephemeral = Ephemeral::redis(url, clock).await?;
        Ok(self)
    }

    /// Applies every pending migration. On PostgreSQL, several instances
    /// starting at once against an empty database would race to create the
    /// same tables; a transaction-scoped advisory lock lets one migrate while
    /// the others wait and then find nothing left to do.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            Migrator::up(&self.db, None).await?;
            return Ok(());
        }
        let txn = self.db.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(&self.db)
    }

    pub fn signing_keys(&self) -> SigningKeys<'_> {
        SigningKeys::new(&self.db)
    }

    pub fn totps(&self) -> Totps<'_> {
        Totps::new(&self.db)
    }

    pub fn recovery_codes(&self) -> RecoveryCodes<'_> {
        RecoveryCodes::new(&self.db)
    }

    pub fn passkeys(&self) -> Passkeys<'_> {
        Passkeys::new(&self.db)
    }

    pub fn refresh_tokens(&self) -> RefreshTokens<'_> {
        RefreshTokens::new(&self.db)
    }

    pub fn consents(&self) -> Consents<'_> {
        Consents::new(&self.db)
    }

    /// Bulk loading for capacity tests.
    pub fn bulk(&self) -> Bulk<'_> {
        Bulk::new(&self.db)
    }

    pub fn audit(&self) -> Audit<'_> {
        Audit::new(&self.db)
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(&self.ephemeral)
    }

    /// Revokes the refresh tokens that came from the user's SSO session
    /// with this key (the hash of its cookie). Call it before ending the
    /// session, while the user's session index still names it.
    pub async fn revoke_session_refresh_tokens(
        &self,
        user_id: &str,
        session_key: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let sessions = self.sessions().list(user_id, now).await?;
        match sessions.iter().find(|s| s.key == session_key) {
            Some(session) => self.refresh_tokens().revoke_sid(&session.sid, now).await,
            None => Ok(0),
        }
    }

    pub fn ephemeral(&self) -> &Ephemeral {
        &self.ephemeral
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Whether the ephemeral store answers (Redis when configured; on the
    /// embedded default it is the database).
    pub async fn ping_ephemeral(&self) -> bool {
        self.ephemeral.ping().await
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
