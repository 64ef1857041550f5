//! Server choice within an upstream cluster, one `Balancer` per cluster per shard. It owns
//! this shard's view of every server (health, ejection, slow start, in-flight count, latency
//! average; `server.rs`), the algorithm's state (one file per algorithm), the cluster's retry
//! budget on this shard (`budget.rs`), and reads request facts for stickiness and hashing
//! (`key.rs`). Plain `Cell`s, no atomics: fairness holds per shard (see the README), and the
//! health view changes only by `shard::Control` messages from the control thread.

pub mod budget;
pub mod hash;
pub mod key;
mod least_conn;
mod p2c;
mod round_robin;
pub mod server;
mod weighted;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::defaults::RETRIES_MAX;
use crate::config::{Balance, Upstream};
pub use budget::RetryBudget;
pub use key::{Affinity, RequestFacts};
use least_conn::LeastConn;
use p2c::P2c;
use round_robin::RoundRobin;
pub use server::ServerState;
use weighted::Weighted;

/// One cluster's balancer on one shard. Algorithms are variants, dispatched by `match`.
#[derive(Debug)]
pub struct Balancer {
    algo: Algo,
    /// Shared (`Rc`) with the balancer of the next membership of a discovered cluster, so a
    /// server that stays keeps its health, in-flight count and latency average.
    servers: Box<[Rc<ServerState>]>,
    rng: Rng,
    pub budget: RetryBudget,
}

#[derive(Debug)]
enum Algo {
    RoundRobin(RoundRobin),
    Weighted(Weighted),
    LeastConn(LeastConn),
    P2c(P2c),
    /// The ring lives in the read-only config; round robin serves requests without a key.
    Hash(RoundRobin),
}

/// What a pick outcome means for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Fine,
    /// The server just reached the consecutive-failure threshold on this shard: it has been
    /// ejected here for the base time; tell the control thread so that every shard ejects it.
    Eject,
}

impl Balancer {
    pub fn new(upstream: &Upstream, shard_id: usize) -> Balancer {
        Balancer::after(upstream, shard_id, None)
    }

    /// The balancer of a new membership of a cluster (discovery): servers also in `previous`
    /// (same address) keep their state; new ones start fresh.
    pub fn after(
        upstream: &Upstream,
        shard_id: usize,
        previous: Option<(&Upstream, &Balancer)>,
    ) -> Balancer {
        let now = Instant::now();
        let weights: Vec<u32> = upstream.servers.iter().map(|s| s.weight).collect();
        let algo = match upstream.balance {
            Balance::RoundRobin => Algo::RoundRobin(RoundRobin::new(shard_id)),
            Balance::Weighted => Algo::Weighted(Weighted::new(&weights, shard_id)),
            Balance::LeastConn => Algo::LeastConn(LeastConn::new(shard_id)),
            Balance::P2cEwma => Algo::P2c(P2c),
            Balance::Hash => Algo::Hash(RoundRobin::new(shard_id)),
        };
        Balancer {
            algo,
            servers: upstream
                .servers
                .iter()
                .map(|s| {
                    previous
                        .and_then(|(u, b)| {
                            let i = u.servers.iter().position(|o| o.address == s.address)?;
                            b.servers.get(i).cloned()
                        })
                        .unwrap_or_else(|| Rc::new(ServerState::new(now)))
                })
                .collect(),
            rng: Rng::new(shard_id as u64),
            budget: RetryBudget::new(now),
        }
    }

    /// The server for the next attempt of a request: not in `tried`, usable (active check up,
    /// not ejected) unless none is and the cluster fails open. `None`: nothing to offer.
    pub fn pick(
        &self,
        upstream: &Upstream,
        affinity: &Affinity,
        tried: &Tried,
        now: Instant,
    ) -> Option<usize> {
        let mut v = View {
            upstream,
            servers: &self.servers,
            tried,
            now,
            ignore_health: false,
        };
        if v.is_empty() {
            return None; // a discovered cluster with no servers yet
        }
        if let Some(s) = affinity.sticky.filter(|&s| s < v.len() && v.ok(s)) {
            return Some(s);
        }
        if !(0..v.len()).any(|i| v.ok(i)) {
            if !upstream.fail_open {
                return None;
            }
            v.ignore_health = true;
        }
        match &self.algo {
            Algo::RoundRobin(rr) => rr.pick(&v, &self.rng),
            Algo::Weighted(w) => w.pick(&v),
            Algo::LeastConn(lc) => lc.pick(&v),
            Algo::P2c(p) => p.pick(&v, &self.rng),
            Algo::Hash(rr) => match (affinity.hash, &upstream.ring) {
                (Some(h), Some(ring)) => ring.find(h, |i| v.ok(i)),
                _ => rr.pick(&v, &self.rng),
            },
        }
    }

    pub fn server(&self, i: usize) -> Option<&ServerState> {
        self.servers.get(i).map(|s| &**s)
    }

    /// Count a request to server `i` in flight until the guard drops.
    pub fn begin(&self, i: usize) -> Load<'_> {
        let s: &ServerState = &self.servers[i];
        s.begin();
        Load(s)
    }

    /// An answer arrived (its head, after `latency`): feed the latency average, and count a
    /// 5xx as a failure for outlier detection.
    pub fn answered(
        &self,
        upstream: &Upstream,
        i: usize,
        status: u16,
        latency: Duration,
        now: Instant,
    ) -> Verdict {
        let Some(s) = self.servers.get(i) else {
            return Verdict::Fine;
        };
        s.observe_latency(latency, now, upstream.ewma_decay);
        if status >= 500 {
            self.failed(upstream, i, now)
        } else {
            s.succeeded();
            Verdict::Fine
        }
    }

    /// A connect failure, reset, timeout or invalid answer from server `i`.
    pub fn failed(&self, upstream: &Upstream, i: usize, now: Instant) -> Verdict {
        let (Some(s), Some(o)) = (self.servers.get(i), upstream.outlier) else {
            return Verdict::Fine;
        };
        if !s.failed(o.consecutive_failures) {
            return Verdict::Fine;
        }
        s.eject(now + o.base_ejection);
        Verdict::Eject
    }
}

/// A request in flight to one server (for `least_conn` and `p2c_ewma`), ended on drop.
pub struct Load<'a>(&'a ServerState);

impl Drop for Load<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The servers a request has tried already: at most `1 + RETRIES_MAX`, kept inline.
#[derive(Debug, Default)]
pub struct Tried {
    ids: [u16; RETRIES_MAX as usize + 1],
    len: usize,
}

impl Tried {
    pub fn push(&mut self, i: usize) {
        debug_assert!(
            self.len < self.ids.len(),
            "more attempts than retries allow"
        );
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = i as u16;
            self.len += 1;
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.ids[..self.len].iter().any(|&t| usize::from(t) == i)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The cluster as one pick sees it.
pub struct View<'a> {
    upstream: &'a Upstream,
    servers: &'a [Rc<ServerState>],
    tried: &'a Tried,
    now: Instant,
    /// Failing open: every server not yet tried may be picked.
    ignore_health: bool,
}

impl View<'_> {
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Server `i` may be picked.
    #[inline]
    pub fn ok(&self, i: usize) -> bool {
        !self.tried.contains(i) && (self.ignore_health || self.servers[i].usable(self.now))
    }

    /// Slow-start share of its weight, in (0, 1].
    pub fn ramp(&self, i: usize) -> f64 {
        self.servers[i].ramp(self.now, self.upstream.slow_start)
    }

    /// Weight × 1000 × slow-start ramp, at least 1.
    pub fn weight_milli(&self, i: usize) -> i64 {
        let w = f64::from(self.upstream.servers[i].weight) * 1000.0 * self.ramp(i);
        (w as i64).max(1)
    }

    pub fn in_flight(&self, i: usize) -> u32 {
        self.servers[i].in_flight()
    }

    /// `p2c_ewma` cost: latency average × (in flight + 1) ÷ ramp.
    pub fn cost(&self, i: usize) -> f64 {
        let s = &self.servers[i];
        s.ewma_ns(self.now, self.upstream.ewma_decay) * f64::from(s.in_flight() + 1) / self.ramp(i)
    }
}

/// xorshift64*: a per-shard source of cheap randomness for p2c and slow start. Not for keys.
#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Cell::new(hash::hash64(&[&seed.to_le_bytes()]) | 1))
    }

    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n (n > 0; 0 when n is 0).
    pub fn below(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
