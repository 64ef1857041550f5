//! Route table: (host, path) → `Route`, compiled once per config load. Knows nothing of I/O.
//!
//! Precedence, deterministic and documented in the README:
//! 1. host: an exact host beats a `*.suffix` wildcard (longer suffix first), which beats a route
//!    without `host`;
//! 2. then the longest `path_prefix` (a plain byte prefix, as nginx's prefix locations);
//! 3. then the order in the file.

use crate::config::UpstreamId;
use crate::http::canned::StaticResponse;

#[derive(Debug)]
pub struct Router {
    /// Sorted by precedence: the first entry that matches wins.
    routes: Vec<Route>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub host: HostMatch,
    pub path_prefix: String,
    pub action: Action,
    /// Retries on another server allowed for non-idempotent methods too.
    pub retry_non_idempotent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// Lower-case host without port.
    Exact(String),
    /// Lower-case suffix including the leading dot: `*.example.com` → ".example.com".
    Suffix(String),
}

#[derive(Debug)]
pub enum Action {
    Proxy(UpstreamId),
    Respond(StaticResponse),
}

// === impl Router ===

impl Router {
    /// `routes` in file order.
    pub fn new(mut routes: Vec<Route>) -> Router {
        // Stable sort keeps file order among equals.
        routes.sort_by_key(|r| std::cmp::Reverse((r.host.rank(), r.path_prefix.len())));
        Router { routes }
    }

    /// `host` is the Host field value or the authority of an absolute-form target (port allowed);
    /// `path` is the target's path without the query.
    pub fn route(&self, host: &[u8], path: &[u8]) -> Option<&Route> {
        let host = strip_port(host);
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && path.starts_with(r.path_prefix.as_bytes()))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

// === impl HostMatch ===

impl HostMatch {
    /// Parse a `host` key: "api.example.com" or "*.example.com". `None` means invalid.
    pub fn parse(s: &str) -> Option<HostMatch> {
        let lower = s.to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return None;
        }
        Some(if wild {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_string())
        })
    }

    fn rank(&self) -> (u8, usize) {
        match self {
            HostMatch::Exact(_) => (2, 0),
            HostMatch::Suffix(s) => (1, s.len()),
            HostMatch::Any => (0, 0),
        }
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// "example.com:8080" → "example.com"; "[::1]:80" → "[::1]".
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: Option<&str>, prefix: &str) -> Route {
        Route {
            name: name.into(),
            host: host.map_or(HostMatch::Any, |h| HostMatch::parse(h).unwrap()),
            path_prefix: prefix.into(),
            action: Action::Proxy(0),
            retry_non_idempotent: false,
        }
    }

    fn pick<'a>(r: &'a Router, host: &str, path: &str) -> Option<&'a str> {
        r.route(host.as_bytes(), path.as_bytes())
            .map(|r| r.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_then_file_order() {
        let r = Router::new(vec![
            route("root", None, "/"),
            route("api", None, "/api"),
            route("api-v1", None, "/api/v1"),
            route("api-dup", None, "/api"),
        ]);
        assert_eq!(pick(&r, "x", "/api/v1/users"), Some("api-v1"));
        assert_eq!(pick(&r, "x", "/api/v2"), Some("api"));
        assert_eq!(pick(&r, "x", "/apix"), Some("api"));
        assert_eq!(pick(&r, "x", "/other"), Some("root"));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let r = Router::new(vec![
            route("any", None, "/static"),
            route("wild", Some("*.example.com"), "/"),
            route("exact", Some("api.example.com"), "/"),
        ]);
        assert_eq!(pick(&r, "api.example.com", "/static/x"), Some("exact"));
        assert_eq!(pick(&r, "API.Example.com:8443", "/"), Some("exact"));
        assert_eq!(pick(&r, "www.example.com", "/static"), Some("wild"));
        assert_eq!(pick(&r, "a.b.example.com", "/"), Some("wild"));
        assert_eq!(pick(&r, "example.com", "/static"), Some("any"));
        assert_eq!(pick(&r, "example.com", "/"), None);
    }

    #[test]
    fn host_forms() {
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"h:1"), b"h");
        assert_eq!(strip_port(b"h"), b"h");
        assert!(HostMatch::parse("*.").is_none());
        assert!(HostMatch::parse("a..b").is_none());
        assert!(HostMatch::parse("a b").is_none());
        assert_eq!(
            HostMatch::parse("*.Ex.com"),
            Some(HostMatch::Suffix(".ex.com".into()))
        );
    }
}
