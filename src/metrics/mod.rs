//! Per-shard metrics: plain `Cell` counters and fixed-bucket histograms, owned by one shard and
//! never shared between threads. The admin thread gathers them by message when `/metrics` is
//! scraped (`shard::Control::Metrics`), merges the shards' families and renders the Prometheus
//! text format (`family.rs`). Every name starts with `coregate_`; every sample has a `shard`
//! label.
//!
//! Where they live: counters of things a config names are built per config snapshot and
//! carried over a reload by name, so a route or a server that stays keeps its counts: routes
//! and clusters in `Stats`, servers in their `cluster::Cluster` (carried by address across
//! memberships too), listeners in their `ListenerCtx`; shard-wide gauges are read from the
//! shard at scrape time.
//!
//! Adding a counter is one line in one of the `counters!` blocks below (field, metric name,
//! help), then `.inc()` where it happens: `snap.stats.route(id).c.my_counter.inc()`.

pub mod family;
pub mod histogram;
pub mod meter;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::router::{Action, RouteId};
pub use family::{labels, Families, Kind};
pub use histogram::Histogram;
pub use meter::Metered;

/// A monotonic counter owned by one shard.
#[derive(Debug, Default)]
pub struct Counter(Cell<u64>);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.set(self.0.get().wrapping_add(1));
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A struct of named counters and its collection into families, one family per field.
/// `skip_zero`: leave out series still at 0 (per-route and per-server ones, which can be many).
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* $field:ident: $metric:literal, $help:literal;)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Counter,)*
        }

        impl $name {
            pub fn collect(items: &[(Arc<str>, &$name)], skip_zero: bool, out: &mut Families) {
                $(
                    let f = out.family($metric, $help, Kind::Counter);
                    for (l, c) in items {
                        let v = c.$field.get();
                        if v > 0 || !skip_zero {
                            f.push(family::Sample { labels: l.clone(), value: family::Value::Int(v) });
                        }
                    }
                )*
            }
        }
    };
}

counters! {
    /// One listener on one shard.
    pub struct ListenerCounters {
        accepted: "coregate_connections_accepted_total", "Client connections accepted.";
        refused: "coregate_connections_refused_total", "Client connections closed at accept (listener access rules, connections_per_shard_max or connections_per_ip_max).";
        received: "coregate_received_bytes_total", "Bytes received from clients (after TLS decryption).";
        sent: "coregate_sent_bytes_total", "Bytes sent to clients (before TLS encryption).";
    }
}

counters! {
    /// One route on one shard.
    pub struct RouteCounters {
        rate_limited: "coregate_rate_limited_total", "Requests refused with 429 by the route's rate limit.";
        auth_failures: "coregate_auth_failures_total", "Requests refused by authentication (401) or claim rules (403).";
        cache_hits: "coregate_cache_hits_total", "Requests answered from the response cache (fresh entries).";
        cache_misses: "coregate_cache_misses_total", "Cacheable requests not found in the response cache (sent upstream).";
        cache_stale: "coregate_cache_stale_total", "Requests answered with a stale cache entry because the upstream failed.";
        cache_bypass: "coregate_cache_bypass_total", "Requests on a cached route that the cache did not handle (method, upgrade, no-store).";
    }
}

counters! {
    /// One upstream cluster on one shard.
    pub struct UpstreamCounters {
        retries: "coregate_retries_total", "Attempts moved to another server after a failure.";
        retry_budget_exhausted: "coregate_retry_budget_exhausted_total", "Retries not made because the cluster's retry budget was spent.";
        unavailable: "coregate_upstream_unavailable_total", "Requests answered 503 because no server of the cluster was usable.";
    }
}

counters! {
    /// One server of one cluster on one shard.
    pub struct ServerCounters {
        failures: "coregate_upstream_failures_total", "Attempts that got no response (connect error or timeout, reset, response timeout, invalid response).";
        ejections: "coregate_ejections_total", "Times this shard ejected the server (outlier detection).";
        connections_opened: "coregate_upstream_connections_opened_total", "New connections opened to the server.";
        connections_reused: "coregate_upstream_connections_reused_total", "Attempts sent on an idle pooled connection.";
    }
}

/// Status classes of a response; `none`: the request got no response (the client left, or the
/// connection failed before a status was sent).
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Index into `STATUS_CLASSES` for `status` (0 = none).
#[inline]
pub fn class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

#[derive(Debug, Default)]
pub struct ListenerStats {
    pub c: ListenerCounters,
    /// Open client connections.
    pub active: Cell<u64>,
}

#[derive(Debug, Default)]
pub struct RouteStats {
    pub requests: [Counter; 6],
    /// Head received → response finished.
    pub duration: Histogram,
    pub c: RouteCounters,
}

impl RouteStats {
    /// What the response cache did for a request of this route (routes with `cache` only).
    #[inline]
    pub fn cached(&self, status: crate::gateway::ctx::CacheStatus) {
        use crate::gateway::ctx::CacheStatus as S;
        match status {
            S::None => {}
            S::Hit => self.c.cache_hits.inc(),
            S::Miss => self.c.cache_misses.inc(),
            S::Stale => self.c.cache_stale.inc(),
            S::Bypass => self.c.cache_bypass.inc(),
        }
    }

    /// A request finished with `status` (0: none sent) after `took`.
    #[inline]
    pub fn done(&self, status: u16, took: Duration) {
        self.requests[class(status)].inc();
        self.duration.observe(took);
    }
}

#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub c: UpstreamCounters,
}

#[derive(Debug, Default)]
pub struct ServerStats {
    /// Final responses by status class (1xx..5xx).
    pub responses: [Counter; 5],
    /// Request sent → response head received.
    pub duration: Histogram,
    pub c: ServerCounters,
}

impl ServerStats {
    #[inline]
    pub fn answered(&self, status: u16, took: Duration) {
        if let Some(c) = self.responses.get(class(status)) {
            c.inc();
        }
        self.duration.observe(took);
    }
}

/// The counters of one config snapshot on one shard, indexed like the config.
#[derive(Debug, Default)]
pub struct Stats {
    pub routes: Vec<Rc<RouteStats>>,
    /// Requests answered without a route (404, or refused while reading the head).
    pub unrouted: Rc<RouteStats>,
    pub upstreams: Vec<Rc<UpstreamStats>>,
}

/// Keep `old[name]` if there is one, else start at zero.
fn carry<T: Default>(old: &mut HashMap<String, Rc<T>>, name: &str) -> Rc<T> {
    old.remove(name).unwrap_or_default()
}

impl Stats {
    /// Counters for `config`; those of routes, clusters and servers that `prev` (the previous
    /// snapshot's config and stats) also had are carried over, by name.
    pub fn new(config: &Config, prev: Option<(&Config, &Stats)>) -> Stats {
        let mut routes = HashMap::new();
        let mut upstreams = HashMap::new();
        let mut unrouted = Rc::default();
        if let Some((pc, ps)) = prev {
            for (r, s) in pc.router.routes().iter().zip(&ps.routes) {
                routes.insert(r.name.clone(), s.clone());
            }
            for (u, s) in pc.upstreams.iter().zip(&ps.upstreams) {
                upstreams.insert(u.name.clone(), s.clone());
            }
            unrouted = ps.unrouted.clone();
        }
        Stats {
            routes: config
                .router
                .routes()
                .iter()
                .map(|r| carry(&mut routes, &r.name))
                .collect(),
            unrouted,
            upstreams: config
                .upstreams
                .iter()
                .map(|u| carry(&mut upstreams, &u.name))
                .collect(),
        }
    }

    /// Cluster `id`'s counters (`id` from this snapshot's config).
    #[inline]
    pub fn upstream(&self, id: usize) -> &UpstreamStats {
        &self.upstreams[id]
    }

    /// The route's counters, or the unrouted ones.
    #[inline]
    pub fn route(&self, id: Option<RouteId>) -> &RouteStats {
        id.and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unrouted)
    }

    /// Every route and cluster series of this shard (servers: `collect_servers`, from the
    /// clusters' current memberships).
    pub fn collect(&self, config: &Config, shard: &str, out: &mut Families) {
        let mut route_items = Vec::with_capacity(self.routes.len() + 1);
        let mut route_labels = Vec::with_capacity(self.routes.len() + 1);
        for (r, s) in config.router.routes().iter().zip(&self.routes) {
            let upstream = match &r.action {
                Action::Proxy(u) => config.upstreams.get(*u).map_or("", |u| u.name.as_str()),
                _ => "",
            };
            route_labels.push((r.name.as_str(), upstream));
            route_items.push(&**s);
        }
        route_labels.push(("", ""));
        route_items.push(&*self.unrouted);
        collect_routes(&route_labels, &route_items, shard, out);
        let ups: Vec<_> = config
            .upstreams
            .iter()
            .zip(&self.upstreams)
            .map(|(u, s)| (labels(&[("upstream", &u.name), ("shard", shard)]), &s.c))
            .collect();
        UpstreamCounters::collect(&ups, true, out);
    }
}

fn collect_routes(names: &[(&str, &str)], items: &[&RouteStats], shard: &str, out: &mut Families) {
    const REQ: &str = "Requests by route, its cluster (empty for static and aggregated routes, and for requests without a route) and response status class.";
    const DUR: &str = "Time from a request's head received to its response finished, by route.";
    let base: Vec<Arc<str>> = names
        .iter()
        .map(|(r, _)| labels(&[("route", r), ("shard", shard)]))
        .collect();
    let f = out.family("coregate_requests_total", REQ, Kind::Counter);
    for ((route, upstream), s) in names.iter().zip(items) {
        for (class, c) in STATUS_CLASSES.iter().zip(&s.requests) {
            if c.get() > 0 {
                let l = labels(&[
                    ("route", route),
                    ("upstream", upstream),
                    ("status_class", class),
                    ("shard", shard),
                ]);
                f.push(family::Sample {
                    labels: l,
                    value: family::Value::Int(c.get()),
                });
            }
        }
    }
    for (l, s) in base.iter().zip(items) {
        if s.duration.count() > 0 {
            out.histogram(
                "coregate_request_duration_seconds",
                DUR,
                l,
                s.duration.snapshot(),
            );
        }
    }
    let counters: Vec<_> = base.into_iter().zip(items.iter().map(|s| &s.c)).collect();
    RouteCounters::collect(&counters, true, out);
}

/// Per-server series; each item's labels name its cluster, server and shard.
pub fn collect_servers(items: &[(Arc<str>, &ServerStats)], out: &mut Families) {
    const RESP: &str = "Responses from upstream servers by status class (every attempt).";
    const DUR: &str = "Time from sending a request to a server to receiving its response head.";
    let f = out.family("coregate_upstream_responses_total", RESP, Kind::Counter);
    for (l, s) in items {
        for (class, c) in STATUS_CLASSES.iter().zip(&s.responses) {
            if c.get() > 0 {
                f.push(family::Sample {
                    labels: format!("{l},status_class=\"{class}\"").into(),
                    value: family::Value::Int(c.get()),
                });
            }
        }
    }
    for (l, s) in items {
        if s.duration.count() > 0 {
            out.histogram(
                "coregate_upstream_duration_seconds",
                DUR,
                l,
                s.duration.snapshot(),
            );
        }
    }
    let counters: Vec<_> = items.iter().map(|(l, s)| (l.clone(), &s.c)).collect();
    ServerCounters::collect(&counters, true, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(STATUS_CLASSES[class(200)], "2xx");
        assert_eq!(STATUS_CLASSES[class(404)], "4xx");
        assert_eq!(STATUS_CLASSES[class(599)], "5xx");
        assert_eq!(STATUS_CLASSES[class(101)], "1xx");
        assert_eq!(STATUS_CLASSES[class(0)], "none");
        assert_eq!(STATUS_CLASSES[class(600)], "none");
    }

    #[test]
    fn counters_macro_collects_one_family_per_field() {
        let a = RouteCounters::default();
        a.rate_limited.add(3);
        let b = RouteCounters::default();
        let items = [
            (labels(&[("route", "a")]), &a),
            (labels(&[("route", "b")]), &b),
        ];
        let mut out = Families::default();
        RouteCounters::collect(&items, true, &mut out);
        let text = out.render();
        assert!(
            text.contains("coregate_rate_limited_total{route=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            !text.contains("route=\"b\""),
            "zero series are skipped:\n{text}"
        );
        let mut all = Families::default();
        RouteCounters::collect(&items, false, &mut all);
        assert!(all
            .render()
            .contains("coregate_rate_limited_total{route=\"b\"} 0\n"));
    }
}
