//! Short-lived state on the embedded default (sessions, login transactions,
//! authorization codes): one key-value table with an expiry, so a single
//! instance needs no Redis and a restart loses nothing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Ephemeral {
    Table,
    Key,
    Value,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Ephemeral::Table)
                    .if_not_exists()
                    .col(string(Ephemeral::Key).primary_key())
                    .col(text(Ephemeral::Value))
                    .col(big_integer(Ephemeral::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ephemeral_expires_at")
                    .table(Ephemeral::Table)
                    .col(Ephemeral::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Ephemeral::Table).to_owned())
            .await
    }
}
