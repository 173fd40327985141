//! Consents (OIDC Core 3.1.2.4): the scopes each user allowed each client.
//!
//! Allowing more scopes widens the row; it never narrows. Two allows racing
//! for the same user and client each write their own union, so the later
//! may drop a scope the earlier added: the user is then asked again, which
//! is safe.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::StoreError;
use crate::entity::consent::{ActiveModel, Column, Entity, Model};

/// What one user allowed one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    /// The client's name when consent was last given, for the account
    /// area (the login pages do not read the client registry).
    pub client_name: String,
    pub scope: Vec<String>,
    pub granted_at: i64,
}

impl Consent {
    /// Whether every scope of `asked` was allowed.
    pub fn covers(&self, asked: &[String]) -> bool {
        asked.iter().all(|s| self.scope.contains(s))
    }
}

impl From<Model> for Consent {
    fn from(m: Model) -> Self {
        Self {
            user_id: m.user_id,
            client_id: m.client_id,
            client_name: m.client_name,
            scope: m
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            granted_at: m.granted_at,
        }
    }
}

/// Repository of consents.
#[derive(Debug)]
pub struct Consents<'a> {
    db: &'a DatabaseConnection,
}

impl<'a> Consents<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn find(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        let row = Entity::find_by_id((user_id.to_owned(), client_id.to_owned()))
            .one(self.db)
            .await?;
        Ok(row.map(Consent::from))
    }

    /// A user's consents, the most recent first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let rows = Entity::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_desc(Column::GrantedAt)
            .order_by_asc(Column::ClientId)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().map(Consent::from).collect())
    }

    /// Records that the user allowed `scope` to the client (id and name),
    /// added to what was allowed before. Returns the consent as it now
    /// stands.
    pub async fn grant(
        &self,
        user_id: &str,
        (client_id, client_name): (&str, &str),
        scope: &[String],
        now: i64,
    ) -> Result<Consent, StoreError> {
        let mut all = self
            .find(user_id, client_id)
            .await?
            .map(|c| c.scope)
            .unwrap_or_default();
        for s in scope {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        let row = ActiveModel {
            user_id: Set(user_id.to_owned()),
            client_id: Set(client_id.to_owned()),
            client_name: Set(client_name.to_owned()),
            scope: Set(all.join(" ")),
            granted_at: Set(now),
        };
        let upsert = OnConflict::columns([Column::UserId, Column::ClientId])
            .update_columns([Column::ClientName, Column::Scope, Column::GrantedAt])
            .to_owned();
        Entity::insert(row)
            .on_conflict(upsert)
            .exec_without_returning(self.db)
            .await?;
        Ok(Consent {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            client_name: client_name.to_owned(),
            scope: all,
            granted_at: now,
        })
    }

    /// Forgets the user's consent to the client; false if there was none.
    pub async fn revoke(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let result = Entity::delete_by_id((user_id.to_owned(), client_id.to_owned()))
            .exec(self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

#[cfg(test)]
mod tests {
    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn allowing_more_scopes_widens_the_consent() {
        let store = crate::testing::primary().await;
        let consents = store.consents();
        assert!(consents.find("u", "app").await.unwrap().is_none());

        consents
            .grant("u", ("app", "App"), &scopes(&["openid", "email"]), 10)
            .await
            .unwrap();
        let wider = consents
            .grant("u", ("app", "App"), &scopes(&["openid", "profile"]), 20)
            .await
            .unwrap();
        assert_eq!(wider.scope, ["openid", "email", "profile"]);

        let found = consents.find("u", "app").await.unwrap().unwrap();
        assert_eq!(found, wider);
        assert!(found.covers(&scopes(&["openid", "profile"])));
        assert!(!found.covers(&scopes(&["openid", "offline_access"])));
    }

    #[tokio::test]
    async fn consents_are_per_user_and_client_and_can_be_revoked() {
        let store = crate::testing::primary().await;
        let consents = store.consents();
        let openid = scopes(&["openid"]);
        consents.grant("u1", ("a", "a"), &openid, 10).await.unwrap();
        consents.grant("u1", ("b", "b"), &openid, 20).await.unwrap();
        consents.grant("u2", ("a", "a"), &openid, 30).await.unwrap();

        let listed: Vec<_> = consents.list("u1").await.unwrap();
        let clients: Vec<_> = listed.iter().map(|c| c.client_id.as_str()).collect();
        assert_eq!(clients, ["b", "a"]);

        assert!(consents.revoke("u1", "a").await.unwrap());
        assert!(!consents.revoke("u1", "a").await.unwrap());
        assert!(consents.find("u1", "a").await.unwrap().is_none());
        assert!(consents.find("u2", "a").await.unwrap().is_some());
    }
}
