//! Token-bucket arithmetic and the bounded per-shard key table the rate limiter keeps buckets
//! and leases in. Pure code: time comes in as nanoseconds since the shard's epoch.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Refill parameters of one policy.
#[derive(Debug, Clone, Copy)]
pub struct Refill {
    /// Tokens per nanosecond.
    pub per_ns: f64,
    pub burst: f64,
}

/// A bucket that was never seen is full: that is what an evicted bucket becomes again.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last_ns: u64,
}

/// The outcome of taking tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grant {
    pub granted: u32,
    /// Whole tokens left after the grant.
    pub remaining: u32,
    /// Until the next whole token (0 when one is there).
    pub wait_ns: u64,
    /// Until the bucket is full again.
    pub full_ns: u64,
}

impl Bucket {
    pub fn full(r: &Refill, now_ns: u64) -> Bucket {
        Bucket {
            tokens: r.burst,
            last_ns: now_ns,
        }
    }

    /// Take up to `want` whole tokens.
    pub fn take(&mut self, want: u32, r: &Refill, now_ns: u64) -> Grant {
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64;
        self.tokens = (self.tokens + elapsed * r.per_ns).min(r.burst);
        self.last_ns = now_ns.max(self.last_ns);
        let granted = (self.tokens.floor() as u32).min(want);
        self.tokens -= granted as f64;
        debug_assert!(self.tokens >= 0.0 && self.tokens <= r.burst);
        let missing_one = (1.0 - self.tokens).max(0.0);
        Grant {
            granted,
            remaining: self.tokens.floor() as u32,
            wait_ns: (missing_one / r.per_ns).ceil() as u64,
            full_ns: ((r.burst - self.tokens) / r.per_ns).ceil() as u64,
        }
    }
}

/// Hashes that are already keyed hashes pass through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// At most `max` entries in two generations: when the current one holds `max / 2`, the older
/// one (keys untouched for a whole generation) is dropped and the current one becomes old.
/// A key found in the old generation moves to the current one. Memory stays bounded under a
/// flood of distinct keys; an active key survives as long as it is touched once a generation.
#[derive(Debug)]
pub struct GenTable<V> {
    cur: IdMap<V>,
    old: IdMap<V>,
    half: usize,
}

impl<V> GenTable<V> {
    pub fn new(max: usize) -> GenTable<V> {
        GenTable {
            cur: IdMap::default(),
            old: IdMap::default(),
            half: (max / 2).max(1),
        }
    }

    pub fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        if !self.cur.contains_key(&key) {
            let v = self.old.remove(&key).unwrap_or_else(make);
            if self.cur.len() >= self.half {
                std::mem::swap(&mut self.cur, &mut self.old);
                self.cur.clear();
            }
            self.cur.insert(key, v);
        }
        debug_assert!(self.cur.len() <= self.half && self.old.len() <= self.half);
        self.cur.get_mut(&key).expect("inserted above")
    }

    pub fn len(&self) -> usize {
        self.cur.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bucket_refills_and_reports() {
        let r = Refill {
            per_ns: 10.0 / SEC as f64,
            burst: 10.0,
        };
        let mut b = Bucket::full(&r, 0);
        let g = b.take(4, &r, 0);
        assert_eq!((g.granted, g.remaining, g.wait_ns), (4, 6, 0));
        assert_eq!(g.full_ns, 4 * SEC / 10);
        assert_eq!(b.take(100, &r, 0).granted, 6);
        let g = b.take(1, &r, 0);
        assert_eq!((g.granted, g.wait_ns), (0, SEC / 10));
        assert_eq!(b.take(1, &r, SEC / 10).granted, 1);
        // Never above the burst, however long it sat.
        assert_eq!(b.take(100, &r, 1000 * SEC).granted, 10);
    }

    #[test]
    fn table_stays_bounded_under_a_million_keys() {
        let mut t = GenTable::new(1000);
        for k in 0..1_000_000u64 {
            *t.get_or_insert_with(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), || 0u32) += 1;
            assert!(t.len() <= 1000);
        }
        // A key touched every generation survives.
        let mut t = GenTable::new(10);
        for k in 0..100u64 {
            *t.get_or_insert_with(7, || 0u32) += 1;
            t.get_or_insert_with(1000 + k, || 0);
        }
        assert_eq!(*t.get_or_insert_with(7, || 0), 100);
    }
}
