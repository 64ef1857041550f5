//! Metrics: what counting costs a request (a counter increment, a histogram observation, a
//! route's request recorded), and what a scrape costs a shard (collecting the series of a
//! config with 1,000 routes and 100 servers) and the admin thread (rendering the text).

use std::path::Path;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use coregate::config;
use coregate::metrics::{
    collect_servers, labels, Counter, Families, Histogram, RouteStats, ServerStats, Stats,
};

fn big_config() -> config::Config {
    let mut s = String::new();
    for u in 0..10 {
        s.push_str(&format!("[[upstream]]\nname = \"u{u}\"\n"));
        for i in 0..10 {
            s.push_str(&format!(
                "[[upstream.server]]\naddress = \"10.0.{u}.{i}:80\"\n"
            ));
        }
    }
    for r in 0..1000 {
        s.push_str(&format!(
            "[[route]]\nname = \"r{r}\"\npath_exact = \"/r{r}\"\nupstream = \"u{}\"\n",
            r % 10
        ));
    }
    config::from_toml(&s, Path::new("bench.toml")).unwrap()
}

fn hot_path(c: &mut Criterion) {
    let counter = Counter::default();
    c.bench_function("metrics/counter_inc", |b| {
        b.iter(|| black_box(&counter).inc())
    });
    let h = Histogram::default();
    let d = Duration::from_micros(730);
    c.bench_function("metrics/histogram_observe", |b| {
        b.iter(|| h.observe(black_box(d)))
    });
    let r = RouteStats::default();
    c.bench_function("metrics/route_request_done", |b| {
        b.iter(|| r.done(black_box(200), black_box(d)))
    });
}

fn scrape(c: &mut Criterion) {
    let cfg = big_config();
    let stats = Stats::new(&cfg, None);
    for (i, r) in stats.routes.iter().enumerate() {
        r.done(
            if i % 7 == 0 { 404 } else { 200 },
            Duration::from_millis(i as u64 % 50),
        );
    }
    let servers: Vec<ServerStats> = (0..100).map(|_| ServerStats::default()).collect();
    for s in &servers {
        s.answered(200, Duration::from_millis(3));
    }
    let collect = |shard: &str, out: &mut Families| {
        stats.collect(&cfg, shard, out);
        let items: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    labels(&[
                        ("upstream", "u"),
                        ("server", &i.to_string()),
                        ("shard", shard),
                    ]),
                    s,
                )
            })
            .collect();
        collect_servers(&items, out);
    };
    c.bench_function("metrics/collect_1000_routes", |b| {
        b.iter(|| {
            let mut out = Families::default();
            collect("0", &mut out);
            out
        })
    });
    let mut all = Families::default();
    for shard in ["0", "1"] {
        collect(shard, &mut all);
    }
    c.bench_function("metrics/render_2_shards_1000_routes", |b| {
        b.iter(|| all.render().len())
    });
}

criterion_group!(benches, hot_path, scrape);
criterion_main!(benches);
