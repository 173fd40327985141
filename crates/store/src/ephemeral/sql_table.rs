//! The ephemeral store as a table in the main database: the embedded
//! default, where one instance needs nothing else and a restart loses nothing.
//!
//! Single-use items are consumed with `DELETE … RETURNING`: the delete is the
//! decision, so of any number of concurrent takers exactly one gets the value.
//! Index members are rows of their own (`ns:owner:member`), so adding one
//! never rewrites another.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter, Set};

use crate::StoreError;
use crate::entity::ephemeral::{ActiveModel, Column, Entity};

fn row(key: String, value: String, expires_at: i64) -> ActiveModel {
    ActiveModel {
        key: Set(key),
        value: Set(value),
        expires_at: Set(expires_at),
    }
}

fn index_prefix(ns: &str, owner: &str) -> String {
    format!("{ns}:{owner}:")
}

pub(super) async fn put(
    db: &DatabaseConnection,
    key: String,
    value: String,
    expires_at: i64,
) -> Result<(), StoreError> {
    let upsert = OnConflict::column(Column::Key)
        .update_columns([Column::Value, Column::ExpiresAt])
        .to_owned();
    Entity::insert(row(key, value, expires_at))
        .on_conflict(upsert)
        .exec(db)
        .await?;
    Ok(())
}

/// One statement, so of concurrent callers exactly one inserts; an expired
/// row is overwritten as if absent.
pub(super) async fn put_if_absent(
    db: &DatabaseConnection,
    key: String,
    value: String,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let replace_expired = OnConflict::column(Column::Key)
        .update_columns([Column::Value, Column::ExpiresAt])
        .action_and_where(Expr::col((Entity, Column::ExpiresAt)).lte(now))
        .to_owned();
    let stored = Entity::insert(row(key, value, expires_at))
        .on_conflict(replace_expired)
        .exec_without_returning(db)
        .await?;
    Ok(stored == 1)
}

pub(super) async fn get(
    db: &DatabaseConnection,
    key: String,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row = Entity::find_by_id(key)
        .filter(Column::ExpiresAt.gt(now))
        .one(db)
        .await?;
    Ok(row.map(|r| r.value))
}

pub(super) async fn take(
    db: &DatabaseConnection,
    key: String,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let deleted = Entity::delete_by_id(key).exec_with_returning(db).await?;
    Ok(deleted.filter(|r| r.expires_at > now).map(|r| r.value))
}

pub(super) async fn delete(db: &DatabaseConnection, key: String) -> Result<bool, StoreError> {
    let result = Entity::delete_by_id(key).exec(db).await?;
    Ok(result.rows_affected > 0)
}

pub(super) async fn purge_expired(db: &DatabaseConnection, now: i64) -> Result<u64, StoreError> {
    let result = Entity::delete_many()
        .filter(Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub(super) async fn index_add(
    db: &DatabaseConnection,
    ns: &str,
    owner: &str,
    member: &str,
    value: String,
    expires_at: i64,
) -> Result<(), StoreError> {
    let key = format!("{}{member}", index_prefix(ns, owner));
    put(db, key, value, expires_at).await
}

/// The live members of an index. `LIKE` narrows the scan (`_` in an id
/// only widens it); the exact prefix is then checked here.
pub(super) async fn index_list(
    db: &DatabaseConnection,
    ns: &str,
    owner: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let prefix = index_prefix(ns, owner);
    let rows = Entity::find()
        .filter(Column::Key.like(format!("{prefix}%")))
        .filter(Column::ExpiresAt.gt(now))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            r.key
                .strip_prefix(&prefix)
                .is_some_and(|member| !member.contains(':'))
        })
        .map(|r| r.value)
        .collect())
}

pub(super) async fn index_remove(
    db: &DatabaseConnection,
    ns: &str,
    owner: &str,
    member: &str,
) -> Result<bool, StoreError> {
    delete(db, format!("{}{member}", index_prefix(ns, owner))).await
}
