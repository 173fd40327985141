//! The ephemeral store as a table in the main database: the embedded
//! default, where one instance needs nothing else and a restart loses nothing.
//!
//! Single-use items are consumed with `DELETE … RETURNING`: the delete is the
//! decision, so of any number of concurrent takers exactly one gets the value.
//! Index members are rows of their own (`ns:owner:member`), so adding one
//! never rewrites another. Counters are one upsert that adds to the stored
//! number, so increments from several instances never overwrite each other.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, ExprTrait,
    QueryFilter, Set, Statement,
};

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

/// Adds one in a single statement: a row that is absent or expired at `now`
/// starts again from one. Written with `?` and numbered for PostgreSQL; the
/// same SQL runs on SQLite 3.35+ and PostgreSQL (upsert with `RETURNING`).
const INCREMENT: &str = r#"INSERT INTO ephemeral ("key", "value", expires_at) VALUES (?, '1', ?)
ON CONFLICT ("key") DO UPDATE SET
    "value" = CASE WHEN ephemeral.expires_at > ?
        THEN CAST(CAST(ephemeral."value" AS BIGINT) + 1 AS TEXT)
        ELSE '1' END,
    expires_at = excluded.expires_at
RETURNING "value""#;

fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) async fn increment(
    db: &DatabaseConnection,
    key: String,
    expires_at: i64,
    now: i64,
) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => numbered(INCREMENT),
        _ => INCREMENT.to_owned(),
    };
    let statement =
        Statement::from_sql_and_values(backend, sql, [key.into(), expires_at.into(), now.into()]);
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("counter after upsert".into()))?;
    let value: String = row.try_get("", "value")?;
    value
        .parse()
        .map_err(|_| sea_orm::DbErr::Type(format!("counter value {value:?}")).into())
}

/// A live counter's value and expiry.
pub(super) async fn counter(
    db: &DatabaseConnection,
    key: String,
    now: i64,
) -> Result<Option<(u64, i64)>, StoreError> {
    let row = Entity::find_by_id(key)
        .filter(Column::ExpiresAt.gt(now))
        .one(db)
        .await?;
    Ok(row.and_then(|r| Some((r.value.parse().ok()?, r.expires_at))))
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
