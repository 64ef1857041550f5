//! Rate limiting: token buckets per (policy, key), held per shard in plain `RefCell`s.
//!
//! A policy's rate is node-wide (`scope = "node"`, the default). Each key has an *owner shard*
//! (from its keyed hash) that holds the key's one real bucket. The owner takes tokens directly;
//! any other shard takes a small *lease* of tokens from the owner by message
//! (`Control::Lease`), spends it locally, and asks again when it runs out. A refusal is cached
//! until the owner's next token, so a flood costs one message per key per refill, not per
//! request. The sum of what every shard admits never exceeds the owner's bucket; the error is
//! only tokens leased and not yet spent (at most `chunk - 1` per other shard), which undercounts.
//! `scope = "shard"` keeps an independent bucket per shard (N shards admit N × the rate).
//! `scope = "global"` leases tokens from a bucket in Redis instead (`gateway::global`), into a
//! third table of the same `Lease`s; its fallback when Redis is unreachable is the node scope.
//! Every table is a `GenTable` bounded by `keys_max`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::bucket::{Bucket, GenTable, Grant, Refill};

/// A lease request that gets no answer within this (the owner's queue full, or the owner
/// stalled) is let through (fail open): one shard must not stall every other shard's traffic.
const LEASE_TIMEOUT: Duration = Duration::from_millis(200);
/// Most tokens one lease carries.
const LEASE_TOKENS_MAX: u64 = 64;

#[derive(Debug, Clone)]
pub struct RateLimitPolicy {
    pub name: String,
    pub key: LimitKey,
    /// Tokens per `period`.
    pub rate: u64,
    pub period: Duration,
    pub burst: u64,
    pub scope: Scope,
    /// Keys per shard (buckets owned plus leases held), each table.
    pub keys_max: usize,
    /// `scope = "global"`: where the bucket lives and what to do without it.
    pub global: Option<GlobalSettings>,
}

/// A global policy's Redis settings.
#[derive(Debug, Clone)]
pub struct GlobalSettings {
    pub target: crate::redis::RedisTarget,
    /// Longest wait of a request for Redis (when its shard's lease is empty), and of each
    /// Redis command; past it the request gets the fallback.
    pub timeout: Duration,
    pub fallback: Fallback,
    /// Tokens a shard leases from Redis per round trip.
    pub lease_tokens: u32,
}

/// What a global policy does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The node-wide limit (`scope = "node"`), with the policy's rate and burst, per node.
    Local,
    /// Admit every request (fail open).
    Open,
    /// Refuse every request with 503 (fail closed).
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    ClientIp,
    Consumer,
    /// Lower-case field name; requests without it share one bucket.
    Header(String),
    Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Node,
    Shard,
    /// Redis; the node scope is its local fallback.
    Global,
}

/// A lease request from one shard to a key's owner.
#[derive(Debug)]
pub struct LeaseRequest {
    /// Config generation the policy index belongs to; the owner does not answer (the
    /// requester lets the request through) when it runs another one, during a reload.
    pub gen: u64,
    pub policy: usize,
    pub hash: u64,
    pub want: u32,
    pub reply: flume::Sender<Grant>,
}

/// The limiter's verdict with what the RateLimit-* fields need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full (RateLimit-Reset).
    pub reset_s: u64,
    /// Seconds until a token is there (Retry-After; at least 1).
    pub retry_after_s: u64,
}

/// Tokens a shard holds for a key it does not own (from the owner shard, or from Redis).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lease {
    tokens: u32,
    /// Refused by the owner until then (ns since the epoch).
    denied_until_ns: u64,
    /// The owner's remaining and full-in at the last grant, for the response fields.
    owner_remaining: u32,
    full_at_ns: u64,
}

/// One shard's buckets and leases, per policy. A reload keeps the tables of policies that stay
/// (same name, key and `keys_max`; a new rate applies to the kept buckets).
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    policies: RefCell<Vec<Rc<PolicyTables>>>,
}

#[derive(Debug)]
struct PolicyTables {
    refill: Cell<Refill>,
    owned: RefCell<GenTable<Bucket>>,
    leases: RefCell<GenTable<Lease>>,
    /// Tokens leased from Redis (`scope = "global"`).
    global: RefCell<GenTable<Lease>>,
}

/// Which lease table: tokens from the owner shard, or from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Owner,
    Redis,
}

/// Where a check has to go.
pub enum Placement {
    /// This shard decides (it owns the key, or the scope is per shard).
    Local,
    /// Ask shard `owner` for `want` tokens, unless the lease answers first.
    Remote { owner: usize, want: u32 },
}

// === impl RateLimitPolicy ===

impl RateLimitPolicy {
    pub fn refill(&self) -> Refill {
        Refill {
            per_ns: self.rate as f64 / self.period.as_nanos().max(1) as f64,
            burst: self.burst as f64,
        }
    }

    /// Which shard owns `hash`, and how many tokens a lease carries, for `shards` shards.
    pub fn placement(&self, hash: u64, shards: usize, me: usize) -> Placement {
        if self.scope == Scope::Shard || shards <= 1 {
            return Placement::Local;
        }
        let owner = ((hash >> 32) % shards as u64) as usize;
        if owner == me {
            return Placement::Local;
        }
        let chunk = (self.burst / (shards as u64 * 16)).clamp(1, LEASE_TOKENS_MAX);
        Placement::Remote {
            owner,
            want: chunk as u32,
        }
    }
}

// === impl Limiter ===

impl Limiter {
    pub fn new(policies: &[RateLimitPolicy]) -> Limiter {
        Limiter {
            epoch: Instant::now(),
            policies: RefCell::new(policies.iter().map(PolicyTables::new).collect()),
        }
    }

    /// A reload: tables for `policies` (the new config's), keeping those of `old` policies
    /// that stay (same name, key and `keys_max`).
    pub fn reload(&self, old: &[RateLimitPolicy], policies: &[RateLimitPolicy]) {
        let mut tables = self.policies.borrow_mut();
        let next = policies
            .iter()
            .map(|p| {
                let same = |o: &RateLimitPolicy| {
                    o.name == p.name && o.key == p.key && o.keys_max == p.keys_max
                };
                match old.iter().position(same).and_then(|i| tables.get(i)) {
                    Some(t) => {
                        t.refill.set(p.refill());
                        t.clone()
                    }
                    None => PolicyTables::new(p),
                }
            })
            .collect();
        *tables = next;
    }

    fn tables(&self, policy: usize) -> Option<Rc<PolicyTables>> {
        self.policies.borrow().get(policy).cloned()
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Take `want` tokens from the bucket this shard owns for `hash`.
    pub fn take_owned(&self, policy: usize, hash: u64, want: u32) -> Grant {
        let Some(t) = self.tables(policy) else {
            return Grant::default();
        };
        let now = self.now_ns();
        let refill = t.refill.get();
        let mut owned = t.owned.borrow_mut();
        owned
            .get_or_insert_with(hash, || Bucket::full(&refill, now))
            .take(want, &refill, now)
    }

    /// Spend a held lease token, or report a cached refusal. `None`: ask the owner (or Redis).
    pub fn from_lease(
        &self,
        from: From,
        p: &RateLimitPolicy,
        policy: usize,
        hash: u64,
    ) -> Option<Decision> {
        let t = self.tables(policy)?;
        let now = self.now_ns();
        let mut leases = t.table(from).borrow_mut();
        let l = leases.get_or_insert_with(hash, Lease::default);
        if l.tokens > 0 {
            l.tokens -= 1;
            let remaining = u64::from(l.tokens) + u64::from(l.owner_remaining);
            return Some(decision(
                p,
                true,
                remaining,
                l.full_at_ns.saturating_sub(now),
                0,
            ));
        }
        if l.denied_until_ns > now {
            let wait = l.denied_until_ns - now;
            return Some(decision(
                p,
                false,
                0,
                l.full_at_ns.saturating_sub(now),
                wait,
            ));
        }
        None
    }

    /// Record the owner's (or Redis's) answer to a lease request and spend one token of it.
    pub fn on_grant(
        &self,
        from: From,
        p: &RateLimitPolicy,
        policy: usize,
        hash: u64,
        g: Grant,
    ) -> Decision {
        let Some(t) = self.tables(policy) else {
            return decision(p, true, 0, 0, 0);
        };
        let now = self.now_ns();
        let mut leases = t.table(from).borrow_mut();
        let l = leases.get_or_insert_with(hash, Lease::default);
        l.owner_remaining = g.remaining;
        l.full_at_ns = now + g.full_ns;
        if g.granted == 0 {
            l.denied_until_ns = now + g.wait_ns;
            return decision(p, false, 0, g.full_ns, g.wait_ns);
        }
        l.tokens += g.granted - 1;
        let remaining = u64::from(l.tokens) + u64::from(g.remaining);
        decision(p, true, remaining, g.full_ns, 0)
    }
}

impl PolicyTables {
    fn new(p: &RateLimitPolicy) -> Rc<PolicyTables> {
        Rc::new(PolicyTables {
            refill: Cell::new(p.refill()),
            owned: RefCell::new(GenTable::new(p.keys_max)),
            leases: RefCell::new(GenTable::new(p.keys_max)),
            global: RefCell::new(GenTable::new(p.keys_max)),
        })
    }

    fn table(&self, from: From) -> &RefCell<GenTable<Lease>> {
        match from {
            From::Owner => &self.leases,
            From::Redis => &self.global,
        }
    }
}

pub fn decision(
    p: &RateLimitPolicy,
    allowed: bool,
    remaining: u64,
    full_ns: u64,
    wait_ns: u64,
) -> Decision {
    const SEC: u64 = 1_000_000_000;
    Decision {
        allowed,
        limit: p.burst,
        remaining,
        reset_s: full_ns.div_ceil(SEC),
        retry_after_s: wait_ns.div_ceil(SEC).max(1),
    }
}

/// Ask `owner` for tokens and wait for the answer (bounded). `None`: no answer in time.
/// The owner's control queue holds at most one lease request per request in flight on the
/// other shards, so it is bounded by their connection limits.
pub async fn lease(
    peers: &[flume::Sender<LeaseRequest>],
    gen: u64,
    owner: usize,
    policy: usize,
    hash: u64,
    want: u32,
) -> Option<Grant> {
    let (tx, rx) = flume::bounded(1);
    let req = LeaseRequest {
        gen,
        policy,
        hash,
        want,
        reply: tx,
    };
    let asked = async {
        peers.get(owner)?.send_async(req).await.ok()?;
        rx.recv_async().await.ok()
    };
    // Boxed: a monoio timeout's timer entry is 128-byte aligned and would pad the future of
    // every request; this path already allocates a channel.
    match Box::pin(monoio::time::timeout(LEASE_TIMEOUT, asked)).await {
        Ok(Some(g)) => Some(g),
        _ => {
            debug!(
                owner,
                policy, "rate-limit lease unanswered; letting the request through"
            );
            None
        }
    }
}

impl Decision {
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` fields (and `Retry-After` when refused).
    pub fn write_fields(&self, out: &mut Vec<u8>) {
        let mut num = |name: &[u8], v: u64| {
            out.extend_from_slice(name);
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        num(b"RateLimit-Limit: ", self.limit);
        num(b"RateLimit-Remaining: ", self.remaining);
        num(b"RateLimit-Reset: ", self.reset_s);
        if !self.allowed {
            num(b"Retry-After: ", self.retry_after_s);
        }
    }
}
