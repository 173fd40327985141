//! Signing keys, stored with their private half sealed.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use crate::StoreError;
use crate::entity::signing_key::{ActiveModel, Column, Entity, Model};

/// A stored signing key.
pub type SigningKeyRow = Model;

/// Repository of signing keys.
#[derive(Debug)]
pub struct SigningKeys<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> SigningKeys<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every key, oldest first.
    pub async fn all(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        Ok(Entity::find()
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Kid)
            .all(self.db)
            .await?)
    }

    pub async fn insert(&self, row: SigningKeyRow) -> Result<(), StoreError> {
        insert_row(self.db, row).await
    }

    /// Adds `row` as the successor of its algorithm's current key: in one
    /// transaction, inserts it and retires every other key of that algorithm
    /// not yet retired at the moment the successor starts to sign. A
    /// conflict means another rotation inserted the same key id first.
    pub async fn insert_successor(&self, row: SigningKeyRow) -> Result<(), StoreError> {
        let (alg, kid, from) = (row.alg.clone(), row.kid.clone(), row.active_from);
        let txn = self.db.begin().await?;
        insert_row(&txn, row).await?;
        Entity::update_many()
            .col_expr(Column::RetiredAt, Expr::value(from))
            .filter(Column::Alg.eq(alg))
            .filter(Column::Kid.ne(kid))
            .filter(Column::RetiredAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

async fn insert_row(db: &impl ConnectionTrait, row: SigningKeyRow) -> Result<(), StoreError> {
    let active = ActiveModel {
        kid: Set(row.kid),
        alg: Set(row.alg),
        private_sealed: Set(row.private_sealed),
        public_jwk: Set(row.public_jwk),
        created_at: Set(row.created_at),
        active_from: Set(row.active_from),
        retired_at: Set(row.retired_at),
    };
    active.insert(db).await.map_err(StoreError::from_insert)?;
    Ok(())
}
