//! Unit tests of the store: the byte bound and LRU order, hash chains shared by variants and
//! colliding keys, and every invariant after a long run of random operations.

use super::*;

fn entry(key: &str, body: usize) -> Entry {
    let now = Instant::now();
    Entry {
        key: key.as_bytes().into(),
        vary: Box::new([]),
        coded_for: None,
        status: 200,
        head: b"HTTP/1.1 200 OK\r\n".to_vec().into(),
        body: Rc::new(vec![b'x'; body].into_boxed_slice()),
        stored: now,
        age_s: 0,
        fresh_until: now,
        stale_until: now,
    }
}

#[test]
fn lru_bound_holds_and_evicts_oldest() {
    let one = entry("k0", 1000).bytes();
    let mut s = Store::new(one * 3);
    for i in 0..3 {
        assert!(s.insert(i, entry(&format!("k{i}"), 1000)));
    }
    // Touch k0 so k1 is the least recently used.
    assert!(s.get(0, b"k0", |_| true).is_some());
    assert!(s.insert(3, entry("k3", 1000)));
    s.check();
    assert_eq!(s.len(), 3);
    assert!(s.get(1, b"k1", |_| true).is_none());
    assert!(s.get(0, b"k0", |_| true).is_some());
    assert_eq!(s.evictions, 1);
    assert!(!s.insert(9, entry("big", one * 3)));
}

#[test]
fn collisions_and_variants_share_a_chain() {
    let mut s = Store::new(1 << 20);
    assert!(s.insert(7, entry("a", 10)));
    assert!(s.insert(7, entry("b", 10)));
    assert!(s.insert(7, entry("a", 20)));
    s.check();
    assert_eq!(s.len(), 2);
    assert_eq!(s.get(7, b"a", |_| true).unwrap().body.len(), 20);
    assert_eq!(s.get(7, b"b", |_| true).unwrap().body.len(), 10);
    assert!(s.get(7, b"c", |_| true).is_none());
    for i in 0..CHAIN_MAX + 4 {
        let mut e = entry("v", 1);
        e.vary = vec![(b"x".to_vec().into(), i.to_string().into_bytes().into())].into();
        s.insert(8, e);
    }
    s.check();
    assert!(s.len() <= CHAIN_MAX + 2);
    s.remove_where(7, b"a", |_| true);
    s.check();
    assert!(s.get(7, b"a", |_| true).is_none());
    assert_eq!(s.purge(|e| &*e.key == b"v"), CHAIN_MAX as u64);
    s.check();
    assert_eq!(s.len(), 1);
}

#[test]
fn random_operations_keep_the_invariants() {
    let mut s = Store::new(20_000);
    let mut x: u64 = 42;
    for _ in 0..5000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = (x >> 33) % 40;
        let key = format!("k{k}");
        match (x >> 20) % 4 {
            0 | 1 => {
                s.insert(k % 13, entry(&key, ((x >> 40) % 3000) as usize));
            }
            2 => {
                s.get(k % 13, key.as_bytes(), |_| true);
            }
            _ => s.remove_where(k % 13, key.as_bytes(), |_| true),
        }
    }
    s.check();
}
