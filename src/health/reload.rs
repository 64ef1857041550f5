//! The control thread's state across a config reload: a new generation's `State` built from
//! the new config, keeping the node-wide health of servers that stay, and the full state sent
//! to the shards again once they all run the new generation.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use super::members::PoolTable;
use super::{ClusterState, State};
use crate::config::Config;
use crate::shard::{Control, ServerRef};

impl State {
    /// The state for `config`; `prev` (the generation before, on a reload) lends the health
    /// of servers that stay (same cluster name and address).
    pub(super) fn new(
        config: &Config,
        shards: Vec<flume::Sender<Control>>,
        gen: u64,
        prev: Option<&State>,
    ) -> State {
        let old = |name: &str, address: &str| {
            let p = prev?;
            let c = p
                .clusters
                .iter()
                .find(|c| c.borrow().upstream.name == name)?;
            let c = c.borrow();
            let i = c
                .upstream
                .servers
                .iter()
                .position(|s| s.address == address)?;
            c.health.get(i).cloned()
        };
        let clusters = config
            .upstreams
            .iter()
            .map(|u| {
                RefCell::new(ClusterState {
                    upstream: u.clone(),
                    health: u
                        .servers
                        .iter()
                        .map(|s| old(&u.name, &s.address).unwrap_or_default())
                        .collect(),
                })
            })
            .collect();
        State {
            gen,
            shards,
            clusters,
            pools: RefCell::new(PoolTable::new(config)),
            retired: Cell::new(false),
        }
    }

    /// Send every checked server's health, and every ejection still running, to the shards
    /// for this generation: transitions they may have missed while switching.
    pub(super) async fn sync(&self) {
        let now = Instant::now();
        for (u, cell) in self.clusters.iter().enumerate() {
            let (upstream, health) = {
                let c = cell.borrow();
                (c.upstream.clone(), c.health.clone())
            };
            for (server, (s, h)) in upstream.servers.iter().zip(&health).enumerate() {
                let at = ServerRef {
                    gen: self.gen,
                    upstream: u,
                    server,
                    pool: s.pool,
                };
                if upstream.health.is_some() {
                    let up = !h.down.get();
                    self.broadcast(Control::Health { at, up }).await;
                }
                if let Some(until) = h.ejected_until.get().filter(|&t| t > now) {
                    self.broadcast(Control::Eject { at, until }).await;
                }
            }
        }
    }
}
