//! Reverse proxies we trust to tell us the client address in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

pub use crate::domain::network::Cidr;

/// `server.trusted_proxies`; empty means `X-Forwarded-For` is never read.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client address: the TCP peer, unless the peer is a trusted proxy; then the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left of that were
    /// written by the client and could be anything, so they are never believed.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Repeated headers form one list, in order (RFC 9110, section 5.3).
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop.trim()) else {
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

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_forge_the_client_address() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_ip(ip("198.51.100.1"), &xff(&["203.0.113.9"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.0.0.1"), &xff(&["203.0.113.9"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(
            p.client_ip(peer, &xff(&["6.6.6.6, 203.0.113.9, 10.0.0.2"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(peer, &xff(&["6.6.6.6", "203.0.113.9:4711"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(peer, &xff(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
        // Nothing but proxies: the furthest one is the best we know.
        assert_eq!(
            p.client_ip(peer, &xff(&["10.0.0.3, 10.0.0.2"])),
            ip("10.0.0.3")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            p.client_ip(peer, &xff(&["203.0.113.9, unknown, 10.0.0.2"])),
            ip("10.0.0.2")
        );
        assert_eq!(p.client_ip(peer, &HeaderMap::new()), peer);
    }
}
