//! TOTP credentials (RFC 6238): one per user, the seed sealed with the master
//! secret, and the last accepted time step so that no step is accepted twice.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    UserId,
    SecretSealed,
    LastStep,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpCredentials::Table)
                    .if_not_exists()
                    .col(string(TotpCredentials::UserId).primary_key())
                    .col(text(TotpCredentials::SecretSealed))
                    .col(big_integer(TotpCredentials::LastStep))
                    .col(big_integer(TotpCredentials::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TotpCredentials::Table).to_owned())
            .await
    }
}
