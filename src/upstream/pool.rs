//! Idle keep-alive connections of one shard, per upstream server address, and the current IP
//! of each address (a hostname's changes arrive by message). LIFO, so the warmest connection is
//! reused first and the coldest ages out; bounded per server; never shared between shards.
//!
//! Each address has a slot (`Rc<PoolSlot>`), indexed by `UpstreamServer::pool`. Discovery adds
//! slots and retires them (`ensure`, `retire`). A config reload builds new `Pools` that keep the
//! slots of addresses still listed (pools are keyed by the address as written), so pooled
//! connections survive a reload, and requests still running on the old snapshot return their
//! connections to the same slot.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::UpstreamConn;
use crate::config::PoolAddress;

#[derive(Debug, Default)]
pub struct Pools {
    /// Indexed by `UpstreamServer::pool`; `None` once retired (no cluster names it). Grows when
    /// discovery adds addresses (the control thread bounds the pool count).
    slots: RefCell<Vec<Option<Rc<PoolSlot>>>>,
}

#[derive(Debug)]
pub struct PoolSlot {
    // Boxed on purpose: a connection is checked out and in with every request (see
    // `UpstreamConn`), and a box moves as 8 bytes.
    #[allow(clippy::vec_box)]
    idle: RefCell<Vec<Box<UpstreamConn>>>,
    /// Where the address points now.
    addr: Cell<SocketAddr>,
}

impl PoolSlot {
    fn new(addr: SocketAddr) -> Rc<PoolSlot> {
        Rc::new(PoolSlot {
            idle: RefCell::new(Vec::new()),
            addr: Cell::new(addr),
        })
    }

    fn set_addr(&self, addr: SocketAddr) {
        if self.addr.get() != addr {
            self.addr.set(addr);
            self.close_idle();
        }
    }

    fn close_idle(&self) {
        for conn in self.idle.borrow_mut().drain(..) {
            conn.close();
        }
    }
}

impl Pools {
    pub fn new(addresses: &[PoolAddress]) -> Pools {
        Pools::carry(addresses, None)
    }

    /// Pools for `addresses`, keeping the slots (and idle connections) of the addresses that
    /// `prev` (the previous snapshot's addresses and pools) also had. An address whose IP
    /// changed in between (resolved again at load) drops its idle connections.
    pub fn carry(addresses: &[PoolAddress], prev: Option<(&[PoolAddress], &Pools)>) -> Pools {
        let mut old: HashMap<&str, Rc<PoolSlot>> = HashMap::new();
        if let Some((pa, pp)) = prev {
            for (a, slot) in pa.iter().zip(pp.slots.borrow().iter()) {
                if let Some(slot) = slot {
                    old.insert(a.address.as_str(), slot.clone());
                }
            }
        }
        let slots = addresses
            .iter()
            .map(|a| match old.remove(a.address.as_str()) {
                Some(slot) => {
                    slot.set_addr(a.addr);
                    Some(slot)
                }
                None => Some(PoolSlot::new(a.addr)),
            })
            .collect();
        Pools {
            slots: RefCell::new(slots),
        }
    }

    fn slot(&self, pool: usize) -> Option<Rc<PoolSlot>> {
        self.slots.borrow().get(pool).cloned().flatten()
    }

    /// The address to connect to for `pool` (`None` once retired).
    pub fn addr(&self, pool: usize) -> Option<SocketAddr> {
        self.slots
            .borrow()
            .get(pool)
            .and_then(|s| s.as_ref().map(|s| s.addr.get()))
    }

    /// `pool`'s hostname now resolves to `addr`: idle connections to the old address close.
    pub fn set_addr(&self, pool: usize, addr: SocketAddr) {
        if let Some(slot) = self.slot(pool) {
            slot.set_addr(addr);
        }
    }

    /// Discovery: `pool` exists (grown to it if new) and points at `addr`; idle connections
    /// to another address close.
    pub fn ensure(&self, pool: usize, addr: SocketAddr) {
        let mut slots = self.slots.borrow_mut();
        if slots.len() <= pool {
            slots.resize(pool + 1, None);
        }
        match &slots[pool] {
            Some(slot) => slot.set_addr(addr),
            None => slots[pool] = Some(PoolSlot::new(addr)),
        }
    }

    /// No cluster names `pool` any more: close its idle connections, pool none again.
    pub fn retire(&self, pool: usize) {
        if let Some(slot) = self.slots.borrow_mut().get_mut(pool).and_then(Option::take) {
            slot.close_idle();
        }
    }

    /// The most recently returned connection that has not been idle longer than `idle_max` at
    /// `now`.
    pub fn checkout(
        &self,
        pool: usize,
        idle_max: Duration,
        now: Instant,
    ) -> Option<Box<UpstreamConn>> {
        let slot = self.slot(pool)?;
        let mut idle = slot.idle.borrow_mut();
        while let Some(mut conn) = idle.pop() {
            if now.duration_since(conn.idle_since) < idle_max {
                debug_assert!(conn.buf.is_empty(), "pooled connection with unread bytes");
                conn.reused = true;
                return Some(conn);
            }
            conn.close();
        }
        None
    }

    /// Keep `conn` for reuse (idle from `now`), unless its server already has `max` idle
    /// connections.
    pub fn checkin(&self, mut conn: Box<UpstreamConn>, max: usize, now: Instant) {
        debug_assert!(
            conn.buf.is_empty(),
            "only a connection with nothing unread is reusable"
        );
        let Some(slot) = self.slot(conn.pool) else {
            return conn.close();
        };
        if slot.addr.get() != conn.addr {
            return conn.close(); // connected before the address changed
        }
        let mut idle = slot.idle.borrow_mut();
        if idle.len() >= max {
            return conn.close();
        }
        conn.idle_since = now;
        idle.push(conn);
    }

    /// Close connections idle longer than `idle_max` (run periodically, off the request path).
    pub fn sweep(&self, idle_max: Duration) {
        let now = Instant::now();
        for slot in self.slots.borrow().iter().flatten() {
            let mut idle = slot.idle.borrow_mut();
            let mut i = 0;
            while i < idle.len() {
                if now.duration_since(idle[i].idle_since) < idle_max {
                    i += 1;
                } else {
                    // `remove`, not `swap_remove`: the order is the LIFO order of reuse.
                    idle.remove(i).close();
                }
            }
        }
    }

    pub fn idle_count(&self) -> usize {
        let slots = self.slots.borrow();
        slots.iter().flatten().map(|s| s.idle.borrow().len()).sum()
    }

    /// Idle connections of one pool.
    pub fn idle_in(&self, pool: usize) -> usize {
        self.slot(pool).map_or(0, |s| s.idle.borrow().len())
    }
}
