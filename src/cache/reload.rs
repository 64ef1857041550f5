//! What a config reload does to a shard's cache. Entries are keyed by route name, and their
//! freshness, stored head and coding were decided by the route's settings when they were
//! stored; so the entries of a route whose `cache` or `compress` settings changed, whose
//! cluster changed, or that is gone, are dropped at once, and every answer after the reload
//! follows the new settings. Routes whose settings did not change keep their entries. A
//! smaller `[cache] bytes_per_shard_max` evicts the least recently used entries down to it;
//! the other `[cache]` and `[compression]` keys apply to the next request.

use std::collections::HashMap;

use super::{Cache, PurgeFilter};
use crate::config::Config;
use crate::router::{Action, Route};

/// What a reload dropped on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Entries of routes whose settings changed or that are gone.
    pub changed: u64,
    /// Entries evicted to fit a smaller budget.
    pub evicted: u64,
}

impl Cache {
    /// Apply the switch from `old` to `new` (see the module header).
    pub fn reload(&self, old: &Config, new: &Config) -> Dropped {
        let next: HashMap<&str, &Route> = new
            .router
            .routes()
            .iter()
            .map(|r| (r.name.as_str(), r))
            .collect();
        let mut changed = 0;
        for r in old
            .router
            .routes()
            .iter()
            .filter(|r| r.policy.cache.is_some())
        {
            let same = next
                .get(r.name.as_str())
                .is_some_and(|n| same_caching(old, r, new, n));
            if !same {
                let filter = PurgeFilter {
                    route: Some(r.name.clone()),
                    ..PurgeFilter::default()
                };
                changed += self.purge(&filter);
            }
        }
        let evicted = self
            .store
            .borrow_mut()
            .set_budget(new.cache.bytes_per_shard_max);
        Dropped { changed, evicted }
    }
}

/// The route caches the same answers the same way under both configs.
fn same_caching(old: &Config, a: &Route, new: &Config, b: &Route) -> bool {
    let cluster = |c: &Config, r: &Route| match r.action {
        Action::Proxy(id) => c.upstreams.get(id).map(|u| u.name.clone()),
        _ => None,
    };
    a.policy.cache == b.policy.cache
        && a.policy.compress == b.policy.compress
        && (!a.policy.compress || old.compression == new.compression)
        && cluster(old, a) == cluster(new, b)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cache::{write_key, Entry};

    fn config(extra: &str, a_cache: &str) -> Config {
        let toml = format!(
            "{extra}\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
             [[upstream]]\nname = \"u\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\n\
             [[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"u\"\ncache = {a_cache}\n\
             [[route]]\nname = \"b\"\npath_prefix = \"/b\"\nupstream = \"u\"\ncache = {{ ttl_s = 5 }}\n"
        );
        crate::config::from_toml(&toml, Path::new("c.toml")).unwrap()
    }

    fn put(c: &Cache, route: &str, path: &str) {
        let mut key = Vec::new();
        write_key(&mut key, route, b"h", path.as_bytes());
        let now = Instant::now();
        let entry = Entry {
            key: key.clone().into(),
            vary: Box::new([]),
            coded_for: None,
            status: 200,
            head: b"HTTP/1.1 200 OK\r\n".to_vec().into(),
            body: Rc::new(vec![b'x'; 1500].into_boxed_slice()),
            stored: now,
            age_s: 0,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
        };
        assert!(c.insert(c.hash(&key), entry));
    }

    #[test]
    fn changed_routes_lose_their_entries_others_keep_them() {
        let old = config("", "{ ttl_s = 5 }");
        let c = Cache::new(old.cache.bytes_per_shard_max);
        put(&c, "a", "/a/1");
        put(&c, "a", "/a/2");
        put(&c, "b", "/b/1");
        // Nothing changed: nothing dropped.
        assert_eq!(
            c.reload(&old, &config("", "{ ttl_s = 5 }")),
            Dropped::default()
        );
        assert_eq!(c.usage().0, 3);
        // Route a's TTL changed: its two entries go, b's stays.
        let new = config("", "{ ttl_s = 60 }");
        assert_eq!(c.reload(&old, &new).changed, 2);
        assert_eq!(c.usage().0, 1);
        // A smaller budget evicts down to it.
        put(&c, "b", "/b/2");
        put(&c, "b", "/b/3");
        let small = config(
            "[cache]\nbytes_per_shard_max = 4096\nentry_bytes_max = 4096",
            "{ ttl_s = 60 }",
        );
        let d = c.reload(&new, &small);
        assert_eq!(d.changed, 0);
        assert!(d.evicted >= 1, "{d:?}");
        assert!(c.usage().1 <= 4096);
    }
}
