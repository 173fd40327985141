//! Second factors: TOTP credentials and recovery codes.
//!
//! Both single-use rules are enforced by one conditional statement each, so
//! concurrent requests cannot both win: a TOTP step is accepted only if it is
//! newer than the last accepted one (RFC 6238 5.2), and a recovery code is
//! spent only if it was not spent yet.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};

use crate::StoreError;
use crate::entity::{recovery_code, totp};

/// A user's TOTP credential as stored.
#[derive(Debug, Clone)]
pub struct TotpCredential {
    pub secret_sealed: String,
    pub last_step: i64,
    pub created_at: i64,
}

/// Repository of TOTP credentials.
#[derive(Debug)]
pub struct Totps<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> Totps<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn get(&self, user_id: &str) -> Result<Option<TotpCredential>, StoreError> {
        let row = totp::Entity::find_by_id(user_id.to_owned())
            .one(self.db)
            .await?;
        Ok(row.map(|r| TotpCredential {
            secret_sealed: r.secret_sealed,
            last_step: r.last_step,
            created_at: r.created_at,
        }))
    }

    /// Turns TOTP on (or replaces the seed), recording the step that
    /// confirmed it as used.
    pub async fn enable(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let row = totp::ActiveModel {
            user_id: Set(user_id.to_owned()),
            secret_sealed: Set(sealed.to_owned()),
            last_step: Set(step),
            created_at: Set(now),
        };
        let upsert = OnConflict::column(totp::Column::UserId)
            .update_columns([
                totp::Column::SecretSealed,
                totp::Column::LastStep,
                totp::Column::CreatedAt,
            ])
            .to_owned();
        totp::Entity::insert(row)
            .on_conflict(upsert)
            .exec(self.db)
            .await?;
        Ok(())
    }

    /// Accepts `step` if it is newer than every step accepted before; false
    /// if it was used already (by this request's rival, too).
    pub async fn accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let result = totp::Entity::update_many()
            .col_expr(totp::Column::LastStep, Expr::value(step))
            .filter(totp::Column::UserId.eq(user_id))
            .filter(totp::Column::LastStep.lt(step))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Turns TOTP off and deletes the recovery codes with it.
    pub async fn disable(&self, user_id: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin().await?;
        let removed = totp::Entity::delete_by_id(user_id.to_owned())
            .exec(&txn)
            .await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(removed.rows_affected > 0)
    }
}

/// Repository of recovery codes.
#[derive(Debug)]
pub struct RecoveryCodes<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> RecoveryCodes<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// Replaces all of a user's codes with new ones, in one transaction.
    pub async fn replace(
        &self,
        user_id: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let rows = hashes.iter().map(|h| recovery_code::ActiveModel {
            code_hash: Set(h.clone()),
            user_id: Set(user_id.to_owned()),
            used_at: Set(None),
            created_at: Set(now),
        });
        recovery_code::Entity::insert_many(rows).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Spends the code with this hash; false if it is unknown or spent.
    pub async fn consume(&self, user_id: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        let result = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
            .filter(recovery_code::Column::CodeHash.eq(hash))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// How many unspent codes the user has.
    pub async fn remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        Ok(recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(self.db)
            .await?)
    }
}
