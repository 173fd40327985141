//! The client's address: the TCP peer, or, only when that peer is a proxy
//! listed in `trusted_proxies`, the rightmost address in `X-Forwarded-For`
//! that is not itself a trusted proxy.
//!
//! Walking from the right matters: a client can write anything at the left
//! of the header, and each proxy only appends the address it saw. Nothing
//! else of the `X-Forwarded-*` family is read (see decision 0012).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use zapini_core::ClientAddress;

/// An address block such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix`, or a bare address (a block of one). The
    /// address must be the block's first: `10.0.0.1/8` is refused as a
    /// likely typo.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or address/prefix"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        let cidr = Self { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "{text:?}: host bits are set; the block starts at {}/{prefix}",
                cidr.masked(network)
            ));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `ip` is in the block. An IPv4 address seen as IPv6
    /// (`::ffff:a.b.c.d`, from a dual-stack listener) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Arc<Vec<Cidr>>,
}

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self {
            blocks: Arc::new(blocks),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Several header lines read as one list, in order (RFC 9110 5.3).
        // Read as bytes: a line is not skipped for what a client wrote at
        // its left, since the proxy appended the address it saw to it.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            // Something that is not an address ends the chain: what is left
            // of it cannot be told apart from what a client wrote.
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: bare, or with a port.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Middleware: puts the [`ClientAddress`] into the request for the handlers
/// (throttling, the security log) and the request's log span.
pub async fn client_address(
    axum::extract::State(proxies): axum::extract::State<TrustedProxies>,
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = proxies.client(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_match() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.1.2")));
        assert!(block.contains(ip("::ffff:10.0.0.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "example.com",
            "10.0.0.0/",
            "::1/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(none.client(ip("127.0.0.1"), &headers), ip("127.0.0.1"));
        let some = proxies(&["10.0.0.0/8"]);
        assert_eq!(some.client(ip("192.0.2.1"), &headers), ip("192.0.2.1"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        let spoofed = forwarded(&["198.51.100.1, 203.0.113.9, 10.1.1.1"]);
        assert_eq!(p.client(ip("127.0.0.1"), &spoofed), ip("203.0.113.9"));
        let lines = forwarded(&["198.51.100.1", "203.0.113.9:4711"]);
        assert_eq!(p.client(ip("127.0.0.1"), &lines), ip("203.0.113.9"));
        let v6 = forwarded(&["[2001:db8::1]:443"]);
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &v6), ip("2001:db8::1"));
        // Only trusted hops: the leftmost is the client.
        let inner = forwarded(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(p.client(ip("127.0.0.1"), &inner), ip("10.9.9.9"));
        // Garbage stops the walk at the last address read.
        let garbage = forwarded(&["203.0.113.9, unknown, 10.1.1.1"]);
        assert_eq!(p.client(ip("127.0.0.1"), &garbage), ip("10.1.1.1"));
        assert_eq!(
            p.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }
}
