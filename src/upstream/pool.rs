//! Idle keep-alive connections of one shard, per upstream server address. LIFO, so the warmest
//! connection is reused first and the coldest ages out; bounded per server; never shared.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::UpstreamConn;

#[derive(Debug, Default)]
pub struct Pools {
    /// Indexed by `UpstreamServer::pool`.
    idle: RefCell<Vec<Vec<UpstreamConn>>>,
}

impl Pools {
    pub fn new(count: usize) -> Pools {
        Pools {
            idle: RefCell::new((0..count).map(|_| Vec::new()).collect()),
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
