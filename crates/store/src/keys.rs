//! Signing keys, stored with their private half sealed.

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};

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
        let active = ActiveModel {
            kid: Set(row.kid),
            alg: Set(row.alg),
            private_sealed: Set(row.private_sealed),
            public_jwk: Set(row.public_jwk),
            created_at: Set(row.created_at),
            active_from: Set(row.active_from),
            retired_at: Set(row.retired_at),
        };
        active
            .insert(self.db)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(())
    }
}
