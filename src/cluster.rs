//! The config as one shard uses it (`Snapshot`): the shared read-only config plus this shard's
//! state built for it, indexed like the config: its `Cluster`s (one per upstream: current
//! membership, this shard's balancer and per-server counters), upstream pools, TLS connectors,
//! counters and listener contexts. A discovered cluster gets a new `Cluster` when its
//! membership changes; a reload builds a new `Snapshot` that carries over what stays (servers,
//! pools, counters, by name and address). Requests in flight keep the `Rc` they started with,
//! so neither ever changes a request under way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::balancer::Balancer;
use crate::config::{Config, Upstream, UpstreamId, UpstreamServer};
use crate::listener::ListenerCtx;
use crate::metrics::{ListenerStats, ServerStats, Stats};
use crate::upstream::pool::Pools;

/// One cluster as this shard balances it: its membership (read-only, shared), this shard's
/// balancer for it and its servers' counters. A request holds an `Rc` of it from its first pick
/// to its end, so a new membership never changes a request in flight.
#[derive(Debug)]
pub struct Cluster {
    pub upstream: Arc<Upstream>,
    pub lb: Balancer,
    /// Per server of `upstream`, carried by address to the next membership.
    stats: Box<[Rc<ServerStats>]>,
}

impl Cluster {
    /// `members` balanced on shard `shard_id`, keeping the state and counters of the servers
    /// `prev` (the previous membership) also had.
    fn new(members: Arc<Upstream>, shard_id: usize, prev: Option<&Cluster>) -> Cluster {
        let lb = Balancer::after(&members, shard_id, prev.map(|p| (&*p.upstream, &p.lb)));
        let stats = members
            .servers
            .iter()
            .map(|s| {
                prev.and_then(|p| {
                    let i = p
                        .upstream
                        .servers
                        .iter()
                        .position(|o| o.address == s.address)?;
                    p.stats.get(i).cloned()
                })
                .unwrap_or_default()
            })
            .collect();
        Cluster {
            upstream: members,
            lb,
            stats,
        }
    }

    /// Counters of server `i` of this membership (an index its balancer picked).
    pub fn stats(&self, i: usize) -> &ServerStats {
        &self.stats[i]
    }

    /// (server, its counters) in membership order.
    pub fn servers(&self) -> impl Iterator<Item = (&UpstreamServer, &ServerStats)> {
        self.upstream
            .servers
            .iter()
            .zip(self.stats.iter().map(|s| &**s))
    }
}

/// The config as one shard uses it: the shared read-only part plus this shard's state built
/// for it.
pub struct Snapshot {
    /// Config generation: 0 at start, +1 per reload. Control messages name the generation
    /// their indexes belong to.
    pub gen: u64,
    pub config: Arc<Config>,
    clusters: Vec<RefCell<Rc<Cluster>>>,
    shard_id: usize,
    /// This shard's TLS connector per cluster with `[upstream.tls]` (its own rustls client
    /// config and session cache), by `UpstreamId`.
    upstream_tls: Vec<Option<monoio_rustls::TlsConnector>>,
    /// Idle upstream connections, one pool per distinct server address.
    pub pools: Pools,
    /// Route, cluster and listener counters.
    pub stats: Stats,
    /// (listener id, context) per configured listener, in config order. Ids are stable across
    /// reloads for a listener that stays.
    pub listeners: Vec<(u64, Rc<ListenerCtx>)>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("gen", &self.gen)
            .field("config", &self.config)
            .field("clusters", &self.clusters)
            .field("shard_id", &self.shard_id)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The snapshot of `config` for shard `shard_id`; `prev` (the running one, on a reload)
    /// lends what stays: server state and counters (by cluster name and address), pools (by
    /// address), listener counters (by id).
    pub fn new(
        config: Arc<Config>,
        shard_id: usize,
        gen: u64,
        listener_ids: &[u64],
        prev: Option<&Snapshot>,
    ) -> Snapshot {
        let clusters = config
            .upstreams
            .iter()
            .map(|u| {
                let old = prev.and_then(|p| p.cluster(p.config.upstream_id(&u.name)?));
                // A DNS-discovered cluster has no servers at load: keep the running membership
                // until the new discovery thread's first answer replaces it.
                let members = match &old {
                    Some(o) if u.servers.is_empty() && u.discovery.is_some() => o.upstream.clone(),
                    _ => u.clone(),
                };
                RefCell::new(Rc::new(Cluster::new(members, shard_id, old.as_deref())))
            })
            .collect();
        let upstream_tls = config
            .upstreams
            .iter()
            .map(|u| {
                u.tls
                    .as_ref()
                    .map(|t| monoio_rustls::TlsConnector::from(t.client_config()))
            })
            .collect();
        let pools = Pools::carry(&config.pools, prev.map(|p| (&p.config.pools[..], &p.pools)));
        let stats = Stats::new(&config, prev.map(|p| (&*p.config, &p.stats)));
        let listeners = listeners(&config, listener_ids, prev);
        Snapshot {
            gen,
            config,
            clusters,
            shard_id,
            upstream_tls,
            pools,
            stats,
            listeners,
        }
    }

    /// How to secure a new connection to `server` of cluster `id` (`None`: plain TCP). A
    /// discovered server whose host makes no TLS name gets none, and its handshake fails.
    pub fn tls_target(
        &self,
        id: UpstreamId,
        upstream: &Upstream,
        server: &UpstreamServer,
    ) -> crate::upstream::TlsTarget<'_> {
        let connector = self.upstream_tls.get(id)?.as_ref()?;
        let name = upstream.tls.as_ref()?.name_for(&server.address);
        Some((connector, name))
    }

    /// Cluster `id` as it is now (`None`: no such cluster).
    pub fn cluster(&self, id: UpstreamId) -> Option<Rc<Cluster>> {
        self.clusters.get(id).map(|c| c.borrow().clone())
    }

    /// Every cluster as it is now, in config order.
    pub fn clusters(&self) -> impl Iterator<Item = Rc<Cluster>> + '_ {
        self.clusters.iter().map(|c| c.borrow().clone())
    }

    /// The context of listener `id`, if this config has it.
    pub fn listener(&self, id: u64) -> Option<&Rc<ListenerCtx>> {
        self.listeners
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, c)| c)
    }

    /// Install a new membership of cluster `id`; servers that stay keep their state.
    pub(crate) fn set_members(&self, id: UpstreamId, members: Arc<Upstream>) {
        let Some(cell) = self.clusters.get(id) else {
            return;
        };
        let old = cell.borrow().clone();
        *cell.borrow_mut() = Rc::new(Cluster::new(members, self.shard_id, Some(&old)));
    }
}

/// Listener contexts of `config` (a new TLS acceptor each: a reload may change certificates),
/// keeping each listener's counters by id.
fn listeners(config: &Config, ids: &[u64], prev: Option<&Snapshot>) -> Vec<(u64, Rc<ListenerCtx>)> {
    let mut old: HashMap<u64, Rc<ListenerStats>> = HashMap::new();
    if let Some(p) = prev {
        for (id, c) in &p.listeners {
            old.insert(*id, c.stats.clone());
        }
    }
    config
        .listeners
        .iter()
        .zip(ids)
        .map(|(l, &id)| {
            let ctx = ListenerCtx {
                name: l.name.as_str().into(),
                tls: l
                    .tls
                    .as_ref()
                    .map(|t| monoio_rustls::TlsAcceptor::from(t.server_config())),
                access: l.access.clone(),
                stats: old.remove(&id).unwrap_or_default(),
            };
            (id, Rc::new(ctx))
        })
        .collect()
}
