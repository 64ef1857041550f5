//! Pure balancer tests: each algorithm's choices for a known cluster state, without I/O.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{self, Config};

/// A config with one upstream of `weights.len()` servers on 127.0.0.1:9001.. and `extra` keys.
fn cluster(weights: &[u32], extra: &str) -> Config {
    let mut s = format!("[[upstream]]\nname = \"app\"\n{extra}\n");
    for (i, w) in weights.iter().enumerate() {
        s.push_str(&format!(
            "[[upstream.server]]\naddress = \"127.0.0.1:{}\"\nweight = {w}\n",
            9001 + i
        ));
    }
    config::from_toml(&s, Path::new("t.toml")).unwrap()
}

fn picks(cfg: &Config, lb: &Balancer, n: usize) -> Vec<usize> {
    let now = Instant::now();
    (0..n)
        .map(|_| {
            lb.pick(
                &cfg.upstreams[0],
                &Affinity::default(),
                &Tried::default(),
                now,
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn round_robin_cycles_from_the_shard_offset_and_skips_the_down() {
    let cfg = cluster(&[1, 1, 1], "");
    let lb = Balancer::new(&cfg.upstreams[0], 1);
    assert_eq!(picks(&cfg, &lb, 6), [1, 2, 0, 1, 2, 0]);
    lb.server(2).unwrap().set_up(false, Instant::now());
    assert_eq!(picks(&cfg, &lb, 4), [1, 0, 1, 0]);
}

#[test]
fn weighted_is_smooth() {
    let cfg = cluster(&[5, 1, 1], "balance = \"weighted\"");
    let lb = Balancer::new(&cfg.upstreams[0], 0);
    assert_eq!(
        picks(&cfg, &lb, 14),
        [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]
    );
    // Another shard starts elsewhere in the same cycle.
    let lb1 = Balancer::new(&cfg.upstreams[0], 1);
    assert_eq!(picks(&cfg, &lb1, 7), [0, 1, 0, 2, 0, 0, 0]);
}

#[test]
fn weighted_skips_the_down_and_keeps_ratios() {
    let cfg = cluster(&[3, 1, 2], "balance = \"weighted\"");
    let lb = Balancer::new(&cfg.upstreams[0], 0);
    let got = picks(&cfg, &lb, 600);
    let count = |s| got.iter().filter(|&&x| x == s).count();
    assert_eq!((count(0), count(1), count(2)), (300, 100, 200));
    lb.server(0)
        .unwrap()
        .eject(Instant::now() + Duration::from_secs(60));
    let got = picks(&cfg, &lb, 30);
    assert!(!got.contains(&0));
    assert_eq!(got.iter().filter(|&&x| x == 2).count(), 20);
}

#[test]
fn least_conn_prefers_the_idle_and_rotates_ties() {
    let cfg = cluster(&[1, 1, 1], "balance = \"least_conn\"");
    let up = &cfg.upstreams[0];
    let lb = Balancer::new(up, 0);
    assert_eq!(picks(&cfg, &lb, 3), [0, 1, 2], "ties rotate");
    let _a = lb.begin(0);
    let _b = lb.begin(0);
    let _c = lb.begin(1);
    assert_eq!(picks(&cfg, &lb, 3), [2, 2, 2]);
    drop(_c);
    let got = picks(&cfg, &lb, 2);
    assert!(got.iter().all(|&s| s == 1 || s == 2), "{got:?}");
}

#[test]
fn p2c_avoids_the_slow_server() {
    let cfg = cluster(&[1, 1, 1], "balance = \"p2c_ewma\"");
    let up = &cfg.upstreams[0];
    let lb = Balancer::new(up, 0);
    let now = Instant::now();
    for (i, ms) in [(0, 1), (1, 1), (2, 40)] {
        lb.answered(up, i, 200, Duration::from_millis(ms), now);
    }
    let got = picks(&cfg, &lb, 1000);
    let slow = got.iter().filter(|&&s| s == 2).count();
    assert_eq!(slow, 0, "the slow server loses every draw it is in");
    let first = got.iter().filter(|&&s| s == 0).count();
    assert!((350..=650).contains(&first), "{first}");
}

#[test]
fn hash_follows_the_ring_and_falls_back_without_a_key() {
    let cfg = cluster(
        &[1, 1, 1, 1],
        "balance = \"hash\"\nhash_key = \"header:x-user\"",
    );
    let up = &cfg.upstreams[0];
    let lb = Balancer::new(up, 0);
    let now = Instant::now();
    let aff = Affinity {
        sticky: None,
        hash: Some(hash::hash64(&[b"user-1"])),
    };
    let first = lb.pick(up, &aff, &Tried::default(), now).unwrap();
    for _ in 0..10 {
        assert_eq!(lb.pick(up, &aff, &Tried::default(), now), Some(first));
    }
    let mut tried = Tried::default();
    tried.push(first);
    let next = lb.pick(up, &aff, &tried, now).unwrap();
    assert_ne!(
        next, first,
        "a retry walks on to the next server of the ring"
    );
    lb.server(first).unwrap().set_up(false, now);
    assert_eq!(lb.pick(up, &aff, &Tried::default(), now), Some(next));
    let no_key = picks(&cfg, &lb, 3);
    assert_eq!(no_key.len(), 3);
}

#[test]
fn sticky_wins_while_usable_and_all_down_is_none_unless_fail_open() {
    let cfg = cluster(&[1, 1], "");
    let up = &cfg.upstreams[0];
    let lb = Balancer::new(up, 0);
    let now = Instant::now();
    let aff = Affinity {
        sticky: Some(1),
        hash: None,
    };
    for _ in 0..5 {
        assert_eq!(lb.pick(up, &aff, &Tried::default(), now), Some(1));
    }
    lb.server(1).unwrap().set_up(false, now);
    assert_eq!(lb.pick(up, &aff, &Tried::default(), now), Some(0));
    lb.server(0).unwrap().set_up(false, now);
    assert_eq!(lb.pick(up, &aff, &Tried::default(), now), None);

    let open = cluster(&[1, 1], "fail_open = true");
    let up = &open.upstreams[0];
    let lb = Balancer::new(up, 0);
    lb.server(0).unwrap().set_up(false, now);
    lb.server(1).unwrap().set_up(false, now);
    let mut tried = Tried::default();
    let a = lb.pick(up, &Affinity::default(), &tried, now).unwrap();
    tried.push(a);
    let b = lb.pick(up, &Affinity::default(), &tried, now).unwrap();
    tried.push(b);
    assert_ne!(a, b);
    assert_eq!(lb.pick(up, &Affinity::default(), &tried, now), None);
}

#[test]
fn outlier_ejects_after_consecutive_failures() {
    let cfg = cluster(
        &[1, 1],
        "[upstream.outlier]\nconsecutive_failures = 3\nbase_ejection_ms = 1000",
    );
    let up = &cfg.upstreams[0];
    let lb = Balancer::new(up, 0);
    let now = Instant::now();
    assert_eq!(lb.answered(up, 0, 500, Duration::ZERO, now), Verdict::Fine);
    assert_eq!(lb.failed(up, 0, now), Verdict::Fine);
    assert_eq!(lb.answered(up, 0, 503, Duration::ZERO, now), Verdict::Eject);
    assert!(!lb.server(0).unwrap().usable(now));
    assert!(lb.server(0).unwrap().usable(now + Duration::from_secs(1)));
    // Without [upstream.outlier], failures never eject.
    let plain = cluster(&[1], "");
    let lb = Balancer::new(&plain.upstreams[0], 0);
    for _ in 0..100 {
        assert_eq!(lb.failed(&plain.upstreams[0], 0, now), Verdict::Fine);
    }
}

#[test]
fn slow_start_gives_a_returning_server_a_small_share() {
    let cfg = cluster(&[1, 1], "balance = \"weighted\"\nslow_start_ms = 100000");
    let lb = Balancer::new(&cfg.upstreams[0], 0);
    let now = Instant::now();
    lb.server(1).unwrap().set_up(false, now);
    lb.server(1).unwrap().set_up(true, now);
    let got = picks(&cfg, &lb, 1100);
    let returning = got.iter().filter(|&&s| s == 1).count();
    assert!((80..=130).contains(&returning), "{returning} of 1100");
}

#[test]
fn rng_is_uniform_enough() {
    let rng = Rng::new(7);
    let mut buckets = [0usize; 4];
    for _ in 0..40_000 {
        buckets[rng.below(4)] += 1;
    }
    assert!(
        buckets.iter().all(|&b| (9_000..=11_000).contains(&b)),
        "{buckets:?}"
    );
    assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.unit())));
}
