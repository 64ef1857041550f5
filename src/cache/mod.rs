//! The per-shard response cache (RFC 9111, shared-cache rules): each shard owns a byte-bounded
//! LRU store (`store`), the coalescing table of fills in progress (`fill`) and its counters, in
//! plain `RefCell`/`Cell` memory, never shared and never locked. `rules` decides what may be
//! stored and for how long; the connection looks requests up (`connection/cached.rs`) and the
//! proxy stores answers while it streams them (`proxy/treat.rs`).
//!
//! Key: `route \0 host \0 target` (method GET; HEAD is answered from the GET entry). Variants
//! of one key differ by the values of the response's `Vary` fields and by the coding coregate
//! compressed the stored body with (`Entry::coded_for`).

pub mod fill;
pub mod metrics;
pub mod reload;
pub mod rules;
pub mod store;

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::compress::{Coding, CompressionSettings};
use crate::http::HeaderSpan;
use fill::Fills;
pub use store::Entry;
use store::Store;

/// `[cache]`, built at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes of stored responses per shard (keys, heads, bodies, bookkeeping).
    pub bytes_per_shard_max: usize,
    /// Largest single stored response; a larger one is streamed but not kept.
    pub entry_bytes_max: usize,
    /// Longest wait of a miss for another request fetching the same key.
    pub coalesce_timeout: Duration,
    /// Stale-on-error window of routes that set none.
    pub stale: Duration,
}

/// A route's `cache = { .. }`, built at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Freshness of responses without explicit freshness (`max-age`, `s-maxage`, `Expires`);
    /// zero: those are not stored.
    pub ttl: Duration,
    /// How long past freshness an entry may answer when the origin fails.
    pub stale: Duration,
    /// Responses with `Set-Cookie` are stored without it (`set_cookie = "strip"`) instead of
    /// not at all.
    pub strip_set_cookie: bool,
    /// Fields left out of a stored head: the route's response removals (hidden fields
    /// included), `Age`, and `Set-Cookie` when stripped.
    pub store_remove: Vec<Box<[u8]>>,
}

/// This shard's counters (read by the metrics scrape once it exists, and by tests' logs).
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: Cell<u64>,
    pub misses: Cell<u64>,
    pub stale: Cell<u64>,
    pub bypass: Cell<u64>,
    pub stored: Cell<u64>,
    /// Misses that waited on another request's fill.
    pub coalesced: Cell<u64>,
    /// Compressed responses, by coding (gzip, br).
    pub compressed_gzip: Cell<u64>,
    pub compressed_br: Cell<u64>,
}

impl Stats {
    pub fn bump(c: &Cell<u64>) {
        c.set(c.get().wrapping_add(1));
    }
}

/// One shard's cache.
#[derive(Debug)]
pub struct Cache {
    store: RefCell<Store>,
    pub fills: Rc<Fills>,
    /// Keyed: clients choose cache keys.
    hasher: RandomState,
    pub stats: Stats,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    Fresh(Rc<Entry>),
    /// Past freshness, within its stale window: an answer if the origin fails.
    Stale(Rc<Entry>),
    Nothing,
}

/// Which entries a purge drops (the admin API's filter; all `None`: everything).
pub use crate::shard::PurgeFilter;

impl Cache {
    pub fn new(bytes_max: usize) -> Cache {
        Cache {
            store: RefCell::new(Store::new(bytes_max)),
            fills: Rc::new(Fills::default()),
            hasher: RandomState::new(),
            stats: Stats::default(),
        }
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry for `key` that `fits` the request, by freshness at `now`. Entries past their
    /// stale window are dropped on the way.
    pub fn lookup(
        &self,
        hash: u64,
        key: &[u8],
        now: Instant,
        fits: impl FnMut(&Entry) -> bool,
    ) -> Found {
        let mut store = self.store.borrow_mut();
        match store.get(hash, key, fits) {
            Some(e) if now < e.fresh_until => Found::Fresh(e),
            Some(e) if now < e.stale_until => Found::Stale(e),
            Some(_) => {
                store.remove_where(hash, key, |e| e.stale_until <= now);
                Found::Nothing
            }
            None => Found::Nothing,
        }
    }

    /// Store an entry (replacing its variant); false if it is larger than the whole budget.
    pub fn insert(&self, hash: u64, entry: Entry) -> bool {
        let ok = self.store.borrow_mut().insert(hash, entry);
        if ok {
            Stats::bump(&self.stats.stored);
        }
        ok
    }

    /// Drop the entries `filter` matches; returns how many.
    pub fn purge(&self, filter: &PurgeFilter) -> u64 {
        self.store
            .borrow_mut()
            .purge(|e| matches_filter(&e.key, filter))
    }

    /// (entries, bytes, evictions) held by this shard.
    pub fn usage(&self) -> (usize, usize, u64) {
        let s = self.store.borrow();
        (s.len(), s.bytes(), s.evictions)
    }
}

/// Build the key of a request: route name, host (lower-case) and target, `\0`-separated.
pub fn write_key(out: &mut Vec<u8>, route: &str, host: &[u8], target: &[u8]) {
    out.clear();
    out.extend_from_slice(route.as_bytes());
    out.push(0);
    out.extend(host.iter().map(u8::to_ascii_lowercase));
    out.push(0);
    out.extend_from_slice(target);
}

fn matches_filter(key: &[u8], f: &PurgeFilter) -> bool {
    let mut parts = key.splitn(3, |&b| b == 0);
    let (route, host, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let host_ok = |want: &str| {
        let want = want.as_bytes();
        host.eq_ignore_ascii_case(want)
            || (!want.contains(&b':')
                && host
                    .split(|&b| b == b':')
                    .next()
                    .is_some_and(|h| h.eq_ignore_ascii_case(want)))
    };
    f.route.as_deref().is_none_or(|r| route == r.as_bytes())
        && f.host.as_deref().is_none_or(host_ok)
        && f.path_prefix
            .as_deref()
            .is_none_or(|p| target.starts_with(p.as_bytes()))
}

/// Per-connection buffers of the cache phase, reused across requests (no allocation per
/// request once warm).
#[derive(Debug, Default)]
pub struct Scratch {
    pub key: Vec<u8>,
    /// Copy of the request head (bounded by `header_bytes_max`) and its fields.
    pub req: Vec<u8>,
    pub req_headers: Vec<HeaderSpan>,
    /// A request's value for one `Vary` name, while matching entries.
    pub vary: Vec<u8>,
}

/// One request's dealings with the cache, from the lookup to the store. Built by the
/// connection's cache phase; the proxy reads it when the response head arrives.
#[derive(Debug)]
pub struct Job<'a> {
    pub cache: &'a Cache,
    pub policy: &'a CachePolicy,
    pub settings: &'a CacheSettings,
    pub hash: u64,
    pub key: &'a [u8],
    /// A copy of the request head and its fields (spans into it), for `Vary` values and the
    /// `Authorization` rule after the head has left the read buffer.
    pub req: &'a [u8],
    pub req_headers: &'a [HeaderSpan],
    /// The answer may be stored (a GET whose request allows it).
    pub store: bool,
    /// A stale entry to answer with if the origin fails.
    pub stale: Option<Rc<Entry>>,
    /// This request leads a fill: waiters are released when the job drops (after the store).
    pub lead: Option<fill::Lead>,
}

/// Compression of one response, when the route compresses.
#[derive(Debug, Clone, Copy)]
pub struct Compress<'a> {
    /// What the client negotiated (`Identity` when it accepts no enabled coding).
    pub coding: Coding,
    pub settings: &'a CompressionSettings,
}

/// What the proxy does to one response besides forwarding it: `None` on plain routes.
#[derive(Debug)]
pub struct Treatment<'a> {
    pub cache: Option<Job<'a>>,
    pub compress: Option<Compress<'a>>,
    /// `X-Cache: MISS` or `BYPASS` on a cached route; empty otherwise.
    pub x_cache: &'static [u8],
    /// What the cache did (set to `Stale` when a stale entry answers); the connection logs it.
    pub status: Cell<crate::gateway::ctx::CacheStatus>,
    /// The shard's cache and compression counters.
    pub stats: &'a Stats,
}

pub const X_CACHE_MISS: &[u8] = b"X-Cache: MISS\r\n";
pub const X_CACHE_BYPASS: &[u8] = b"X-Cache: BYPASS\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_filters_match_key_parts() {
        let mut k = Vec::new();
        write_key(&mut k, "pages", b"Example.com:8080", b"/docs/a?x=1");
        let f = |route: Option<&str>, host: Option<&str>, prefix: Option<&str>| PurgeFilter {
            route: route.map(Into::into),
            host: host.map(Into::into),
            path_prefix: prefix.map(Into::into),
        };
        assert!(matches_filter(&k, &PurgeFilter::default()));
        assert!(matches_filter(&k, &f(Some("pages"), None, None)));
        assert!(!matches_filter(&k, &f(Some("page"), None, None)));
        assert!(matches_filter(&k, &f(None, Some("example.com"), None)));
        assert!(matches_filter(&k, &f(None, Some("EXAMPLE.com:8080"), None)));
        assert!(!matches_filter(&k, &f(None, Some("example.com:9"), None)));
        assert!(matches_filter(&k, &f(None, None, Some("/docs/"))));
        assert!(!matches_filter(&k, &f(Some("pages"), None, Some("/img"))));
    }
}
