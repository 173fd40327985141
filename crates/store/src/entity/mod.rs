//! sea-orm entities, one module per table.

pub mod ephemeral;
pub mod signing_key;
pub mod user;
