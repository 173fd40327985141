//! Whether a refresh-token family is revoked is asked on every rotation and
//! for every access token a refresh issued. With an index on `family_id`
//! alone the answer read every row of the family, and a family gains a row
//! per rotation (a month of ten-minute rotations is over 4,000 rows). An
//! index on `(family_id, revoked_at)` answers from the revoked rows only,
//! and still serves lookups by family, so it replaces the old one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    FamilyId,
    RevokedAt,
}

const OLD: &str = "idx_refresh_tokens_family";
const NEW: &str = "idx_refresh_tokens_family_revoked";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .col(RefreshTokens::RevokedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(OLD)
                    .table(RefreshTokens::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(NEW)
                    .table(RefreshTokens::Table)
                    .to_owned(),
            )
            .await
    }
}
