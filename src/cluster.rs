//! The config as one shard uses it (`Snapshot`): the shared read-only config plus this shard's
//! `Cluster`s, one per upstream: its current membership and this shard's balancer for it. A
//! discovered cluster gets a new `Cluster` when its membership changes; requests in flight
//! keep the one they started with (`Rc`), so removing a server never cuts one short.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::balancer::Balancer;
use crate::config::{Config, Upstream, UpstreamId};

/// One cluster as this shard balances it: its membership (read-only, shared) and this shard's
/// balancer for it. A request holds an `Rc` of it from its first pick to its end, so a new
/// membership never changes a request in flight.
#[derive(Debug)]
pub struct Cluster {
    pub upstream: Arc<Upstream>,
    pub lb: Balancer,
}

/// The config as one shard uses it: the shared read-only part plus this shard's state built
/// for it (one balancer per upstream cluster, replaced when a discovered membership changes).
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    clusters: Vec<RefCell<Rc<Cluster>>>,
    shard_id: usize,
}

impl Snapshot {
    /// The snapshot of `config` for shard `shard_id`: memberships as loaded.
    pub fn new(config: Arc<Config>, shard_id: usize) -> Snapshot {
        let clusters = config
            .upstreams
            .iter()
            .map(|u| {
                RefCell::new(Rc::new(Cluster {
                    upstream: u.clone(),
                    lb: Balancer::new(u, shard_id),
                }))
            })
            .collect();
        Snapshot {
            config,
            clusters,
            shard_id,
        }
    }

    /// Cluster `id` as it is now (`None`: no such cluster).
    pub fn cluster(&self, id: UpstreamId) -> Option<Rc<Cluster>> {
        self.clusters.get(id).map(|c| c.borrow().clone())
    }

    /// Install a new membership of cluster `id`; servers that stay keep their state.
    pub(crate) fn set_members(&self, id: UpstreamId, members: Arc<Upstream>) {
        let Some(cell) = self.clusters.get(id) else {
            return;
        };
        let old = cell.borrow().clone();
        let lb = Balancer::after(&members, self.shard_id, Some((&old.upstream, &old.lb)));
        *cell.borrow_mut() = Rc::new(Cluster {
            upstream: members,
            lb,
        });
    }
}
