//! RFC 9111 for a shared cache, as pure functions over parsed heads: `Cache-Control` directives
//! of requests and responses, whether a response may be stored, its freshness lifetime and
//! stale window, and the `Vary` names it depends on. No I/O and no cache state here.

use std::time::{Duration, SystemTime};

use crate::http::HeaderSpan;

/// Longest freshness or stale window honoured (one year), whatever a response asks for.
pub const LIFETIME_MAX_S: u64 = 365 * 24 * 3600;
/// Most `Vary` names a stored response may depend on; more, and it is not stored.
pub const VARY_NAMES_MAX: usize = 8;

/// The directives of a `Cache-Control` field (all its lines), those a shared cache acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    pub no_transform: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// RFC 5861: how long the response may be served stale when the origin fails.
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// Parse every field named `name` (`cache-control`) of a head.
    pub fn of(buf: &[u8], headers: &[HeaderSpan], name: &[u8]) -> Directives {
        let mut d = Directives::default();
        for h in headers
            .iter()
            .filter(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        {
            for item in h.value.get(buf).split(|&b| b == b',') {
                d.apply(trim(item));
            }
        }
        d
    }

    fn apply(&mut self, item: &[u8]) {
        let (name, value) = match item.iter().position(|&b| b == b'=') {
            Some(i) => (trim(&item[..i]), Some(unquote(trim(&item[i + 1..])))),
            None => (item, None),
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        // An unparsable delta-seconds counts as 0 (RFC 9111 §1.2.2: treat as stale).
        let seconds = || Some(value.and_then(delta_seconds).unwrap_or(0));
        if is("no-store") {
            self.no_store = true;
        } else if is("no-cache") {
            self.no_cache = true;
        } else if is("private") {
            self.private = true;
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") || is("proxy-revalidate") {
            self.must_revalidate = true;
        } else if is("no-transform") {
            self.no_transform = true;
        } else if is("max-age") {
            self.max_age = seconds();
        } else if is("s-maxage") {
            self.s_maxage = seconds();
        } else if is("stale-if-error") {
            self.stale_if_error = seconds();
        }
    }
}

/// What a request asks of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRules {
    /// Look the request up (no `no-cache`, `max-age=0` or `Pragma: no-cache`).
    pub lookup: bool,
    /// The response may be stored (no `no-store`).
    pub store: bool,
}

/// The request's own directives: `no-store` (neither served from nor stored in the cache),
/// `no-cache` / `max-age=0` / `Pragma: no-cache` (go to the origin; the answer may refresh
/// the entry).
pub fn request_rules(buf: &[u8], headers: &[HeaderSpan]) -> RequestRules {
    let d = Directives::of(buf, headers, b"cache-control");
    let has_cc = headers
        .iter()
        .any(|h| h.name.get(buf).eq_ignore_ascii_case(b"cache-control"));
    let pragma_no_cache = !has_cc
        && headers.iter().any(|h| {
            h.name.get(buf).eq_ignore_ascii_case(b"pragma")
                && contains_token(h.value.get(buf), b"no-cache")
        });
    let refresh = d.no_cache || d.max_age == Some(0) || pragma_no_cache;
    RequestRules {
        lookup: !d.no_store && !refresh,
        store: !d.no_store,
    }
}

/// Statuses stored without explicit permission beyond freshness (RFC 9110 §15.1,
/// "heuristically cacheable"), less 206 (coregate does not store ranges).
pub fn cacheable_status(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Why a response is not stored (for the debug log), or `None` when it may be.
pub fn refuse_reason(
    status: u16,
    d: &Directives,
    authorized_request: bool,
    vary: &VaryNames,
) -> Option<&'static str> {
    if !cacheable_status(status) {
        return Some("status");
    }
    if d.no_store || d.private {
        return Some("no-store or private");
    }
    // coregate does not revalidate, so a response that must be revalidated is not kept.
    if d.no_cache {
        return Some("no-cache");
    }
    if authorized_request && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Some("request with Authorization");
    }
    match vary {
        VaryNames::Any => Some("Vary: *"),
        VaryNames::TooMany => Some("too many Vary names"),
        VaryNames::Names(_) => None,
    }
}

/// How long a response stays fresh, counting from when coregate received it, and how long it
/// may then be served stale when the origin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh: Duration,
    pub stale: Duration,
    /// The response's age when it arrived (its `Age` field).
    pub age_s: u64,
}

/// The freshness of a response: `s-maxage`, else `max-age`, else `Expires` − `Date`, else the
/// route's `ttl` (0: not stored); minus the `Age` it arrived with. `None`: already stale
/// (not worth storing). `stale`: the route's window, or the response's `stale-if-error` if
/// longer; none with `must-revalidate`.
pub fn lifetime(
    buf: &[u8],
    headers: &[HeaderSpan],
    d: &Directives,
    ttl: Duration,
    stale: Duration,
    now: SystemTime,
) -> Option<Lifetime> {
    let explicit = d
        .s_maxage
        .or(d.max_age)
        .or_else(|| expires_in(buf, headers, now));
    let total = explicit.unwrap_or(ttl.as_secs()).min(LIFETIME_MAX_S);
    let age_s = field(buf, headers, b"age")
        .and_then(delta_seconds)
        .unwrap_or(0);
    if total <= age_s {
        return None;
    }
    let stale = if d.must_revalidate {
        Duration::ZERO
    } else {
        let asked = Duration::from_secs(d.stale_if_error.unwrap_or(0).min(LIFETIME_MAX_S));
        stale.max(asked)
    };
    Some(Lifetime {
        fresh: Duration::from_secs(total - age_s),
        stale,
        age_s,
    })
}

/// `Expires` − `Date` (or − now without `Date`), in seconds; an invalid `Expires` means
/// "already expired" (RFC 9111 §5.3).
fn expires_in(buf: &[u8], headers: &[HeaderSpan], now: SystemTime) -> Option<u64> {
    let expires = field(buf, headers, b"expires")?;
    let date = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    };
    let Some(exp) = date(expires) else {
        return Some(0);
    };
    let base = field(buf, headers, b"date").and_then(date).unwrap_or(now);
    Some(exp.duration_since(base).map_or(0, |d| d.as_secs()))
}

/// The request fields a response varies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaryNames {
    /// Lower-case names (possibly none).
    Names(Vec<Box<[u8]>>),
    /// `Vary: *`: never matches a later request.
    Any,
    TooMany,
}

pub fn vary_names(buf: &[u8], headers: &[HeaderSpan]) -> VaryNames {
    let mut names: Vec<Box<[u8]>> = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"vary"))
    {
        for n in h.value.get(buf).split(|&b| b == b',').map(trim) {
            if n.is_empty() {
                continue;
            }
            if n == b"*" {
                return VaryNames::Any;
            }
            let lower = n.to_ascii_lowercase().into_boxed_slice();
            if !names.contains(&lower) {
                if names.len() == VARY_NAMES_MAX {
                    return VaryNames::TooMany;
                }
                names.push(lower);
            }
        }
    }
    VaryNames::Names(names)
}

/// The value a request has for a `Vary` name: its fields of that name, trimmed, joined by
/// ",", appended to `out` (empty when absent).
pub fn vary_value(buf: &[u8], headers: &[HeaderSpan], name: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    for h in headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(name))
    {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(trim(h.value.get(buf)));
        first = false;
    }
}

/// The first field named `name` (lower-case), trimmed.
pub fn field<'a>(buf: &'a [u8], headers: &[HeaderSpan], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| trim(h.value.get(buf)))
}

/// A comma-separated list holds `token` (case-insensitive).
pub fn contains_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn delta_seconds(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

pub fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests;
