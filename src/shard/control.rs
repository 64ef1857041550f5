//! Messages to a shard (`Control`) from the control, admin and main threads, and how a shard
//! applies those that update its state or ask for an answer (`Shard::apply`). Shutdown and
//! reload are taken by the shard's main loop (`shard_main`), not here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::inspect::{self, PurgeFilter, PurgeResult, ShardView};
use super::{Reload, Shard};
use crate::balancer::ServerState;
use crate::config::{Upstream, UpstreamId};
use crate::metrics::Families;

/// A server as the control thread and the shards name it to each other: its index in the
/// control thread's membership of cluster `upstream` and its pool (a shard whose membership
/// differs finds it by the pool), under config generation `gen` (a shard or control thread
/// running another generation ignores the message; the control thread sends the full state
/// again after a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRef {
    pub gen: u64,
    pub upstream: UpstreamId,
    pub server: usize,
    pub pool: usize,
}

/// Messages to a shard. Health updates name their server by `ServerRef`; address and
/// membership updates name their config generation too.
#[derive(Debug, Clone)]
pub enum Control {
    /// Stop accepting, finish in-flight requests (up to the drain timeout), then exit.
    Shutdown,
    /// The active check's verdict on a server changed.
    Health { at: ServerRef, up: bool },
    /// Passive health: the server is ejected until then, node-wide.
    Eject { at: ServerRef, until: Instant },
    /// The ejection ends early: the active check saw the server healthy.
    Release(ServerRef),
    /// A hostname's address changed (`Config::pools` index).
    Resolved {
        gen: u64,
        pool: usize,
        addr: SocketAddr,
    },
    /// Discovery: cluster `upstream` now has these servers. `pools` holds (pool, address) of
    /// each; `retired` pools are named by no cluster any more (their idle connections close).
    /// Requests in flight finish on the membership they started with.
    Members {
        gen: u64,
        upstream: UpstreamId,
        members: Arc<Upstream>,
        pools: Vec<(usize, SocketAddr)>,
        retired: Vec<usize>,
    },
    /// Switch to a new config between requests; the shard answers its id once it has.
    Reload(Arc<Reload>, flume::Sender<usize>),
    /// The admin thread scrapes this shard's metrics.
    Metrics(flume::Sender<Families>),
    /// The admin thread asks for this shard's state (status, servers).
    Inspect(flume::Sender<ShardView>),
    /// Drop cached responses matching the filter; the shard answers how many it dropped, or
    /// `PurgeResult::NoCache` when no route of its config caches and its cache is empty.
    CachePurge(PurgeFilter, flume::Sender<PurgeResult>),
}

impl Shard {
    /// Apply a health, address or membership update from the control thread (ignored when
    /// it names another config generation, or servers and clusters that do not fit), or
    /// answer the admin thread.
    pub fn apply(&self, msg: Control) {
        let now = Instant::now();
        let snap = self.snapshot();
        let with = |at: ServerRef, f: &dyn Fn(&ServerState)| {
            if at.gen != snap.gen {
                return;
            }
            let Some(c) = snap.cluster(at.upstream) else {
                return;
            };
            let servers = &c.upstream.servers;
            let i = match servers.get(at.server) {
                Some(s) if s.pool == at.pool => Some(at.server),
                _ => servers.iter().position(|s| s.pool == at.pool),
            };
            if let Some(s) = i.and_then(|i| c.lb.server(i)) {
                f(s);
            }
        };
        match msg {
            Control::Health { at, up } => with(at, &|s| s.set_up(up, now)),
            Control::Eject { at, until } => with(at, &|s| s.eject(until)),
            Control::Release(at) => with(at, &|s| s.release(now)),
            Control::Resolved { gen, pool, addr } if gen == snap.gen => {
                snap.pools.set_addr(pool, addr)
            }
            Control::Members {
                gen,
                upstream,
                members,
                pools,
                retired,
            } if gen == snap.gen => {
                for (pool, addr) in pools {
                    snap.pools.ensure(pool, addr);
                }
                for pool in retired {
                    snap.pools.retire(pool);
                }
                snap.set_members(upstream, members);
            }
            Control::Metrics(reply) => {
                let _ = reply.try_send(inspect::metrics(self, &snap));
            }
            Control::Inspect(reply) => {
                let _ = reply.try_send(inspect::view(self, &snap));
            }
            Control::CachePurge(filter, reply) => {
                let _ = reply.try_send(inspect::purge(self, &snap, &filter));
            }
            Control::Resolved { .. }
            | Control::Members { .. }
            | Control::Shutdown
            | Control::Reload(..) => {}
        }
    }
}
