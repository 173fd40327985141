//! Bulk loading for capacity tests: many users in one transaction, with
//! multi-row inserts. Not used by the server; the benchmark seeds its
//! databases through it instead of through HTTP.

use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};
use zapini_core::user::normalize_email;

use crate::StoreError;
use crate::entity::{totp, user};

/// Rows per `INSERT`: eight columns each stays far below SQLite's and
/// PostgreSQL's limits on bound parameters.
const CHUNK: usize = 1_000;

/// A user to bulk-insert: every one shares the caller's precomputed hash.
#[derive(Debug)]
pub struct SeedUser {
    pub id: String,
    pub email: String,
    /// The sealed TOTP seed, for users who have TOTP on.
    pub totp_sealed: Option<String>,
}

/// Bulk loader.
#[derive(Debug)]
pub struct Bulk<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> Bulk<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// Inserts `users` with `password_hash` in one transaction; all or none.
    pub async fn insert_users(
        &self,
        users: Vec<SeedUser>,
        password_hash: &zapini_core::Secret,
        now: i64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin().await?;
        let mut inserted = 0;
        for chunk in users.chunks(CHUNK) {
            let rows = chunk.iter().map(|u| user::ActiveModel {
                id: Set(u.id.clone()),
                email: Set(normalize_email(&u.email)),
                email_verified: Set(true),
                name: Set(None),
                password_hash: Set(Some(password_hash.expose().to_owned())),
                disabled: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
            });
            user::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(StoreError::from_insert)?;

            let seeds: Vec<_> = chunk
                .iter()
                .filter_map(|u| {
                    let sealed = u.totp_sealed.clone()?;
                    Some(totp::ActiveModel {
                        user_id: Set(u.id.clone()),
                        secret_sealed: Set(sealed),
                        last_step: Set(0),
                        created_at: Set(now),
                    })
                })
                .collect();
            if !seeds.is_empty() {
                totp::Entity::insert_many(seeds)
                    .exec_without_returning(&txn)
                    .await?;
            }
            inserted += chunk.len() as u64;
        }
        txn.commit().await?;
        Ok(inserted)
    }
}
