//! Refresh tokens (RFC 6749 6), durable and stored by their SHA-256 only.
//!
//! A token is spent by one conditional `UPDATE … WHERE used_at IS NULL`, so
//! of concurrent uses exactly one wins. Spent rows stay until they expire: a
//! spent token presented again is a replay, which the caller answers by
//! revoking the family (RFC 9700 4.14.2).

use sea_orm::ExprTrait;
use sea_orm::sea_query::{Alias, Cond, Expr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};
use zapini_core::Authentication;

use crate::StoreError;
use crate::entity::refresh_token::{ActiveModel, Column, Entity, Model};
use crate::entity::user;

/// A refresh token as stored, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Shared by every rotation of one grant.
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    /// The SSO session the grant came from.
    pub sid: String,
    /// The scope originally granted; a refresh may narrow it, never widen it.
    pub scope: Vec<String>,
    /// The authentication event of the original sign-in.
    pub auth: Authentication,
    pub created_at: i64,
    /// The end of the family: rotation does not extend it.
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl RefreshToken {
    /// Not spent, not revoked, not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// The outcome of spending a refresh token.
#[derive(Debug)]
pub enum Taken {
    /// This caller spent it; it is now marked used.
    Fresh(RefreshToken),
    /// It had been spent before and is not marked revoked: a replay.
    Replayed(RefreshToken),
    /// Unknown, expired, revoked (itself or any of its family), issued to
    /// another client, or its user is disabled or gone.
    Invalid,
}

/// Whether the token's user exists and is enabled, checked in the statement
/// that spends it, so a refresh needs no separate read of the user. It is
/// correlated (`users.id = refresh_tokens.user_id`), so it is one primary-key
/// lookup; an `IN (SELECT id FROM users …)` would read every user.
fn user_enabled() -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .and_where(Expr::col((user::Entity, user::Column::Id)).equals((Entity, Column::UserId)))
            .and_where(Expr::col((user::Entity, user::Column::Disabled)).eq(false))
            .take(),
    )
}

/// Whether no row of the token's family is revoked. A revocation marks the
/// rows it sees; on PostgreSQL one that runs while a rotation inserts the
/// successor does not see the new row, and this check still refuses it.
/// One lookup in the index on `(family_id, revoked_at)`.
fn family_not_revoked() -> SimpleExpr {
    let sibling = Alias::new("sibling");
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from_as(Entity, sibling.clone())
            .and_where(
                Expr::col((sibling.clone(), Column::FamilyId)).equals((Entity, Column::FamilyId)),
            )
            .and_where(Expr::col((sibling, Column::RevokedAt)).is_not_null())
            .take(),
    )
    .not()
}

fn from_row(row: Model) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        family_id: row.family_id,
        client_id: row.client_id,
        user_id: row.user_id,
        sid: row.sid,
        scope: row
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        auth: serde_json::from_str(&row.auth)?,
        created_at: row.created_at,
        expires_at: row.expires_at,
        used_at: row.used_at,
        revoked_at: row.revoked_at,
    })
}

/// Repository of refresh tokens.
#[derive(Debug)]
pub struct RefreshTokens<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> RefreshTokens<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    /// Stores a new token under `token_hash`.
    pub async fn insert(&self, token_hash: &str, token: &RefreshToken) -> Result<(), StoreError> {
        let row = ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            family_id: Set(token.family_id.clone()),
            client_id: Set(token.client_id.clone()),
            user_id: Set(token.user_id.clone()),
            sid: Set(token.sid.clone()),
            scope: Set(token.scope.join(" ")),
            auth: Set(serde_json::to_string(&token.auth)?),
            created_at: Set(token.created_at),
            expires_at: Set(token.expires_at),
            used_at: Set(token.used_at),
            revoked_at: Set(token.revoked_at),
        };
        Entity::insert(row)
            .exec_without_returning(self.db)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Stores the successor of a spent token, unless its family is revoked;
    /// false if it is. The insert checks the family itself (`INSERT …
    /// SELECT … WHERE NOT EXISTS`), so on SQLite, where writes are
    /// serialised, a concurrent revocation lands either before it (nothing
    /// is stored) or after it (and marks the new row). On PostgreSQL a
    /// revocation already running does not see a row inserted meanwhile and
    /// leaves it unmarked; [`Self::take`] and [`Self::family_revoked`] look at
    /// the whole family, so such a row can be neither spent nor counted
    /// active.
    pub async fn insert_successor(
        &self,
        token_hash: &str,
        token: &RefreshToken,
    ) -> Result<bool, StoreError> {
        let revoked_row = Query::select()
            .expr(Expr::val(1))
            .from(Entity)
            .and_where(Column::FamilyId.eq(token.family_id.as_str()))
            .and_where(Column::RevokedAt.is_not_null())
            .take();
        let values = Query::select()
            .exprs([
                Expr::val(token_hash),
                Expr::val(token.family_id.as_str()),
                Expr::val(token.client_id.as_str()),
                Expr::val(token.user_id.as_str()),
                Expr::val(token.sid.as_str()),
                Expr::val(token.scope.join(" ")),
                Expr::val(serde_json::to_string(&token.auth)?),
                Expr::val(token.created_at),
                Expr::val(token.expires_at),
            ])
            .cond_where(Cond::all().not().add(Expr::exists(revoked_row)))
            .take();
        let insert = Query::insert()
            .into_table(Entity)
            .columns([
                Column::TokenHash,
                Column::FamilyId,
                Column::ClientId,
                Column::UserId,
                Column::Sid,
                Column::Scope,
                Column::Auth,
                Column::CreatedAt,
                Column::ExpiresAt,
            ])
            .select_from(values)
            .map_err(|err| StoreError::from(DbErr::Custom(err.to_string())))?
            .take();
        let stored = self
            .db
            .execute(&insert)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(stored.rows_affected() == 1)
    }

    /// The token stored under `token_hash`, whatever its state.
    pub async fn find(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = Entity::find_by_id(token_hash.to_owned())
            .one(self.db)
            .await?;
        row.map(from_row).transpose()
    }

    /// Spends the token for `client_id`. The conditional update is the
    /// decision: of concurrent callers at most one gets [`Taken::Fresh`].
    pub async fn take(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Taken, StoreError> {
        // One statement on the common path: the update returns the row it
        // spent (RETURNING: SQLite 3.35+, PostgreSQL). Only a token it did
        // not spend is read again, to tell a replay from a stranger.
        let spent = Entity::update_many()
            .col_expr(Column::UsedAt, Expr::value(now))
            .filter(Column::TokenHash.eq(token_hash))
            .filter(Column::ClientId.eq(client_id))
            .filter(Column::UsedAt.is_null())
            .filter(Column::RevokedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .filter(user_enabled())
            .filter(family_not_revoked())
            .exec_with_returning(self.db)
            .await?;
        if let Some(row) = spent.into_iter().next() {
            return Ok(Taken::Fresh(from_row(row)?));
        }
        let Some(token) = self.find(token_hash).await? else {
            return Ok(Taken::Invalid);
        };
        let replayed = token.client_id == client_id
            && token.used_at.is_some()
            && token.revoked_at.is_none()
            && token.expires_at > now;
        Ok(if replayed {
            Taken::Replayed(token)
        } else {
            Taken::Invalid
        })
    }

    async fn revoke_where(&self, column: Column, value: &str, now: i64) -> Result<u64, StoreError> {
        let result = Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .filter(column.eq(value))
            .filter(Column::RevokedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Revokes every token of a family; returns how many rows changed.
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<u64, StoreError> {
        self.revoke_where(Column::FamilyId, family_id, now).await
    }

    /// Revokes every refresh token of a user (password change, disable,
    /// 2FA reset).
    pub async fn revoke_user(&self, user_id: &str, now: i64) -> Result<u64, StoreError> {
        self.revoke_where(Column::UserId, user_id, now).await
    }

    /// Revokes a user's refresh tokens held by one client (consent revoked).
    pub async fn revoke_user_client(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let result = Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .filter(Column::UserId.eq(user_id))
            .filter(Column::ClientId.eq(client_id))
            .filter(Column::RevokedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Revokes the refresh tokens that came from one SSO session (sign-out).
    pub async fn revoke_sid(&self, sid: &str, now: i64) -> Result<u64, StoreError> {
        self.revoke_where(Column::Sid, sid, now).await
    }

    /// Whether any token of the family has been revoked, which revokes the
    /// whole family and the access tokens issued from it.
    pub async fn family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        // One revoked row is enough, found through the index on
        // (family_id, revoked_at) without reading the family's other rows.
        let revoked = Entity::find()
            .filter(Column::FamilyId.eq(family_id))
            .filter(Column::RevokedAt.is_not_null())
            .one(self.db)
            .await?;
        Ok(revoked.is_some())
    }

    /// Removes every expired row; returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let result = Entity::delete_many()
            .filter(Column::ExpiresAt.lte(now))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use zapini_core::AuthMethod;

    use super::*;
    use crate::Store;

    /// A store with the users the tokens below belong to: a token of a
    /// user who does not exist cannot be spent.
    async fn store() -> Store {
        let store = crate::testing::primary().await;
        for id in ["u", "u1", "u2"] {
            let user = crate::NewUser {
                id: id.into(),
                email: format!("{id}@example.com"),
                email_verified: true,
                name: None,
                password_hash: None,
            };
            store.users().create(user, 1).await.unwrap();
        }
        store
    }

    fn token(family: &str, user: &str, sid: &str) -> RefreshToken {
        RefreshToken {
            family_id: family.into(),
            client_id: "app".into(),
            user_id: user.into(),
            sid: sid.into(),
            scope: vec!["openid".into(), "offline_access".into()],
            auth: Authentication::new("e".into(), vec![AuthMethod::Password], 10),
            created_at: 10,
            expires_at: 1_000,
            used_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn a_token_is_spent_once_and_a_replay_is_reported() {
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("h1", &token("f", "u", "s")).await.unwrap();

        assert!(matches!(
            tokens.take("h1", "other", 20).await.unwrap(),
            Taken::Invalid
        ));
        let Taken::Fresh(found) = tokens.take("h1", "app", 20).await.unwrap() else {
            panic!("the first use wins");
        };
        assert_eq!(found.scope, ["openid", "offline_access"]);
        assert_eq!(found.auth.time, 10);
        assert!(matches!(
            tokens.take("h1", "app", 21).await.unwrap(),
            Taken::Replayed(_)
        ));

        tokens.revoke_family("f", 22).await.unwrap();
        assert!(tokens.family_revoked("f").await.unwrap());
        assert!(matches!(
            tokens.take("h1", "app", 23).await.unwrap(),
            Taken::Invalid
        ));
        assert!(matches!(
            tokens.take("nope", "app", 23).await.unwrap(),
            Taken::Invalid
        ));
    }

    #[tokio::test]
    async fn a_successor_is_stored_only_while_its_family_is_not_revoked() {
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("h1", &token("f", "u", "s")).await.unwrap();
        assert!(
            tokens
                .insert_successor("h2", &token("f", "u", "s"))
                .await
                .unwrap()
        );
        let stored = tokens.find("h2").await.unwrap().expect("stored");
        assert_eq!(stored, token("f", "u", "s"));

        tokens.revoke_family("f", 30).await.unwrap();
        assert!(
            !tokens
                .insert_successor("h3", &token("f", "u", "s"))
                .await
                .unwrap()
        );
        assert!(tokens.find("h3").await.unwrap().is_none());
        // Another family is not affected.
        assert!(
            tokens
                .insert_successor("h4", &token("g", "u", "s"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_token_whose_family_has_a_revoked_row_cannot_be_spent() {
        // What a revocation racing a rotation on PostgreSQL leaves behind:
        // the family marked, its newest row not.
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("h1", &token("f", "u", "s")).await.unwrap();
        tokens.revoke_family("f", 30).await.unwrap();
        tokens.insert("h2", &token("f", "u", "s")).await.unwrap();
        assert!(tokens.find("h2").await.unwrap().unwrap().is_active(31));
        assert!(matches!(
            tokens.take("h2", "app", 31).await.unwrap(),
            Taken::Invalid
        ));
    }

    #[tokio::test]
    async fn a_disabled_or_unknown_user_cannot_spend_a_token() {
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("h1", &token("f", "u1", "s")).await.unwrap();
        tokens
            .insert("h2", &token("g", "nobody", "s"))
            .await
            .unwrap();
        store
            .users()
            .set_disabled("u1@example.com", true, 5)
            .await
            .unwrap();
        assert!(matches!(
            tokens.take("h1", "app", 20).await.unwrap(),
            Taken::Invalid
        ));
        assert!(matches!(
            tokens.take("h2", "app", 20).await.unwrap(),
            Taken::Invalid
        ));
        store
            .users()
            .set_disabled("u1@example.com", false, 6)
            .await
            .unwrap();
        assert!(matches!(
            tokens.take("h1", "app", 21).await.unwrap(),
            Taken::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn expired_tokens_cannot_be_spent_and_are_purged() {
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("h1", &token("f", "u", "s")).await.unwrap();
        assert!(matches!(
            tokens.take("h1", "app", 1_000).await.unwrap(),
            Taken::Invalid
        ));
        assert_eq!(tokens.purge_expired(1_000).await.unwrap(), 1);
        assert!(tokens.find("h1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn revoking_by_user_or_session_touches_only_those_tokens() {
        let store = store().await;
        let tokens = store.refresh_tokens();
        tokens.insert("a", &token("fa", "u1", "s1")).await.unwrap();
        tokens.insert("b", &token("fb", "u1", "s2")).await.unwrap();
        tokens.insert("c", &token("fc", "u2", "s3")).await.unwrap();

        assert_eq!(tokens.revoke_sid("s1", 30).await.unwrap(), 1);
        assert!(!tokens.find("a").await.unwrap().unwrap().is_active(31));
        assert!(tokens.find("b").await.unwrap().unwrap().is_active(31));

        let mut other_client = token("fd", "u1", "s4");
        other_client.client_id = "other".into();
        tokens.insert("d", &other_client).await.unwrap();
        assert_eq!(
            tokens.revoke_user_client("u1", "other", 35).await.unwrap(),
            1
        );
        assert!(!tokens.find("d").await.unwrap().unwrap().is_active(36));
        assert!(tokens.find("b").await.unwrap().unwrap().is_active(36));

        assert_eq!(tokens.revoke_user("u1", 40).await.unwrap(), 1);
        assert!(!tokens.find("b").await.unwrap().unwrap().is_active(41));
        assert!(tokens.find("c").await.unwrap().unwrap().is_active(41));
    }
}
