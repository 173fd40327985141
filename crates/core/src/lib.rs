//! Zapini ID's domain: the types every other crate shares.
//!
//! Users, sessions, pending authorizations, authentication methods and the
//! `amr`/`acr` they map to, the clock, and secret newtypes. Nothing here knows
//! about HTTP or SQL; the `oidc` and `login` crates talk to each other only
//! through these types and the store.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod flow;
pub mod form;
pub mod secret;
pub mod suggest;
pub mod user;

pub use auth::{Acr, AuthMethod, Authentication};
pub use clock::{Clock, SystemClock};
pub use secret::Secret;
