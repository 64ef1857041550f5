//! Idle keep-alive connections of one shard, per upstream server address, and the current IP
//! of each address (a hostname's changes arrive by message). LIFO, so the warmest connection is
//! reused first and the coldest ages out; bounded per server; never shared.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::UpstreamConn;
use crate::config::PoolAddress;

#[derive(Debug, Default)]
pub struct Pools {
    /// Indexed by `UpstreamServer::pool`.
    idle: RefCell<Vec<Vec<UpstreamConn>>>,
    /// Where each pool's address points now; `None` once retired (no cluster names it).
    /// Grows when discovery adds addresses (the control thread bounds the pool count).
    addrs: RefCell<Vec<Option<SocketAddr>>>,
}

impl Pools {
    pub fn new(addresses: &[PoolAddress]) -> Pools {
        Pools {
            idle: RefCell::new(addresses.iter().map(|_| Vec::new()).collect()),
            addrs: RefCell::new(addresses.iter().map(|a| Some(a.addr)).collect()),
        }
    }

    /// The address to connect to for `pool` (`None` once retired).
    pub fn addr(&self, pool: usize) -> Option<SocketAddr> {
        self.addrs.borrow().get(pool).copied().flatten()
    }

    /// `pool`'s hostname now resolves to `addr`: idle connections to the old address close.
    pub fn set_addr(&self, pool: usize, addr: SocketAddr) {
        if pool < self.addrs.borrow().len() {
            self.ensure(pool, addr);
        }
    }

    /// Discovery: `pool` exists (grown to it if new) and points at `addr`; idle connections
    /// to another address close.
    pub fn ensure(&self, pool: usize, addr: SocketAddr) {
        let mut addrs = self.addrs.borrow_mut();
        let mut idle = self.idle.borrow_mut();
        if addrs.len() <= pool {
            addrs.resize(pool + 1, None);
            idle.resize_with(pool + 1, Vec::new);
        }
        if addrs[pool] != Some(addr) {
            addrs[pool] = Some(addr);
            idle[pool].clear();
        }
    }

    /// No cluster names `pool` any more: close its idle connections, pool none again.
    pub fn retire(&self, pool: usize) {
        if let Some(a) = self.addrs.borrow_mut().get_mut(pool) {
            *a = None;
        }
        if let Some(list) = self.idle.borrow_mut().get_mut(pool) {
            list.clear();
        }
    }

    /// The most recently returned connection that has not been idle longer than `idle_max`.
    pub fn checkout(&self, pool: usize, idle_max: Duration) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(pool)?;
        let now = Instant::now();
        while let Some(mut conn) = list.pop() {
            if now.duration_since(conn.idle_since) < idle_max {
                debug_assert!(conn.buf.is_empty(), "pooled connection with unread bytes");
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keep `conn` for reuse, unless its server already has `max` idle connections.
    pub fn checkin(&self, mut conn: UpstreamConn, max: usize) {
        debug_assert!(
            conn.buf.is_empty(),
            "only a connection with nothing unread is reusable"
        );
        if self.addr(conn.pool) != Some(conn.addr) {
            return; // connected before the address changed
        }
        let mut idle = self.idle.borrow_mut();
        let Some(list) = idle.get_mut(conn.pool) else {
            return;
        };
        if list.len() >= max {
            return;
        }
        conn.idle_since = Instant::now();
        list.push(conn);
    }

    /// Close connections idle longer than `idle_max` (run periodically, off the request path).
    pub fn sweep(&self, idle_max: Duration) {
        let now = Instant::now();
        for list in self.idle.borrow_mut().iter_mut() {
            list.retain(|c| now.duration_since(c.idle_since) < idle_max);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().map(Vec::len).sum()
    }
}
