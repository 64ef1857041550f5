//! What a request tells the balancer, read once before the first pick: the sticky cookie's
//! server, and the hash of the `hash_key` (client IP, a header, a cookie or the path).
//! Borrowed from the request buffer; nothing is copied.

use std::net::IpAddr;

use super::hash::hash64;
use crate::config::{Balance, HashKey, Upstream};
use crate::http::{HeaderKind, HeaderSpan};

/// The request facts a pick may use.
pub struct RequestFacts<'a> {
    pub client_ip: IpAddr,
    /// Path without the query.
    pub path: &'a [u8],
    /// The buffer `headers` index.
    pub buf: &'a [u8],
    pub headers: &'a [HeaderSpan],
}

/// Request-derived inputs of every pick for one request (the first and its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Affinity {
    /// Server named by a valid sticky cookie.
    pub sticky: Option<usize>,
    /// Hash of the `hash_key`, for `balance = "hash"`; `None` when the key is absent.
    pub hash: Option<u64>,
}

impl Affinity {
    pub fn of(upstream: &Upstream, facts: &RequestFacts<'_>) -> Affinity {
        let sticky = upstream.sticky_cookie.as_deref().and_then(|name| {
            let token = cookie(facts, name)?;
            upstream
                .servers
                .iter()
                .position(|s| s.sticky_token.as_bytes() == token)
        });
        let hash = match upstream.balance {
            Balance::Hash => key_hash(&upstream.hash_key, facts),
            _ => None,
        };
        Affinity { sticky, hash }
    }
}

fn key_hash(key: &HashKey, facts: &RequestFacts<'_>) -> Option<u64> {
    match key {
        HashKey::ClientIp => Some(match facts.client_ip {
            IpAddr::V4(ip) => hash64(&[&ip.octets()]),
            IpAddr::V6(ip) => hash64(&[&ip.octets()]),
        }),
        HashKey::Path => Some(hash64(&[facts.path])),
        HashKey::Header(name) => header(facts, name.as_bytes()).map(|v| hash64(&[v])),
        HashKey::Cookie(name) => cookie(facts, name).map(|v| hash64(&[v])),
    }
}

/// The first field named `name` (case-insensitive) that coregate forwards as-is.
fn header<'a>(facts: &RequestFacts<'a>, name: &[u8]) -> Option<&'a [u8]> {
    facts
        .headers
        .iter()
        .filter(|h| h.kind == HeaderKind::Other)
        .find(|h| h.name.get(facts.buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(facts.buf))
}

/// The value of cookie `name` in the Cookie fields (`a=1; b=2`), names compared exactly.
fn cookie<'a>(facts: &RequestFacts<'a>, name: &str) -> Option<&'a [u8]> {
    facts
        .headers
        .iter()
        .filter(|h| {
            h.kind == HeaderKind::Other && h.name.get(facts.buf).eq_ignore_ascii_case(b"cookie")
        })
        .flat_map(|h| h.value.get(facts.buf).split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| trim_quotes(&pair[eq + 1..]))
        })
}

fn trim_quotes(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Span;

    fn facts<'a>(buf: &'a [u8], headers: &'a [HeaderSpan]) -> RequestFacts<'a> {
        RequestFacts {
            client_ip: "10.0.0.1".parse().unwrap(),
            path: b"/p",
            buf,
            headers,
        }
    }

    fn field(buf: &[u8], name: &str, value: &str) -> HeaderSpan {
        let find = |s: &str| {
            let at = buf
                .windows(s.len())
                .position(|w| w == s.as_bytes())
                .unwrap();
            Span {
                start: at as u32,
                end: (at + s.len()) as u32,
            }
        };
        HeaderSpan {
            name: find(name),
            value: find(value),
            kind: HeaderKind::of(name.as_bytes()),
        }
    }

    #[test]
    fn cookies_and_headers_are_found() {
        let buf = b"Cookie: a=1; cg=\"tok\" ;b=2X-User: u-7";
        let hs = [
            field(buf, "Cookie", "a=1; cg=\"tok\" ;b=2"),
            field(buf, "X-User", "u-7"),
        ];
        let f = facts(buf, &hs);
        assert_eq!(cookie(&f, "cg"), Some(&b"tok"[..]));
        assert_eq!(cookie(&f, "b"), Some(&b"2"[..]));
        assert_eq!(cookie(&f, "A"), None);
        assert_eq!(header(&f, b"x-user"), Some(&b"u-7"[..]));
        assert_eq!(header(&f, b"x-none"), None);
        assert_eq!(key_hash(&HashKey::Header("x-none".into()), &f), None);
        assert_eq!(
            key_hash(&HashKey::Cookie("a".into()), &f),
            Some(hash64(&[b"1"]))
        );
        assert!(key_hash(&HashKey::ClientIp, &f).is_some());
    }
}
