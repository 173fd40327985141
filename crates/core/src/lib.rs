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
pub mod metrics;
pub mod secret;
pub mod suggest;
pub mod user;

pub use auth::{Acr, AuthMethod, Authentication};
pub use clock::{Clock, SystemClock};
pub use secret::Secret;

/// The client's address as the binary determined it (the TCP peer, or the
/// forwarded address when the peer is a trusted proxy), for throttling and
/// the security log. Put into each request by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);
