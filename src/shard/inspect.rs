//! What a shard answers the admin thread: its metric families (`Control::Metrics`), its view
//! of the servers and its own state (`Control::Inspect`), and the cache purge message. Runs on
//! the shard between requests; the cost is one pass over the config's routes and servers.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Shard, Snapshot};
use crate::metrics::{labels, Families, ListenerCounters};

/// Which cached responses `Control::CachePurge` drops; every `None` field matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeFilter {
    pub route: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeResult {
    /// No response cache is configured (the cache does not exist yet).
    NoCache,
    /// Entries dropped on this shard.
    Purged(u64),
}

/// One shard's state, for `/status` and `/upstreams`.
#[derive(Debug, Clone)]
pub struct ShardView {
    pub id: usize,
    pub driver: &'static str,
    pub gen: u64,
    pub connections: usize,
    pub requests_active: usize,
    /// In config order.
    pub upstreams: Vec<UpstreamView>,
}

#[derive(Debug, Clone)]
pub struct UpstreamView {
    pub name: String,
    pub servers: Vec<ServerView>,
}

#[derive(Debug, Clone)]
pub struct ServerView {
    pub address: String,
    /// The IP it resolves to on this shard now.
    pub addr: Option<SocketAddr>,
    pub weight: u32,
    /// The active check's verdict.
    pub up: bool,
    /// Milliseconds of ejection left; 0 when not ejected.
    pub ejected_ms: u64,
    pub in_flight: u32,
    /// Idle pooled connections to its address on this shard.
    pub idle: usize,
}

pub(super) fn view(shard: &Shard, snap: &Snapshot) -> ShardView {
    let now = Instant::now();
    let upstreams = snap
        .clusters()
        .map(|c| UpstreamView {
            name: c.upstream.name.clone(),
            servers: c
                .upstream
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let st = c.lb.server(i);
                    let left = st
                        .and_then(|st| st.ejected_until())
                        .map_or(0, |t| t.saturating_duration_since(now).as_millis() as u64);
                    ServerView {
                        address: s.address.clone(),
                        addr: snap.pools.addr(s.pool),
                        weight: s.weight,
                        up: st.is_some_and(|st| st.is_up()),
                        ejected_ms: left,
                        in_flight: st.map_or(0, |st| st.in_flight()),
                        idle: snap.pools.idle_in(s.pool),
                    }
                })
                .collect(),
        })
        .collect();
    ShardView {
        id: shard.id,
        driver: shard.driver,
        gen: snap.gen,
        connections: shard.connections(),
        requests_active: shard.requests_active(),
        upstreams,
    }
}

/// `Control::CachePurge`: drop the matching entries of this shard's response cache.
pub(super) fn purge(shard: &Shard, snap: &Snapshot, filter: &PurgeFilter) -> PurgeResult {
    let caches = snap
        .config
        .router
        .routes()
        .iter()
        .any(|r| r.policy.cache.is_some());
    if !caches && shard.cache.usage().0 == 0 {
        return PurgeResult::NoCache;
    }
    let n = shard.cache.purge(filter);
    tracing::info!(shard = shard.id, purged = n, "cache purged");
    PurgeResult::Purged(n)
}

pub(super) fn metrics(shard: &Shard, snap: &Snapshot) -> Families {
    let mut out = Families::default();
    let id = shard.id.to_string();
    let me = labels(&[("shard", &id)]);
    out.gauge(
        "coregate_shard_info",
        "One per shard, with the I/O driver it runs on.",
        &labels(&[("shard", &id), ("driver", shard.driver)]),
        1.0,
    );
    out.gauge(
        "coregate_config_generation",
        "The config generation the shard runs (0 at start, +1 per reload).",
        &me,
        snap.gen as f64,
    );
    out.gauge(
        "coregate_requests_active",
        "Requests between head received and response finished.",
        &me,
        shard.requests_active() as f64,
    );
    out.gauge(
        "coregate_connection_tasks_parked",
        "Connection tasks kept between clients, for the shard's next accepted connection.",
        &me,
        shard.workers.parked() as f64,
    );
    out.gauge(
        "coregate_connections_idle",
        "Keep-alive client connections idle for a second or more, waiting with no task or buffer.",
        &me,
        shard.workers.idle.waiting() as f64,
    );
    let listeners: Vec<_> = snap
        .listeners
        .iter()
        .map(|(_, l)| (labels(&[("listener", &l.name), ("shard", &id)]), l))
        .collect();
    for (l, ctx) in &listeners {
        out.gauge(
            "coregate_connections_active",
            "Open client connections.",
            l,
            ctx.stats.active.get() as f64,
        );
    }
    let counters: Vec<_> = listeners
        .iter()
        .map(|(l, ctx)| (l.clone(), &ctx.stats.c))
        .collect();
    ListenerCounters::collect(&counters, false, &mut out);
    snap.stats.collect(&snap.config, &id, &mut out);
    shard.cache.collect(&id, &me, &mut out);
    servers(snap, &id, &mut out);
    out
}

/// Per server of every cluster's current membership: counters, health view, in-flight
/// requests and idle pooled connections.
fn servers(snap: &Snapshot, shard: &str, out: &mut Families) {
    let now = Instant::now();
    let clusters: Vec<_> = snap.clusters().collect();
    let mut items = Vec::new();
    for c in &clusters {
        for (i, (s, stats)) in c.servers().enumerate() {
            let l = labels(&[
                ("upstream", &c.upstream.name),
                ("server", &s.address),
                ("shard", shard),
            ]);
            if let Some(st) = c.lb.server(i) {
                let ejected = st.ejected_until().is_some_and(|t| t > now);
                let gauges: [(&'static str, &'static str, f64); 4] = [
                    ("coregate_upstream_server_up", "1 when the server's active health check has it up (always 1 without checks).", f64::from(u8::from(st.is_up()))),
                    ("coregate_upstream_server_ejected", "1 while the server is ejected by outlier detection.", f64::from(u8::from(ejected))),
                    ("coregate_upstream_in_flight", "Requests this shard has in flight to the server.", f64::from(st.in_flight())),
                    ("coregate_upstream_idle_connections", "Idle keep-alive connections pooled for the server's address.", snap.pools.idle_in(s.pool) as f64),
                ];
                for (name, help, v) in gauges {
                    out.gauge(name, help, &l, v);
                }
            }
            items.push((l, stats));
        }
    }
    crate::metrics::collect_servers(&items, out);
}
