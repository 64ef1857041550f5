//! Response cache and compression, pure code without I/O: the per-request cost of a cache
//! lookup (key build + keyed hash + chain walk + LRU touch) on a shard holding 1,000 and
//! 100,000 entries, a miss, an insert that evicts, and the CPU cost of compressing a 16 KiB
//! text body with gzip and brotli at the default levels. Tracks our own ns/op over time.

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use coregate::cache::{self, Cache, Entry, Found};
use coregate::compress::{Coding, CompressionSettings, Encoder};

fn entry(key: &[u8], body: usize) -> Entry {
    let now = Instant::now();
    Entry {
        key: key.into(),
        vary: Box::new([]),
        coded_for: None,
        status: 200,
        head: b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: max-age=60\r\n"
            .to_vec()
            .into(),
        body: Rc::new(vec![b'x'; body].into_boxed_slice()),
        stored: now,
        age_s: 0,
        fresh_until: now + Duration::from_secs(3600),
        stale_until: now + Duration::from_secs(3600),
    }
}

fn filled(n: usize) -> Cache {
    let c = Cache::new(1 << 30);
    let mut key = Vec::new();
    for i in 0..n {
        cache::write_key(
            &mut key,
            "site",
            b"example.com",
            format!("/page/{i}?q=1").as_bytes(),
        );
        c.insert(c.hash(&key), entry(&key, 512));
    }
    c
}

fn lookups(c: &mut Criterion) {
    for n in [1_000, 100_000] {
        let cache = filled(n);
        let mut key = Vec::with_capacity(128);
        let target = format!("/page/{}?q=1", n / 2);
        c.bench_function(&format!("cache_hit_{n}_entries"), |b| {
            b.iter(|| {
                cache::write_key(&mut key, "site", b"Example.com", target.as_bytes());
                let h = cache.hash(&key);
                let found = cache.lookup(h, &key, Instant::now(), |e| e.coded_for.is_none());
                black_box(matches!(found, Found::Fresh(_)))
            })
        });
        c.bench_function(&format!("cache_miss_{n}_entries"), |b| {
            b.iter(|| {
                cache::write_key(&mut key, "site", b"example.com", b"/nowhere");
                let h = cache.hash(&key);
                black_box(matches!(
                    cache.lookup(h, &key, Instant::now(), |_| true),
                    Found::Nothing
                ))
            })
        });
    }
    let small = Cache::new(64 * 1024);
    let mut i = 0u64;
    let mut key = Vec::new();
    c.bench_function("cache_insert_evicting", |b| {
        b.iter(|| {
            i += 1;
            cache::write_key(&mut key, "site", b"h", format!("/{i}").as_bytes());
            black_box(small.insert(small.hash(&key), entry(&key, 1024)))
        })
    });
}

fn compression(c: &mut Criterion) {
    let s = CompressionSettings {
        gzip_level: coregate::config::defaults::GZIP_LEVEL,
        brotli_level: coregate::config::defaults::BROTLI_LEVEL,
        min_bytes: 0,
        types: Vec::new(),
        encodings: vec![Coding::Br, Coding::Gzip],
    };
    let words = [
        "edge ",
        "proxy ",
        "shard ",
        "cache ",
        "<div class=\"x\">",
        "</div>\n",
    ];
    let mut body = Vec::new();
    let mut x: u32 = 7;
    while body.len() < 16 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        body.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    for coding in [Coding::Gzip, Coding::Br] {
        c.bench_function(&format!("compress_16k_{}", coding.token()), |b| {
            b.iter(|| {
                let mut e = Encoder::new(coding, &s).unwrap();
                e.write(&body);
                e.finish();
                black_box(e.output().len())
            })
        });
    }
}

criterion_group!(benches, lookups, compression);
criterion_main!(benches);
