//! Rate-limit check, pure code without I/O: what the rate-limit phase costs a request whose
//! key this shard owns (hash the key, take a token from the key's bucket, build the decision
//! and its RateLimit-* fields), with a hot key and over 10,000 distinct keys (table lookups
//! that miss the cache), and a refused request. Tracks our own ns/op over time.

use std::hash::BuildHasher;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use coregate::config;
use coregate::gateway::rate_limit::{self, Limiter};

fn policy(rate: u64, burst: u64) -> config::Config {
    let s = format!(
        "[[rate_limit]]\nname = \"per-ip\"\nkey = \"client_ip\"\nrate = {rate}\n\
period_ms = 1000\nburst = {burst}\nkeys_max = 100000\n"
    );
    config::from_toml(&s, Path::new("bench.toml")).unwrap()
}

/// The phase's local path for one key: hash, take, decide, render the fields.
fn check(cfg: &config::Config, limiter: &Limiter, key: &[u8], out: &mut Vec<u8>) -> bool {
    let gw = &cfg.gateway;
    let p = &gw.rate_limits[0];
    let hash = gw.hasher.hash_one((0usize, key));
    let g = limiter.take_owned(0, hash, 1);
    let d = rate_limit::decision(
        p,
        g.granted == 1,
        u64::from(g.remaining),
        g.full_ns,
        g.wait_ns,
    );
    out.clear();
    d.write_fields(out);
    d.allowed
}

fn checks(c: &mut Criterion) {
    let cfg = policy(1_000_000_000, 1_000_000_000);
    let limiter = Limiter::new(&cfg.gateway.rate_limits);
    let mut out = Vec::with_capacity(256);
    c.bench_function("rate_limit_hot_key", |b| {
        b.iter(|| check(&cfg, &limiter, black_box(b"10.1.2.3"), &mut out))
    });
    let keys: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255).into_bytes())
        .collect();
    let mut i = 0;
    c.bench_function("rate_limit_10k_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            check(&cfg, &limiter, black_box(&keys[i]), &mut out)
        })
    });
    let strict = policy(1, 1);
    let limiter = Limiter::new(&strict.gateway.rate_limits);
    check(&strict, &limiter, b"10.9.9.9", &mut out);
    c.bench_function("rate_limit_refused", |b| {
        b.iter(|| check(&strict, &limiter, black_box(b"10.9.9.9"), &mut out))
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
