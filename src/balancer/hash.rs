//! `hash`: consistent hashing on a ring with virtual nodes (ketama-style). Each server owns
//! `points_per_weight × weight` points placed by hashing its address as written, so a server's
//! points do not depend on the others: removing one of N servers moves only the keys it owned
//! (about 1/N), and every node of a fleet with the same config maps a key to the same server.
//! Also the stable 64-bit hash behind it and the opaque sticky-cookie tokens.

/// FNV-1a 64 over `parts` (with a separator between them), then murmur3's 64-bit finalizer so
/// that nearby inputs ("a#1", "a#2") land far apart. Fixed, unkeyed and version-stable on
/// purpose: every shard and every node must agree on where a key goes.
pub fn hash64(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ 0xff).wrapping_mul(PRIME);
        }
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    fmix64(h)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The sticky-cookie value for a server: 16 hex digits of a hash of the cluster name and the
/// address. Opaque to the client (no address leaks), stable across restarts and nodes.
pub fn sticky_token(upstream: &str, address: &str) -> String {
    format!(
        "{:016x}",
        hash64(&[b"sticky", upstream.as_bytes(), address.as_bytes()])
    )
}

/// A consistent-hash ring: point positions, sorted, and the server index owning each.
#[derive(Debug, Clone)]
pub struct Ring {
    positions: Box<[u64]>,
    owners: Box<[u16]>,
}

impl Ring {
    /// `members`: (address as written, weight) per server, in server order (at most 65536).
    pub fn new(members: &[(&str, u32)], points_per_weight: usize) -> Ring {
        debug_assert!(members.len() <= usize::from(u16::MAX) + 1);
        let mut points = Vec::new();
        for (i, (address, weight)) in members.iter().enumerate() {
            let count = *weight as usize * points_per_weight;
            for v in 0..count {
                let pos = hash64(&[address.as_bytes(), itoa::Buffer::new().format(v).as_bytes()]);
                points.push((pos, i as u16));
            }
        }
        // Equal positions (astronomically rare) keep the lower server index, deterministically.
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);
        Ring {
            positions: points.iter().map(|p| p.0).collect(),
            owners: points.iter().map(|p| p.1).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The first server clockwise from `key` for which `ok` holds; `None` if there is none.
    /// Walks at most the whole ring once.
    pub fn find(&self, key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.positions.len();
        let start = self.positions.partition_point(|&p| p < key);
        (0..n)
            .map(|k| usize::from(self.owners[(start + k) % n]))
            .find(|&s| ok(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: usize) -> Vec<usize> {
        (0..keys)
            .map(|k| {
                let h = hash64(&[format!("user-{k}").as_bytes()]);
                ring.find(h, |_| true).unwrap()
            })
            .collect()
    }

    #[test]
    fn removing_one_of_five_moves_only_its_keys() {
        let all = [
            "10.0.0.1:80",
            "10.0.0.2:80",
            "10.0.0.3:80",
            "10.0.0.4:80",
            "10.0.0.5:80",
        ];
        let five: Vec<_> = all.iter().map(|a| (*a, 1)).collect();
        let four: Vec<_> = all[..4].iter().map(|a| (*a, 1)).collect();
        let (before, after) = (
            owners(&Ring::new(&five, 160), 10_000),
            owners(&Ring::new(&four, 160), 10_000),
        );
        let mut per_server = [0usize; 5];
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            per_server[*b] += 1;
            if b != a {
                assert_eq!(*b, 4, "only keys of the removed server move");
                moved += 1;
            }
        }
        assert_eq!(moved, per_server[4]);
        assert!(moved < 2_500, "moved {moved} of 10000");
        for n in per_server {
            assert!((1_400..=2_600).contains(&n), "uneven ring: {per_server:?}");
        }
    }

    #[test]
    fn weights_scale_the_share_and_find_skips_refused_servers() {
        let ring = Ring::new(&[("a:1", 3), ("b:1", 1)], 160);
        assert_eq!(ring.len(), 640);
        let owned = owners(&ring, 8_000);
        let a = owned.iter().filter(|&&s| s == 0).count();
        assert!((5_400..=6_600).contains(&a), "a owns {a} of 8000");
        let h = hash64(&[b"k"]);
        assert_eq!(ring.find(h, |s| s == 1), Some(1));
        assert_eq!(ring.find(h, |_| false), None);
    }

    #[test]
    fn tokens_are_stable_and_opaque() {
        let t = sticky_token("app", "127.0.0.1:9001");
        assert_eq!(t, sticky_token("app", "127.0.0.1:9001"));
        assert_ne!(t, sticky_token("app", "127.0.0.1:9002"));
        assert_eq!(t.len(), 16);
        assert!(!t.contains("9001"));
    }
}
