//! Writing security events with the request's client address and agent.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde_json::Value;
use zapini_core::ClientAddress;
use zapini_core::audit::{Event, EventKind};

use crate::LoginState;

/// Where a request came from, for the security log.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn from_headers(headers: &HeaderMap, peer: Option<IpAddr>) -> Self {
        Self {
            ip: peer.map(|p| p.to_string()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(256).collect()),
        }
    }
}

/// The client's address: what the binary put in the request (the TCP peer,
/// or the forwarded address behind a trusted proxy), else the TCP peer, else
/// unspecified.
pub struct Peer(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ext = &parts.extensions;
        let ip = match ext.get::<ClientAddress>() {
            Some(ClientAddress(ip)) => *ip,
            None => ext
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(a)| a.ip()),
        };
        Ok(Self(ip))
    }
}

/// Records an event; a failure to record is logged, not shown to the user.
pub async fn record(
    state: &LoginState,
    origin: &Origin,
    user_id: Option<&str>,
    kind: EventKind,
    detail: Value,
) {
    let event = Event {
        user_id: user_id.map(str::to_owned),
        kind,
        detail,
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
        at: state.clock.now(),
    };
    if let Err(err) = state.store.audit().record(&event).await {
        tracing::error!(error = %err, kind = kind.as_str(), "could not record a security event");
    }
}
