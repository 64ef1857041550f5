//! One shard's stored responses: a slab of nodes on an intrusive LRU list (newest first), and
//! a map from key hash to a chain of the nodes with that hash (the variants of one key, and
//! keys whose hashes collide). Bounded in bytes: an insert evicts from the old end until the
//! new entry fits. Single-threaded and lock-free by construction (the shard owns it).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::time::Instant;

use slab::Slab;

use crate::compress::Coding;

/// Most entries under one key hash (variants by `Vary` and coding, plus collisions); an insert
/// past it drops the oldest of the chain.
pub const CHAIN_MAX: usize = 16;
/// Bookkeeping counted per entry besides its key, head and body bytes.
pub const ENTRY_OVERHEAD_BYTES: usize = 256;

/// A `Vary` name (lower-case) and the storing request's value for it.
pub type Varied = (Box<[u8]>, Box<[u8]>);

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// `route \0 host \0 target`: compared in full on every lookup (the hash only finds it).
    pub key: Box<[u8]>,
    /// (lower-case name, the storing request's value) for each `Vary` name of the response.
    pub vary: Box<[Varied]>,
    /// The coding coregate compressed the body with for the request that stored it (then only
    /// requests that negotiate the same coding match); `None`: coregate did not compress it,
    /// so it fits any request.
    pub coded_for: Option<Coding>,
    pub status: u16,
    /// Status line and field lines as sent to clients, without framing, `Connection`, `Age`
    /// and `X-Cache` (written per answer).
    pub head: Box<[u8]>,
    /// The body exactly as sent (compressed when `coded_for` says so). Shared with answers
    /// being written, so an eviction never waits for a slow client.
    pub body: Rc<Box<[u8]>>,
    /// When it was stored, and the age it arrived with (for `Age`).
    pub stored: Instant,
    pub age_s: u64,
    /// Fresh until then; then usable on an origin failure until `stale_until`.
    pub fresh_until: Instant,
    pub stale_until: Instant,
}

impl Entry {
    /// Bytes charged to the shard's budget.
    pub fn bytes(&self) -> usize {
        let vary: usize = self.vary.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        self.key.len() + self.head.len() + self.body.len() + vary + ENTRY_OVERHEAD_BYTES
    }

    /// Same key, same varied values and same coding: a new copy replaces this one.
    fn same_variant(&self, other: &Entry) -> bool {
        self.key == other.key && self.vary == other.vary && self.coded_for == other.coded_for
    }
}

#[derive(Debug)]
struct Node {
    entry: Rc<Entry>,
    hash: u64,
    newer: Option<usize>,
    older: Option<usize>,
    /// Next node with the same hash.
    chain: Option<usize>,
}

/// The key hashes are already keyed SipHash outputs: use them as they are.
#[derive(Debug, Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
pub struct Store {
    slab: Slab<Node>,
    chains: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    newest: Option<usize>,
    oldest: Option<usize>,
    bytes: usize,
    bytes_max: usize,
    /// Entries dropped to make room (not replacements, purges or expiries).
    pub evictions: u64,
}

impl Store {
    pub fn new(bytes_max: usize) -> Store {
        Store {
            slab: Slab::new(),
            chains: HashMap::default(),
            newest: None,
            oldest: None,
            bytes: 0,
            bytes_max,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Bytes held (entries as `Entry::bytes` counts them).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry under `hash` with key `key` for which `fits` holds, made the newest.
    pub fn get(
        &mut self,
        hash: u64,
        key: &[u8],
        mut fits: impl FnMut(&Entry) -> bool,
    ) -> Option<Rc<Entry>> {
        let mut at = self.chains.get(&hash).copied();
        while let Some(i) = at {
            let node = &self.slab[i];
            if &*node.entry.key == key && fits(&node.entry) {
                let entry = node.entry.clone();
                self.unlink(i);
                self.push_newest(i);
                return Some(entry);
            }
            at = node.chain;
        }
        None
    }

    /// Drop every entry under `hash` with key `key` for which `dead` holds (expired ones).
    pub fn remove_where(&mut self, hash: u64, key: &[u8], dead: impl Fn(&Entry) -> bool) {
        let mut at = self.chains.get(&hash).copied();
        while let Some(i) = at {
            at = self.slab[i].chain;
            let e = &self.slab[i].entry;
            if &*e.key == key && dead(e) {
                self.remove(i);
            }
        }
    }

    /// Store `entry` under `hash`, replacing its variant if present and evicting the least
    /// recently used entries until it fits. False if it can never fit.
    pub fn insert(&mut self, hash: u64, entry: Entry) -> bool {
        let size = entry.bytes();
        if size > self.bytes_max {
            return false;
        }
        let mut at = self.chains.get(&hash).copied();
        let mut chain_len = 0;
        let mut last = None;
        while let Some(i) = at {
            at = self.slab[i].chain;
            if self.slab[i].entry.same_variant(&entry) {
                self.remove(i);
            } else {
                chain_len += 1;
                last = Some(i);
            }
        }
        if chain_len >= CHAIN_MAX {
            if let Some(i) = last {
                self.remove(i);
            }
        }
        while self.bytes + size > self.bytes_max {
            let Some(old) = self.oldest else { break };
            self.remove(old);
            self.evictions += 1;
        }
        let chain = self.chains.get(&hash).copied();
        let i = self.slab.insert(Node {
            entry: Rc::new(entry),
            hash,
            newer: None,
            older: None,
            chain,
        });
        self.chains.insert(hash, i);
        self.push_newest(i);
        self.bytes += size;
        debug_assert!(self.bytes <= self.bytes_max);
        true
    }

    /// A new byte budget (a reload): a smaller one evicts the least recently used entries
    /// down to it. Returns how many were evicted.
    pub fn set_budget(&mut self, bytes_max: usize) -> u64 {
        self.bytes_max = bytes_max;
        let mut n = 0;
        while self.bytes > self.bytes_max {
            let Some(old) = self.oldest else { break };
            self.remove(old);
            self.evictions += 1;
            n += 1;
        }
        n
    }

    /// Drop every entry for which `dead` holds; returns how many.
    pub fn purge(&mut self, dead: impl Fn(&Entry) -> bool) -> u64 {
        let doomed: Vec<usize> = self
            .slab
            .iter()
            .filter(|(_, n)| dead(&n.entry))
            .map(|(i, _)| i)
            .collect();
        for &i in &doomed {
            self.remove(i);
        }
        doomed.len() as u64
    }

    fn remove(&mut self, i: usize) {
        self.unlink(i);
        let node = self.slab.remove(i);
        // Unhook from its hash chain.
        match self.chains.get(&node.hash).copied() {
            Some(first) if first == i => match node.chain {
                Some(next) => {
                    self.chains.insert(node.hash, next);
                }
                None => {
                    self.chains.remove(&node.hash);
                }
            },
            Some(first) => {
                let mut at = first;
                while let Some(next) = self.slab[at].chain {
                    if next == i {
                        self.slab[at].chain = node.chain;
                        break;
                    }
                    at = next;
                }
            }
            None => debug_assert!(false, "node outside its chain"),
        }
        let size = node.entry.bytes();
        debug_assert!(self.bytes >= size);
        self.bytes = self.bytes.saturating_sub(size);
    }

    fn unlink(&mut self, i: usize) {
        let (newer, older) = (self.slab[i].newer, self.slab[i].older);
        match newer {
            Some(n) => self.slab[n].older = older,
            None => self.newest = older,
        }
        match older {
            Some(o) => self.slab[o].newer = newer,
            None => self.oldest = newer,
        }
        self.slab[i].newer = None;
        self.slab[i].older = None;
    }

    fn push_newest(&mut self, i: usize) {
        self.slab[i].older = self.newest;
        self.slab[i].newer = None;
        if let Some(n) = self.newest {
            self.slab[n].newer = Some(i);
        }
        self.newest = Some(i);
        if self.oldest.is_none() {
            self.oldest = Some(i);
        }
    }

    /// Every invariant, walked in full (tests and debug checks).
    pub fn check(&self) {
        let mut count = 0;
        let mut bytes = 0;
        let mut at = self.newest;
        let mut prev = None;
        while let Some(i) = at {
            let n = &self.slab[i];
            assert_eq!(n.newer, prev, "list links");
            bytes += n.entry.bytes();
            count += 1;
            prev = Some(i);
            at = n.older;
        }
        assert_eq!(self.oldest, prev);
        assert_eq!(count, self.slab.len());
        assert_eq!(bytes, self.bytes);
        assert!(self.bytes <= self.bytes_max);
        let chained: usize = self
            .chains
            .values()
            .map(|&first| {
                let mut n = 0;
                let mut at = Some(first);
                while let Some(i) = at {
                    n += 1;
                    at = self.slab[i].chain;
                }
                n
            })
            .sum();
        assert_eq!(chained, count, "every node in exactly one chain");
    }
}

#[cfg(test)]
mod tests;
