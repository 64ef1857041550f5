//! Global rate limits (`scope = "global"`): each shard leases tokens from a bucket in Redis, a
//! batch (`lease_tokens`) per round trip, and spends them locally. The request path waits on
//! Redis only when its shard's lease for the key is empty, and then at most `redis_timeout_ms`.
//!
//! Per shard and global policy, one `Link`: a Redis connection owned by one worker task, fed
//! by a bounded queue. The worker answers queued requests in order; a request whose key got a
//! lease meanwhile (an earlier one fetched it) is answered from that lease, so a burst on one
//! key costs one round trip per batch, not per request. When Redis fails (refused, closed, a
//! timeout, a protocol error) the link is down: requests take the fallback at once (the node
//! limit, open or closed) while the worker reconnects with a bounded back-off, and limiting
//! goes global again as soon as a connection and its `SCRIPT LOAD` succeed.

mod worker;

use std::cell::Cell;
use std::rc::Rc;

use tracing::debug;

use super::rate_limit::{Decision, Fallback, From, RateLimitPolicy};
use crate::redis;
use crate::shard::Shard;

/// Requests waiting for one link's worker; a full queue sends requests to the fallback.
const QUEUE_MAX: usize = 1024;

/// What the rate-limit phase does with a global policy's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Decided(Decision),
    /// Redis unavailable: the policy's fallback says so.
    Fallback(Fallback),
}

/// One shard's Redis links, by policy index (`None` for policies that are not global).
#[derive(Debug, Default)]
pub struct Links {
    links: Vec<Option<Rc<Link>>>,
}

#[derive(Debug)]
pub struct Link {
    up: Cell<bool>,
    queue: flume::Sender<Fetch>,
    inbox: flume::Receiver<Fetch>,
    /// Redis commands sent (EVALSHA and SCRIPT LOAD), for measurements and metrics.
    pub round_trips: Cell<u64>,
}

/// A request for tokens of one key, answered with a decision (`None`: Redis unavailable).
#[derive(Debug)]
struct Fetch {
    hash: u64,
    key: Vec<u8>,
    reply: flume::Sender<Option<Decision>>,
}

// === impl Links ===

impl Links {
    pub fn new(policies: &[RateLimitPolicy]) -> Links {
        let links = policies
            .iter()
            .map(|p| {
                p.global.as_ref().map(|_| {
                    let (queue, inbox) = flume::bounded(QUEUE_MAX);
                    Rc::new(Link {
                        up: Cell::new(true),
                        queue,
                        inbox,
                        round_trips: Cell::new(0),
                    })
                })
            })
            .collect();
        Links { links }
    }

    pub fn get(&self, policy: usize) -> Option<&Rc<Link>> {
        self.links.get(policy)?.as_ref()
    }

    /// Redis commands sent by this shard, all policies.
    pub fn round_trips(&self) -> u64 {
        self.links
            .iter()
            .flatten()
            .map(|l| l.round_trips.get())
            .sum()
    }
}

/// Start one worker per global policy on this shard (call once, from the shard's runtime).
pub fn start(shard: &Rc<Shard>) {
    let config = shard.snapshot().config.clone();
    for (i, p) in config.gateway.rate_limits.iter().enumerate() {
        if let (Some(g), Some(link)) = (&p.global, shard.global.get(i)) {
            let worker = worker::Worker {
                shard: shard.clone(),
                link: link.clone(),
                policy: i,
                p: p.clone(),
                settings: g.clone(),
            };
            monoio::spawn(worker.run());
        }
    }
}

/// The request path: spend a leased token, or ask the worker for a lease and wait (bounded).
pub async fn check(
    shard: &Shard,
    p: &RateLimitPolicy,
    policy: usize,
    hash: u64,
    key: &[u8],
) -> Outcome {
    let Some(g) = &p.global else {
        return Outcome::Fallback(Fallback::Open);
    };
    if let Some(d) = shard.limiter.from_lease(From::Redis, p, policy, hash) {
        return Outcome::Decided(d);
    }
    let Some(link) = shard.global.get(policy).filter(|l| l.up.get()) else {
        return Outcome::Fallback(g.fallback);
    };
    let (tx, rx) = flume::bounded(1);
    let fetch = Fetch {
        hash,
        key: redis::bucket_key(&p.name, key),
        reply: tx,
    };
    if link.queue.try_send(fetch).is_err() {
        debug!(policy = %p.name, "global rate limit queue full; fallback");
        return Outcome::Fallback(g.fallback);
    }
    // Boxed: a monoio timeout's timer entry is 128-byte aligned and would pad the future of
    // every request; this path already allocates a channel.
    match Box::pin(monoio::time::timeout(g.timeout, rx.recv_async())).await {
        Ok(Ok(Some(d))) => Outcome::Decided(d),
        _ => Outcome::Fallback(g.fallback),
    }
}

/// The response fields of a fail-closed refusal (503): retry after a second.
pub fn closed_fields(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Retry-After: 1\r\n");
}
