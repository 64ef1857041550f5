//! A shard's side of a config reload: switch to the new snapshot (requests in flight keep the
//! old one), carry the rate-limit tables, drop the cache entries of routes whose caching changed
//! (`cache::reload`), stop the accept loops of removed listeners and
//! start those of new ones.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Shard, Snapshot};
use crate::config::Config;
use crate::signal::Signal;

/// A validated new config and the listener changes, for every shard.
#[derive(Debug)]
pub struct Reload {
    pub gen: u64,
    pub config: Arc<Config>,
    /// Stable id of each `config.listeners` entry.
    pub listener_ids: Vec<u64>,
    /// New listeners: id and one bound socket per shard (indexed by shard id). A shard takes
    /// a duplicate of its own.
    pub add: Vec<(u64, Vec<StdListener>)>,
    /// Listeners that stop accepting.
    pub remove: Vec<u64>,
}

impl Shard {
    /// Switch to `r.config` (new requests start on it; requests in flight finish on the old
    /// snapshot), stop the accept loops of removed listeners and start those of new ones.
    pub(super) fn reload(self: &Rc<Self>, r: &Reload) {
        let old = self.snapshot();
        let next = Snapshot::new(
            r.config.clone(),
            self.id,
            r.gen,
            &r.listener_ids,
            Some(&old),
        );
        self.limiter.reload(
            &old.config.gateway.rate_limits,
            &r.config.gateway.rate_limits,
        );
        let dropped = self.cache.reload(&old.config, &r.config);
        if dropped.changed + dropped.evicted > 0 {
            info!(
                shard = self.id,
                changed = dropped.changed,
                evicted = dropped.evicted,
                "cache entries dropped by the reload"
            );
        }
        *self.snapshot.borrow_mut() = Rc::new(next);
        drop(old);
        self.accepting.borrow_mut().retain(|(id, stop)| {
            let removed = r.remove.contains(id);
            if removed {
                stop.fire();
            }
            !removed
        });
        for (id, sockets) in &r.add {
            match sockets.get(self.id).map(StdListener::try_clone) {
                Some(Ok(socket)) => self.start_accepting(*id, socket),
                Some(Err(e)) => {
                    warn!(shard = self.id, listener = id, error = %e, "cannot take the new listener")
                }
                None => warn!(shard = self.id, listener = id, "no socket for this shard"),
            }
        }
        info!(shard = self.id, gen = r.gen, "config reloaded");
    }

    pub(super) fn start_accepting(self: &Rc<Self>, id: u64, socket: StdListener) {
        let stop = Rc::new(Signal::default());
        self.accepting.borrow_mut().push((id, stop.clone()));
        monoio::spawn(crate::listener::accept_loop(self.clone(), id, socket, stop));
    }
}
