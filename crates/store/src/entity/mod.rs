//! sea-orm entities, one module per table.

pub mod audit_event;
pub mod consent;
pub mod ephemeral;
pub mod passkey;
pub mod recovery_code;
pub mod refresh_token;
pub mod signing_key;
pub mod totp;
pub mod user;
