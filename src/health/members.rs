//! Cluster memberships on the control thread: the current server list of each cluster and the
//! table of connection pools (one per distinct server address, on every shard). A discovered
//! list becomes a new `Upstream` here: servers keep their pool by address, new addresses get a
//! pool (a freed one first), and pools no cluster uses any more are retired, so shards close
//! their idle connections. Only this thread allocates pools, so every shard agrees on them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::warn;

use crate::config::defaults as d;
use crate::config::{server_entry, Config, Upstream};
use crate::discovery::Found;

/// Pools at most, static and discovered (each is a few words per shard when unused).
const POOLS_MAX: usize = 65_536;

#[derive(Debug)]
pub struct PoolTable {
    /// Current address of each pool (for probes; hostnames change by `Report::Resolved`).
    pub addrs: Vec<SocketAddr>,
    by_address: HashMap<String, usize>,
    /// Memberships naming each pool; 0 = free.
    users: Vec<u32>,
    free: Vec<usize>,
}

/// A new membership for one cluster, ready to broadcast.
pub struct Change {
    pub members: Arc<Upstream>,
    /// (pool, address) of every server of the new list.
    pub pools: Vec<(usize, SocketAddr)>,
    /// Pools no cluster names any more.
    pub retired: Vec<usize>,
}

impl PoolTable {
    pub fn new(config: &Config) -> PoolTable {
        let mut t = PoolTable {
            addrs: config.pools.iter().map(|p| p.addr).collect(),
            by_address: HashMap::new(),
            users: vec![0; config.pools.len()],
            free: Vec::new(),
        };
        for (i, p) in config.pools.iter().enumerate() {
            t.by_address.insert(p.address.clone(), i);
        }
        for u in &config.upstreams {
            for s in &u.servers {
                t.users[s.pool] += 1;
            }
        }
        t
    }

    /// The pool of `address` (new or reused), now pointing at `addr`.
    fn acquire(&mut self, address: &str, addr: SocketAddr) -> Option<usize> {
        let pool = match self.by_address.get(address) {
            Some(&p) => p,
            None => {
                let p = match self.free.pop() {
                    Some(p) => {
                        self.by_address.retain(|_, v| *v != p);
                        p
                    }
                    None if self.addrs.len() < POOLS_MAX => {
                        self.addrs.push(addr);
                        self.users.push(0);
                        self.addrs.len() - 1
                    }
                    None => return None,
                };
                self.by_address.insert(address.to_string(), p);
                p
            }
        };
        if self.users[pool] == 0 {
            self.free.retain(|&f| f != pool);
        }
        self.users[pool] += 1;
        self.addrs[pool] = addr;
        Some(pool)
    }

    /// One membership less names `pool`; true when none does any more.
    fn release(&mut self, pool: usize) -> bool {
        let Some(n) = self.users.get_mut(pool) else {
            return false;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.free.push(pool);
            return true;
        }
        false
    }

    /// Build `old`'s cluster with the servers `found` (sorted, distinct addresses).
    pub fn change(&mut self, old: &Upstream, found: &[Found]) -> Option<Change> {
        let weight: usize = found.iter().map(|f| f.weight as usize).sum();
        if old.balance == crate::config::Balance::Hash
            && weight * d::HASH_POINTS_PER_WEIGHT > d::HASH_POINTS_MAX
        {
            warn!(upstream = %old.name, "discovered weights make the hash ring too large; keeping the last list");
            return None;
        }
        let mut servers = Vec::with_capacity(found.len());
        let mut pools = Vec::with_capacity(found.len());
        for f in found {
            let Some(pool) = self.acquire(&f.address, f.addr) else {
                warn!(upstream = %old.name, server = %f.address, "too many server addresses; server left out");
                continue;
            };
            let sticky = old.sticky_cookie.as_deref();
            servers.push(server_entry(
                &old.name, sticky, &f.address, f.addr, f.weight, pool,
            ));
            pools.push((pool, f.addr));
        }
        let retired = old
            .servers
            .iter()
            .filter(|s| self.release(s.pool))
            .map(|s| s.pool)
            .collect();
        let Some(members) = old.with_servers(servers) else {
            warn!(upstream = %old.name, "discovered weights make the hash ring too large; keeping the last list");
            return None;
        };
        Some(Change {
            members: Arc::new(members),
            pools,
            retired,
        })
    }
}
