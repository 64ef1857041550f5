//! `round_robin`: each usable server in turn. Each shard keeps its own cursor, starting at its
//! shard id so that the shards do not all begin with server 0. A server in its slow-start ramp
//! is passed over with probability 1 − ramp, so it gets ramp × its usual share.

use std::cell::Cell;

use super::{Rng, View};

#[derive(Debug)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    pub fn new(shard_id: usize) -> RoundRobin {
        RoundRobin {
            next: Cell::new(shard_id),
        }
    }

    pub fn pick(&self, v: &View<'_>, rng: &Rng) -> Option<usize> {
        let n = v.len();
        if n == 0 {
            return None;
        }
        let start = self.next.get() % n;
        let mut passed_over = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !v.ok(i) {
                continue;
            }
            let ramp = v.ramp(i);
            if ramp >= 1.0 || rng.unit() < ramp {
                self.next.set(i + 1);
                return Some(i);
            }
            passed_over.get_or_insert(i);
        }
        // Every candidate was ramping and lost its draw: take the first one anyway.
        if let Some(i) = passed_over {
            self.next.set(i + 1);
        }
        passed_over
    }
}
