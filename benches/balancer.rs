//! Balancer picks, pure code without I/O: the per-request cost of each algorithm over a
//! 16-server cluster (one server down, so the skip path runs), and of reading the hash key
//! and sticky cookie from a request head. Tracks our own ns/op over time.

use std::path::Path;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use coregate::balancer::{Affinity, Balancer, RequestFacts, Tried};
use coregate::config;
use coregate::http::request;

fn cluster(balance: &str) -> config::Config {
    let mut s = format!(
        "[[upstream]]\nname = \"app\"\nbalance = \"{balance}\"\nhash_key = \"header:x-user\"\n\
sticky_cookie = \"cg\"\n"
    );
    for i in 0..16 {
        s.push_str(&format!(
            "[[upstream.server]]\naddress = \"10.0.0.{i}:80\"\nweight = {}\n",
            1 + i % 3
        ));
    }
    config::from_toml(&s, Path::new("bench.toml")).unwrap()
}

fn picks(c: &mut Criterion) {
    for balance in ["round_robin", "weighted", "least_conn", "p2c_ewma", "hash"] {
        let cfg = cluster(balance);
        let up = &cfg.upstreams[0];
        let lb = Balancer::new(up, 0);
        lb.server(3).unwrap().set_up(false, Instant::now());
        let aff = Affinity {
            sticky: None,
            hash: Some(0x1234_5678_9abc_def0),
        };
        let tried = Tried::default();
        c.bench_function(&format!("pick_{balance}"), |b| {
            b.iter(|| {
                let i = lb
                    .pick(up, black_box(&aff), &tried, Instant::now())
                    .unwrap();
                let _load = lb.begin(i);
                i
            })
        });
    }
}

fn affinity(c: &mut Criterion) {
    let cfg = cluster("hash");
    let up = &cfg.upstreams[0];
    let raw = b"GET /api/v1/users/42 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk\r\n\
Accept: */*\r\nX-User: user-42\r\nCookie: theme=dark; cg=0123456789abcdef; lang=en\r\n\r\n";
    let mut headers = Vec::new();
    let head = request::parse(raw, &cfg.limits, &mut headers)
        .unwrap()
        .unwrap();
    let client_ip = "10.1.2.3".parse().unwrap();
    c.bench_function("affinity_header_and_cookie", |b| {
        b.iter(|| {
            let facts = RequestFacts {
                client_ip,
                path: head.path.get(raw),
                buf: black_box(raw),
                headers: &headers,
            };
            Affinity::of(up, &facts)
        })
    });
}

criterion_group!(benches, picks, affinity);
criterion_main!(benches);
