//! The database schema of Zapini ID as sea-orm migrations.
//!
//! One migration per file, named after the file; the same migrations run on
//! SQLite and PostgreSQL. They are applied at start-up and by `zapini-id migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261204_000001_users;
mod m20261204_000002_signing_keys;
mod m20261204_000003_ephemeral;
mod m20261204_000004_totp;
mod m20261204_000005_recovery_codes;
mod m20261204_000006_audit_events;
mod m20261204_000007_passkeys;
mod m20261204_000008_refresh_tokens;
mod m20261204_000009_consents;
mod m20261205_000010_refresh_family_index;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261204_000001_users::Migration),
            Box::new(m20261204_000002_signing_keys::Migration),
            Box::new(m20261204_000003_ephemeral::Migration),
            Box::new(m20261204_000004_totp::Migration),
            Box::new(m20261204_000005_recovery_codes::Migration),
            Box::new(m20261204_000006_audit_events::Migration),
            Box::new(m20261204_000007_passkeys::Migration),
            Box::new(m20261204_000008_refresh_tokens::Migration),
            Box::new(m20261204_000009_consents::Migration),
            Box::new(m20261205_000010_refresh_family_index::Migration),
        ]
    }
}
