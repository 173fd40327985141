//! Passkeys as stored: the verified credential (opaque JSON to this crate),
//! its name and flags, and the signature counter.
//!
//! A use is recorded with one conditional UPDATE on the counter the caller
//! read, so two assertions racing on the same credential cannot both move it
//! (WebAuthn L2 7.2 step 21: a counter that does not grow hints at a clone).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::StoreError;
use crate::entity::passkey::{ActiveModel, Column, Entity, Model};

/// One registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub user_handle: String,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub counter: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<Model> for PasskeyRow {
    fn from(m: Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            user_handle: m.user_handle,
            credential_id: m.credential_id,
            name: m.name,
            credential: m.credential,
            backup_eligible: m.backup_eligible,
            backup_state: m.backup_state,
            counter: m.counter,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// What a successful assertion changes on a passkey.
#[derive(Debug, Clone)]
pub struct PasskeyUse<'u> {
    pub credential: &'u str,
    pub counter: i64,
    pub backup_state: bool,
    pub backup_eligible: bool,
    pub at: i64,
}

/// Repository of passkeys.
#[derive(Debug)]
pub struct Passkeys<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> Passkeys<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// A user's passkeys, oldest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<PasskeyRow>, StoreError> {
        let rows = Entity::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().map(PasskeyRow::from).collect())
    }

    pub async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        let row = Entity::find()
            .filter(Column::CredentialId.eq(credential_id))
            .one(self.db)
            .await?;
        Ok(row.map(PasskeyRow::from))
    }

    /// Stores a new passkey; [`StoreError::Conflict`] if the credential id is
    /// registered already (to this user or another).
    pub async fn add(&self, row: PasskeyRow) -> Result<(), StoreError> {
        let model = ActiveModel {
            id: Set(row.id),
            user_id: Set(row.user_id),
            user_handle: Set(row.user_handle),
            credential_id: Set(row.credential_id),
            name: Set(row.name),
            credential: Set(row.credential),
            backup_eligible: Set(row.backup_eligible),
            backup_state: Set(row.backup_state),
            counter: Set(row.counter),
            created_at: Set(row.created_at),
            last_used_at: Set(row.last_used_at),
        };
        model
            .insert(self.db)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Records a use, if the counter is still the one the caller verified
    /// against; false if another use got there first.
    pub async fn record_use(
        &self,
        id: &str,
        seen_counter: i64,
        used: PasskeyUse<'_>,
    ) -> Result<bool, StoreError> {
        let result = Entity::update_many()
            .col_expr(Column::Credential, Expr::value(used.credential))
            .col_expr(Column::Counter, Expr::value(used.counter))
            .col_expr(Column::BackupState, Expr::value(used.backup_state))
            .col_expr(Column::BackupEligible, Expr::value(used.backup_eligible))
            .col_expr(Column::LastUsedAt, Expr::value(used.at))
            .filter(Column::Id.eq(id))
            .filter(Column::Counter.eq(seen_counter))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Removes one of the user's passkeys; false if it is not theirs.
    pub async fn remove(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let result = Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::UserId.eq(user_id))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Removes all of a user's passkeys (an operator's reset).
    pub async fn remove_all(&self, user_id: &str) -> Result<u64, StoreError> {
        let result = Entity::delete_many()
            .filter(Column::UserId.eq(user_id))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, user: &str, cred: &str) -> PasskeyRow {
        PasskeyRow {
            id: id.into(),
            user_id: user.into(),
            user_handle: "h".into(),
            credential_id: cred.into(),
            name: "Laptop".into(),
            credential: "{}".into(),
            backup_eligible: false,
            backup_state: false,
            counter: 0,
            created_at: 1,
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn a_credential_id_is_registered_once() {
        let store = crate::testing::primary().await;
        store.passkeys().add(row("1", "u", "c")).await.unwrap();
        let again = store.passkeys().add(row("2", "v", "c")).await;
        assert!(matches!(again, Err(StoreError::Conflict)));
    }

    #[tokio::test]
    async fn a_use_moves_the_counter_once() {
        let store = crate::testing::primary().await;
        store.passkeys().add(row("1", "u", "c")).await.unwrap();
        let used = PasskeyUse {
            credential: "{\"n\":1}",
            counter: 5,
            backup_state: true,
            backup_eligible: true,
            at: 9,
        };
        assert!(
            store
                .passkeys()
                .record_use("1", 0, used.clone())
                .await
                .unwrap()
        );
        assert!(!store.passkeys().record_use("1", 0, used).await.unwrap());
        let found = store
            .passkeys()
            .find_by_credential_id("c")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.counter, found.last_used_at), (5, Some(9)));
    }

    #[tokio::test]
    async fn only_the_owner_removes_a_passkey() {
        let store = crate::testing::primary().await;
        store.passkeys().add(row("1", "u", "c")).await.unwrap();
        assert!(!store.passkeys().remove("v", "1").await.unwrap());
        assert!(store.passkeys().remove("u", "1").await.unwrap());
        assert!(store.passkeys().list("u").await.unwrap().is_empty());
    }
}
