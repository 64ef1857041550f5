//! Route lookup cost with 10 and with 10,000 routes: the compiled table (hash maps per host
//! level, matchit for patterns, prefix lengths probed longest first) should cost about the same
//! for both, where a linear scan would cost 1000× more. Run: `cargo bench --bench router`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

use coregate::gateway::RoutePolicy;
use coregate::http::request::Method;
use coregate::router::{Action, HostMatch, Lookup, PathMatch, Route, RouteRequest, Router};

/// `n` routes in a realistic mix: a quarter exact paths, a quarter patterns with a parameter,
/// a quarter prefixes, a quarter prefixes on their own host.
fn table(n: usize) -> Router {
    let routes = (0..n)
        .map(|i| {
            let (host, path) = match i % 4 {
                0 => (HostMatch::Any, PathMatch::Exact(format!("/svc{i}/status"))),
                1 => (
                    HostMatch::Any,
                    PathMatch::Pattern {
                        pattern: format!("/svc{i}/users/{{id}}/orders"),
                        names: vec!["id".into()],
                    },
                ),
                2 => (HostMatch::Any, PathMatch::Prefix(format!("/svc{i}/api"))),
                _ => (
                    HostMatch::Exact(format!("tenant{i}.example.com")),
                    PathMatch::Prefix("/".into()),
                ),
            };
            Route {
                name: format!("r{i}"),
                host,
                path,
                methods: None,
                headers: Vec::new(),
                action: Action::Proxy(0),
                retry_non_idempotent: false,
                policy: RoutePolicy::default(),
            }
        })
        .collect();
    Router::new(routes).expect("routes compile")
}

fn lookup(r: &Router, host: &[u8], path: &[u8]) -> bool {
    let req = RouteRequest {
        host,
        path,
        method: Method::Get,
        buf: path,
        headers: &[],
    };
    matches!(r.route(&req), Lookup::Found(..))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for n in [10usize, 10_000] {
        let r = table(n);
        let last = |k: usize| (0..n).rev().find(|i| i % 4 == k).unwrap_or(0);
        let cases = [
            (
                "exact",
                "api.test".to_string(),
                format!("/svc{}/status", last(0)),
            ),
            (
                "pattern",
                "api.test".to_string(),
                format!("/svc{}/users/42/orders", last(1)),
            ),
            (
                "prefix",
                "api.test".to_string(),
                format!("/svc{}/api/v1/items?x", last(2)),
            ),
            (
                "host",
                format!("tenant{}.example.com", last(3)),
                "/anything".to_string(),
            ),
            (
                "miss",
                "api.test".to_string(),
                "/nowhere/at/all".to_string(),
            ),
        ];
        for (name, host, path) in &cases {
            assert_eq!(
                lookup(&r, host.as_bytes(), path.as_bytes()),
                *name != "miss"
            );
            g.bench_with_input(BenchmarkId::new(*name, n), &(host, path), |b, (h, p)| {
                b.iter(|| lookup(&r, black_box(h.as_bytes()), black_box(p.as_bytes())))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
