//! The config as one shard uses it (`Snapshot`): the shared read-only config plus this shard's
//! `Cluster`s, one per upstream: its current membership and this shard's balancer for it. A
//! discovered cluster gets a new `Cluster` when its membership changes; requests in flight
//! keep the one they started with (`Rc`), so removing a server never cuts one short.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::balancer::Balancer;
use crate::config::{Config, Upstream, UpstreamId, UpstreamServer};

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
pub struct Snapshot {
    pub config: Arc<Config>,
    clusters: Vec<RefCell<Rc<Cluster>>>,
    shard_id: usize,
    /// This shard's TLS connector per cluster with `[upstream.tls]` (its own rustls client
    /// config and session cache), by `UpstreamId`.
    upstream_tls: Vec<Option<monoio_rustls::TlsConnector>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("config", &self.config)
            .field("clusters", &self.clusters)
            .field("shard_id", &self.shard_id)
            .finish_non_exhaustive()
    }
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
        let upstream_tls = config
            .upstreams
            .iter()
            .map(|u| {
                u.tls
                    .as_ref()
                    .map(|t| monoio_rustls::TlsConnector::from(t.client_config()))
            })
            .collect();
        Snapshot {
            config,
            clusters,
            shard_id,
            upstream_tls,
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
