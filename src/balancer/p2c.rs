//! `p2c_ewma`: power of two choices over a peak-EWMA of latency (Finagle's and Linkerd's
//! balancer). Two distinct usable servers are drawn at random and the cheaper one wins, where
//! cost = latency average × (requests in flight + 1) ÷ slow-start ramp. The average is this
//! shard's own: the time from pick to the response head, jumping up at once on a slow answer
//! and decaying with `ewma_decay_ms`, so a slow server is avoided within a few requests and
//! tried again once its average has faded.

use super::{Rng, View};

#[derive(Debug, Default)]
pub struct P2c;

impl P2c {
    pub fn pick(&self, v: &View<'_>, rng: &Rng) -> Option<usize> {
        let n = v.len();
        let a = first_ok_from(v, rng.below(n), |_| true)?;
        let Some(b) = first_ok_from(v, rng.below(n), |i| i != a) else {
            return Some(a);
        };
        if v.cost(b) < v.cost(a) {
            Some(b)
        } else {
            Some(a)
        }
    }
}

/// The first server at or after `start` (cyclically) that may be picked and passes `also`.
fn first_ok_from(v: &View<'_>, start: usize, also: impl Fn(usize) -> bool) -> Option<usize> {
    let n = v.len();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| v.ok(i) && also(i))
}
