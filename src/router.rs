//! Route table: (host, path, method, header fields) → `Route`, compiled once per config load into
//! hash maps and a `matchit` radix tree, so that a lookup costs O(host labels + path length),
//! not O(routes). Knows nothing of I/O or of what a route does.
//!
//! Precedence, deterministic and documented in the README ("Routing"):
//! 1. host: an exact host, then `*.suffix` wildcards (longest suffix first), then routes
//!    without `host`; a level whose routes all miss falls through to the next;
//! 2. within a host level: `path_exact`, then `path` patterns (matchit: a static segment beats
//!    a `{param}`, which beats a `{*catch_all}`), then the longest `path_prefix`;
//! 3. among routes with the same host and path key: more header conditions first, then more
//!    of them on an exact value (not just presence), then routes with `methods` before routes
//!    without, then file order.
//!
//! The most specific path key whose routes match host and headers decides: when only `methods`
//! refuse the request there, the answer is 405 with the union of their methods (as an nginx
//! location with `limit_except` does); the lookup does not fall through to a shorter prefix.

use std::collections::HashMap;

/// The router's maps are built from the config and only read per request, with keys taken
/// from the request (host, path prefixes): foldhash's seeded hash costs a fraction of SipHash
/// there (~150 instructions per request), and lookups alone give a flooder nothing to grow.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::config::UpstreamId;
use crate::gateway::aggregate::Aggregate;
use crate::gateway::RoutePolicy;
use crate::http::canned::StaticResponse;
use crate::http::request::Method;
use crate::http::{HeaderSpan, Span};

pub use crate::gateway::methods::MethodSet;

/// Index of a route in `Router::routes`.
pub type RouteId = usize;

/// Most named parameters one pattern may capture.
pub const PARAMS_MAX: usize = 8;

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub host: HostMatch,
    pub path: PathMatch,
    /// `None`: every method.
    pub methods: Option<MethodSet>,
    pub headers: Vec<HeaderCond>,
    pub action: Action,
    /// Retries on another server allowed for non-idempotent methods too.
    pub retry_non_idempotent: bool,
    pub policy: RoutePolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// Lower-case host without port.
    Exact(String),
    /// Lower-case suffix without the `*.`: `*.example.com` → "example.com".
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// matchit syntax: `/users/{id}`, `/files/{*rest}`. `names` in capture order.
    Pattern {
        pattern: String,
        names: Vec<String>,
    },
    Prefix(String),
}

/// A header condition: the field is present (`value: None`) or has exactly this value.
#[derive(Debug, Clone)]
pub struct HeaderCond {
    /// Lower-case.
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug)]
pub enum Action {
    Proxy(UpstreamId),
    Respond(StaticResponse),
    Aggregate(Aggregate),
}

/// What the router needs to know of a request.
pub struct RouteRequest<'a> {
    /// Host field or absolute-form authority (port allowed).
    pub host: &'a [u8],
    pub path: &'a [u8],
    pub method: Method,
    /// The buffer `headers` index.
    pub buf: &'a [u8],
    pub headers: &'a [HeaderSpan],
}

/// Captured `{param}` values: spans into the request's buffer, in the pattern's order.
#[derive(Debug, Default, Clone, Copy)]
pub struct Params {
    pub spans: [Span; PARAMS_MAX],
    pub len: usize,
}

#[derive(Debug)]
pub enum Lookup {
    Found(RouteId, Params),
    /// Path matched, method refused: the methods that would be accepted.
    MethodNotAllowed(MethodSet),
    NotFound,
}

/// One host level: routes by path, each key's candidates sorted by precedence.
#[derive(Debug, Default)]
struct PathTable {
    exact: Map<Box<[u8]>, Vec<RouteId>>,
    /// Pattern → index into `pattern_routes`.
    patterns: matchit::Router<usize>,
    pattern_routes: Vec<Vec<RouteId>>,
    /// Pattern text → index into `pattern_routes` (routes sharing one pattern share an entry).
    pattern_text: Map<String, usize>,
    prefixes: Map<Box<[u8]>, Vec<RouteId>>,
    /// Distinct prefix lengths, longest first.
    prefix_lens: Vec<usize>,
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    exact_hosts: Map<Box<[u8]>, PathTable>,
    wildcard_hosts: Map<Box<[u8]>, PathTable>,
    any_host: PathTable,
}

/// A pattern that matchit refuses (syntax, or a conflict with another route's pattern).
#[derive(Debug)]
pub struct PatternError {
    pub route: RouteId,
    pub problem: String,
}

// === impl Router ===

impl Router {
    /// `routes` in file order.
    pub fn new(routes: Vec<Route>) -> Result<Router, PatternError> {
        let mut r = Router {
            routes,
            exact_hosts: Map::default(),
            wildcard_hosts: Map::default(),
            any_host: PathTable::default(),
        };
        let mut order: Vec<RouteId> = (0..r.routes.len()).collect();
        // Stable: file order among equals.
        order.sort_by_key(|&id| {
            let rt = &r.routes[id];
            let exact = rt.headers.iter().filter(|h| h.value.is_some()).count();
            std::cmp::Reverse((rt.headers.len(), exact, rt.methods.is_some()))
        });
        for id in order {
            let table = match &r.routes[id].host {
                HostMatch::Any => &mut r.any_host,
                HostMatch::Exact(h) => r.exact_hosts.entry(h.as_bytes().into()).or_default(),
                HostMatch::Suffix(s) => r.wildcard_hosts.entry(s.as_bytes().into()).or_default(),
            };
            table.add(id, &r.routes[id].path)?;
        }
        for t in std::iter::once(&mut r.any_host)
            .chain(r.exact_hosts.values_mut())
            .chain(r.wildcard_hosts.values_mut())
        {
            t.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
            t.prefix_lens.dedup();
        }
        Ok(r)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn get(&self, id: RouteId) -> &Route {
        &self.routes[id]
    }

    pub fn route(&self, req: &RouteRequest<'_>) -> Lookup {
        let host = strip_port(req.host);
        if let Some(t) = self.exact_host(host) {
            if let Some(found) = t.lookup(self, req) {
                return found;
            }
        }
        // Wildcards: try each suffix after a dot, longest first ("a.b.c" → "b.c", "c").
        let mut rest = host;
        while let Some(dot) = rest.iter().position(|&b| b == b'.') {
            rest = &rest[dot + 1..];
            if let Some(t) = self.wildcard(rest) {
                if let Some(found) = t.lookup(self, req) {
                    return found;
                }
            }
        }
        self.any_host.lookup(self, req).unwrap_or(Lookup::NotFound)
    }

    fn exact_host(&self, host: &[u8]) -> Option<&PathTable> {
        if self.exact_hosts.is_empty() {
            return None;
        }
        lowered(host, |h| self.exact_hosts.get(h))
    }

    fn wildcard(&self, suffix: &[u8]) -> Option<&PathTable> {
        if self.wildcard_hosts.is_empty() {
            return None;
        }
        lowered(suffix, |h| self.wildcard_hosts.get(h))
    }

    /// Among one path key's candidates (in precedence order): the first whose header
    /// conditions and methods accept the request; else 405 if some refused only the method;
    /// else `None` (the lookup goes on to less specific keys).
    fn decide(&self, ids: &[RouteId], req: &RouteRequest<'_>, params: Params) -> Option<Lookup> {
        let mut refused = MethodSet::EMPTY;
        for &id in ids {
            let r = &self.routes[id];
            if !r.headers.iter().all(|c| c.matches(req.buf, req.headers)) {
                continue;
            }
            match r.methods {
                Some(m) if !m.contains(req.method) => refused = refused.union(m),
                _ => return Some(Lookup::Found(id, params)),
            }
        }
        (!refused.is_empty()).then_some(Lookup::MethodNotAllowed(refused))
    }
}

/// Look `key` up lower-cased without allocating (hosts are short; longer ones never match).
fn lowered<'t, T>(key: &[u8], get: impl Fn(&[u8]) -> Option<&'t T>) -> Option<&'t T> {
    let mut tmp = [0u8; 256];
    let dst = tmp.get_mut(..key.len())?;
    dst.copy_from_slice(key);
    dst.make_ascii_lowercase();
    get(dst)
}

// === impl PathTable ===

impl PathTable {
    fn add(&mut self, id: RouteId, path: &PathMatch) -> Result<(), PatternError> {
        match path {
            PathMatch::Exact(p) => self.exact.entry(p.as_bytes().into()).or_default().push(id),
            PathMatch::Prefix(p) => {
                self.prefixes
                    .entry(p.as_bytes().into())
                    .or_default()
                    .push(id);
                self.prefix_lens.push(p.len());
            }
            PathMatch::Pattern { pattern, .. } => {
                if let Some(&i) = self.pattern_text.get(pattern) {
                    self.pattern_routes[i].push(id);
                    return Ok(());
                }
                let i = self.pattern_routes.len();
                self.patterns
                    .insert(pattern.clone(), i)
                    .map_err(|e| PatternError {
                        route: id,
                        problem: e.to_string(),
                    })?;
                self.pattern_routes.push(vec![id]);
                self.pattern_text.insert(pattern.clone(), i);
            }
        }
        Ok(())
    }

    /// The first path key (exact, pattern, then longest prefix) with a route whose headers
    /// match decides: that route, or 405 when the method is all that refuses it.
    fn lookup(&self, router: &Router, req: &RouteRequest<'_>) -> Option<Lookup> {
        if let Some(ids) = self.exact.get(req.path) {
            if let Some(found) = router.decide(ids, req, Params::default()) {
                return Some(found);
            }
        }
        if !self.pattern_routes.is_empty() {
            if let Some(found) = self.pattern(router, req) {
                return Some(found);
            }
        }
        for &len in &self.prefix_lens {
            let Some(head) = req.path.get(..len) else {
                continue;
            };
            if let Some(ids) = self.prefixes.get(head) {
                if let Some(found) = router.decide(ids, req, Params::default()) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn pattern(&self, router: &Router, req: &RouteRequest<'_>) -> Option<Lookup> {
        let path = std::str::from_utf8(req.path).ok()?;
        let m = self.patterns.at(path).ok()?;
        let mut params = Params::default();
        // Values are slices of `path`, itself a slice of `req.buf`: their offsets are spans.
        let base = req.buf.as_ptr() as usize;
        for (_, v) in m.params.iter().take(PARAMS_MAX) {
            let start = (v.as_ptr() as usize).wrapping_sub(base);
            params.spans[params.len] = Span {
                start: start as u32,
                end: (start + v.len()) as u32,
            };
            params.len += 1;
        }
        router.decide(self.pattern_routes.get(*m.value)?, req, params)
    }
}

// === impl HeaderCond ===

impl HeaderCond {
    fn matches(&self, buf: &[u8], headers: &[HeaderSpan]) -> bool {
        headers.iter().any(|h| {
            h.name.get(buf).eq_ignore_ascii_case(self.name.as_bytes())
                && self
                    .value
                    .as_ref()
                    .is_none_or(|v| h.value.get(buf) == v.as_bytes())
        })
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
            && name.len() < 256
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
            HostMatch::Suffix(name.to_string())
        } else {
            HostMatch::Exact(name.to_string())
        })
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
mod tests;
