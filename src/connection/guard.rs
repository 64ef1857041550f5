//! Guards that keep a connection's and a request's counts right for as long as they live,
//! panics included: open connections (shard, client IP, listener), requests in flight and
//! closing connections (both waited for by a drain).

use std::net::IpAddr;
use std::rc::Rc;

use crate::listener::ListenerCtx;
use crate::metrics::ListenerStats;
use crate::shard::Shard;

/// Counts the connection open (per shard and client IP, and on its listener) for as long as
/// it lives.
pub(super) struct OpenConnection(Rc<Shard>, IpAddr, Rc<ListenerStats>);

impl OpenConnection {
    pub(super) fn new(shard: Rc<Shard>, ip: IpAddr, listener: &ListenerCtx) -> OpenConnection {
        let stats = listener.stats.clone();
        stats.active.set(stats.active.get() + 1);
        OpenConnection(shard, ip, stats)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed(self.1);
        self.2.active.set(self.2.active.get().saturating_sub(1));
    }
}

/// Counts a request in flight (for graceful drain) for as long as it lives.
pub(super) struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    pub(super) fn new(shard: &'a Shard) -> Self {
        shard.request_started();
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Counts a closing connection (a lingering close, close_notify) for graceful drain for as
/// long as it lives.
pub(super) struct Closing<'a>(&'a Shard);

impl<'a> Closing<'a> {
    pub(super) fn new(shard: &'a Shard) -> Self {
        shard.close_started();
        Closing(shard)
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close_finished();
    }
}
