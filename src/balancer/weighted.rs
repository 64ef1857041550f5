//! `weighted`: smooth weighted round robin (nginx's algorithm). Each pick adds every usable
//! server's weight to its running score, takes the highest score and subtracts the total from
//! it, so weights 5:1:1 give a a b a c a a rather than a burst of five a's. Weights are scaled
//! by 1000 so that a slow-start ramp can take a fraction of one.

use std::cell::Cell;

use super::View;

#[derive(Debug)]
pub struct Weighted {
    /// Running score per server.
    current: Box<[Cell<i64>]>,
}

impl Weighted {
    /// `weights` of the cluster's servers. The shard starts `shard_id` picks into the cycle
    /// so that shards do not send their first requests to the same server.
    pub fn new(weights: &[u32], shard_id: usize) -> Weighted {
        let w = Weighted {
            current: weights.iter().map(|_| Cell::new(0)).collect(),
        };
        let total: u64 = weights.iter().map(|&x| u64::from(x)).sum();
        let skip = if total == 0 {
            0
        } else {
            (shard_id as u64 % total) as usize
        };
        for _ in 0..skip {
            w.step(|i| Some(i64::from(weights[i]) * 1000));
        }
        w
    }

    pub fn pick(&self, v: &View<'_>) -> Option<usize> {
        self.step(|i| v.ok(i).then(|| v.weight_milli(i)))
    }

    /// One round: `weight(i)` is `None` for a server that may not be picked.
    fn step(&self, weight: impl Fn(usize) -> Option<i64>) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, cur) in self.current.iter().enumerate() {
            let Some(w) = weight(i) else { continue };
            cur.set(cur.get() + w);
            total += w;
            if best.is_none_or(|b| cur.get() > self.current[b].get()) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b].set(self.current[b].get() - total);
        Some(b)
    }
}
