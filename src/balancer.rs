//! Server choice within an upstream cluster. Each shard holds its own balancer state (plain
//! `Cell`s, no atomics), so fairness holds per shard: with N shards a cluster sees N interleaved
//! rotations, which even out over many requests.

use std::cell::Cell;

use crate::config::{Balance, Upstream};

/// One cluster's balancer on one shard. New algorithms are new variants (dispatch by `match`).
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(RoundRobin),
}

impl Balancer {
    pub fn new(upstream: &Upstream, shard_id: usize) -> Balancer {
        match upstream.balance {
            Balance::RoundRobin => Balancer::RoundRobin(RoundRobin::new(shard_id)),
        }
    }

    /// Index into `upstream.servers` of the server for the next request, or `None` when the
    /// cluster has no server to offer.
    pub fn pick(&self, upstream: &Upstream) -> Option<usize> {
        match self {
            Balancer::RoundRobin(rr) => rr.pick(upstream.servers.len()),
        }
    }
}

#[derive(Debug)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// Shards start at different servers so that they do not all hit server 0 first.
    pub fn new(shard_id: usize) -> RoundRobin {
        RoundRobin {
            next: Cell::new(shard_id),
        }
    }

    fn pick(&self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let i = self.next.get() % n;
        self.next.set(i + 1);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_from_the_shard_offset() {
        let rr = RoundRobin::new(1);
        let picks: Vec<_> = (0..6).map(|_| rr.pick(3).unwrap()).collect();
        assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
        assert_eq!(rr.pick(0), None);
    }
}
