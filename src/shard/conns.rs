//! Open client connections of one shard: the total (`connections_per_shard_max`) and, when
//! `connections_per_ip_max` is set, the count per client IP. Plain per-shard memory: a client's
//! connections on other shards are not seen (the limit is per shard, documented as such).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Limits;

#[derive(Debug, Default)]
pub struct Connections {
    open: Cell<usize>,
    /// One entry per IP with at least one open connection: bounded by the shard's limit.
    per_ip: RefCell<HashMap<IpAddr, u32>>,
}

impl Connections {
    /// Open connections counted now.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Count a new connection from `ip`, unless a limit is reached.
    pub fn admit(&self, ip: IpAddr, limits: &Limits) -> bool {
        if self.open.get() >= limits.connections_per_shard_max {
            return false;
        }
        if limits.connections_per_ip_max > 0 {
            let mut per_ip = self.per_ip.borrow_mut();
            let n = per_ip.entry(ip).or_insert(0);
            if *n as usize >= limits.connections_per_ip_max {
                return false;
            }
            *n += 1;
        }
        self.open.set(self.open.get() + 1);
        true
    }

    /// A connection from `ip` that `admit` counted has closed.
    pub fn closed(&self, ip: IpAddr, limits: &Limits) {
        debug_assert!(self.open.get() > 0);
        self.open.set(self.open.get().saturating_sub(1));
        if limits.connections_per_ip_max > 0 {
            let mut per_ip = self.per_ip.borrow_mut();
            if let Some(n) = per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}
