//! `least_conn`: the usable server with the fewest requests in flight from this shard,
//! relative to its weight (and slow-start ramp). Ties go round robin, from a per-shard cursor,
//! so that an idle cluster still spreads sequential requests.

use std::cell::Cell;

use super::View;

#[derive(Debug)]
pub struct LeastConn {
    next: Cell<usize>,
}

impl LeastConn {
    pub fn new(shard_id: usize) -> LeastConn {
        LeastConn {
            next: Cell::new(shard_id),
        }
    }

    pub fn pick(&self, v: &View<'_>) -> Option<usize> {
        let n = v.len();
        if n == 0 {
            return None;
        }
        let start = self.next.get() % n;
        // (load, weight): compare load_a / weight_a < load_b / weight_b without division.
        let mut best: Option<(usize, u128, u128)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !v.ok(i) {
                continue;
            }
            let load = u128::from(v.in_flight(i)) + 1;
            let weight = v.weight_milli(i).max(1) as u128;
            if best.is_none_or(|(_, bl, bw)| load * bw < bl * weight) {
                best = Some((i, load, weight));
            }
        }
        let (i, _, _) = best?;
        self.next.set(i + 1);
        Some(i)
    }
}
