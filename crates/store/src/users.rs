//! User accounts.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use zapini_core::user::{User, normalize_email};

use crate::StoreError;
use crate::entity::user::{ActiveModel, Column, Entity, Model};

/// A user to create; the password is already hashed.
#[derive(Debug)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    /// The operator vouches for the address (`email_verified` claim).
    pub email_verified: bool,
    pub name: Option<String>,
    pub password_hash: Option<zapini_core::Secret>,
}

/// A user together with the stored password hash, for the password step.
#[derive(Debug)]
pub struct UserWithPassword {
    pub user: User,
    pub password_hash: Option<zapini_core::Secret>,
}

/// Repository of users.
#[derive(Debug)]
pub struct Users<'a> {
    db: &'a DatabaseConnection,
}

fn to_user(m: Model) -> UserWithPassword {
    UserWithPassword {
        password_hash: m.password_hash.map(zapini_core::Secret::new),
        user: User {
            id: m.id,
            email: m.email,
            email_verified: m.email_verified,
            name: m.name,
            disabled: m.disabled,
            created_at: m.created_at,
        },
    }
}

impl<'a> Users<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// Creates a user; [`StoreError::Conflict`] if the e-mail is taken.
    pub async fn create(&self, new: NewUser, now: i64) -> Result<User, StoreError> {
        let row = ActiveModel {
            id: Set(new.id),
            email: Set(normalize_email(&new.email)),
            email_verified: Set(new.email_verified),
            name: Set(new.name),
            password_hash: Set(new.password_hash.map(|h| h.expose().to_owned())),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let model = row.insert(self.db).await.map_err(StoreError::from_insert)?;
        Ok(to_user(model).user)
    }

    pub async fn find_by_email(&self, email: &str) -> Result<Option<UserWithPassword>, StoreError> {
        let row = Entity::find()
            .filter(Column::Email.eq(normalize_email(email)))
            .one(self.db)
            .await?;
        Ok(row.map(to_user))
    }

    pub async fn find(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = Entity::find_by_id(id.to_owned()).one(self.db).await?;
        Ok(row.map(|m| to_user(m).user))
    }

    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        let rows = Entity::find()
            .order_by_asc(Column::Email)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().map(|m| to_user(m).user).collect())
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        Ok(Entity::find().count(self.db).await?)
    }

    /// Replaces the password hash of user `id`.
    pub async fn set_password_hash(
        &self,
        id: &str,
        hash: &zapini_core::Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = Entity::update_many()
            .col_expr(
                Column::PasswordHash,
                sea_orm::sea_query::Expr::value(hash.expose()),
            )
            .col_expr(Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(Column::Id.eq(id))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Enables or disables the account with this e-mail; false if none.
    pub async fn set_disabled(
        &self,
        email: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = Entity::update_many()
            .col_expr(Column::Disabled, sea_orm::sea_query::Expr::value(disabled))
            .col_expr(Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(Column::Email.eq(normalize_email(email)))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn email_is_unique_whatever_its_case() {
        let store = crate::testing::primary().await;
        let new = |id: &str, email: &str| NewUser {
            id: id.into(),
            email: email.into(),
            email_verified: false,
            name: None,
            password_hash: None,
        };
        store
            .users()
            .create(new("1", "Ana@Example.com"), 1)
            .await
            .unwrap();
        let err = store.users().create(new("2", "ana@example.com"), 1).await;
        assert!(matches!(err, Err(StoreError::Conflict)));
        let found = store
            .users()
            .find_by_email("ANA@example.com")
            .await
            .unwrap();
        assert_eq!(found.unwrap().user.id, "1");
    }

    #[tokio::test]
    async fn disabling_is_recorded() {
        let store = crate::testing::primary().await;
        let new = NewUser {
            id: "1".into(),
            email: "a@b.co".into(),
            email_verified: true,
            name: None,
            password_hash: None,
        };
        store.users().create(new, 1).await.unwrap();
        assert!(store.users().set_disabled("a@b.co", true, 2).await.unwrap());
        assert!(store.users().find("1").await.unwrap().unwrap().disabled);
        assert!(!store.users().set_disabled("x@b.co", true, 2).await.unwrap());
    }
}
