//! The response cache and the operations side, over real sockets: `POST /cache/purge` on the
//! admin listener drops exactly the matching entries (and says how many), the cache and
//! compression series on `/metrics` match what the client saw, and a hot reload drops the
//! entries of a route whose cache settings changed while other routes keep theirs.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::ops::{admin, admin_addr, json, ops_head_app, scrape, sum};
use support::*;

/// One shard (every request sees the same cache), an admin listener, one upstream and the
/// routes given.
fn config(origin: SocketAddr, routes: &str) -> String {
    format!(
        "{}[compression]\nmin_bytes = 16\n{routes}",
        ops_head_app(1, "", origin)
    )
}

fn route(name: &str, prefix: &str, keys: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"app\"\n{keys}\n"
    )
}

/// An origin answering every target with its own text, fresh for a minute.
fn origin() -> Origin {
    Origin::start(|r| {
        let body = format!("body of {} on {}", r.target, host_of(r));
        Reply::Bytes(response(
            200,
            &[
                ("Cache-Control", "max-age=60"),
                ("Content-Type", "text/plain"),
            ],
            body.as_bytes(),
        ))
    })
}

fn host_of(r: &Received) -> String {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or(String::new(), |(_, v)| v.clone())
}

fn get(c: &mut Client, host: &str, path: &str) -> Response {
    c.request(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

fn x_cache(r: &Response) -> String {
    r.header("x-cache").unwrap_or("-").to_string()
}

#[test]
fn purge_through_the_admin_api_drops_exactly_the_matching_entries() {
    let origin = origin();
    let proxy = Proxy::start(&config(
        origin.addr,
        &route("all", "/", "cache = { ttl_s = 60 }"),
    ));
    let a = admin_addr(&proxy);
    let mut c = Client::connect(proxy.addr());
    let pages = [
        ("a.example", "/img/1"),
        ("a.example", "/img/2"),
        ("a.example", "/doc"),
        ("b.example", "/img/1"),
    ];
    for (host, path) in pages {
        assert_eq!(x_cache(&get(&mut c, host, path)), "MISS");
        assert_eq!(x_cache(&get(&mut c, host, path)), "HIT");
    }
    let filter = r#"{"host": "A.example", "path_prefix": "/img/"}"#;
    let r = admin(a, "POST", "/cache/purge", None, filter);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["purged"], 2);
    assert_eq!(
        json(&admin(a, "POST", "/cache/purge", None, filter))["purged"],
        0
    );
    let by_route = r#"{"route": "elsewhere"}"#;
    assert_eq!(
        json(&admin(a, "POST", "/cache/purge", None, by_route))["purged"],
        0
    );
    // The purged pages go to the origin again; the others are still hits.
    assert_eq!(x_cache(&get(&mut c, "a.example", "/img/1")), "MISS");
    assert_eq!(x_cache(&get(&mut c, "a.example", "/img/2")), "MISS");
    assert_eq!(x_cache(&get(&mut c, "a.example", "/doc")), "HIT");
    let b = get(&mut c, "b.example", "/img/1");
    assert_eq!(
        (x_cache(&b), b.text()),
        ("HIT".into(), "body of /img/1 on b.example".into())
    );
    assert_eq!(origin.count_to("/img/1"), 3);
    assert_eq!(origin.count_to("/doc"), 1);
    // An empty body purges everything: the four entries there are now.
    let all = admin(a, "POST", "/cache/purge", None, "");
    assert_eq!((all.status, json(&all)["purged"].as_u64()), (200, Some(4)));
    assert_eq!(x_cache(&get(&mut c, "b.example", "/img/1")), "MISS");
    assert_eq!(admin(a, "POST", "/cache/purge", None, "[1]").status, 400);
}

#[test]
fn cache_and_compression_metrics_match_what_clients_saw() {
    // /flaky: fresh for one second, then the origin fails: the entry answers stale.
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let calls = flaky_calls.clone();
    let origin = Origin::start(move |r| {
        if r.target == "/flaky" && calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return Reply::Bytes(response(503, &[], b"down"));
        }
        let age = if r.target == "/flaky" {
            "max-age=1"
        } else {
            "max-age=60"
        };
        Reply::Bytes(response(
            200,
            &[("Cache-Control", age), ("Content-Type", "text/plain")],
            &text_body(2000),
        ))
    });
    let routes = route(
        "site",
        "/",
        "cache = { ttl_s = 60, stale_s = 60 }\ncompress = true",
    );
    let proxy = Proxy::start(&config(origin.addr, &routes));
    let a = admin_addr(&proxy);
    let mut c = Client::connect(proxy.addr());
    let mut seen = std::collections::HashMap::<String, f64>::new();
    let mut note = |r: &Response| *seen.entry(x_cache(r)).or_default() += 1.0;
    note(&get(&mut c, "h", "/a"));
    note(&get(&mut c, "h", "/a"));
    note(&get(&mut c, "h", "/a"));
    let gz = c.request("GET /a HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), text_body(2000));
    note(&gz);
    let post = c.request("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(x_cache(&post), "BYPASS");
    note(&post);
    note(&get(&mut c, "h", "/flaky"));
    let stale = poll_until(DEADLINE, || {
        let r = get(&mut c, "h", "/flaky");
        assert_eq!(r.status, 200, "a stale entry answers, never the 503");
        note(&r);
        x_cache(&r) == "STALE"
    });
    assert!(
        stale,
        "the /flaky entry was served stale once past its second"
    );

    let s = scrape(a, None);
    let route = [("route", "site")];
    for (metric, verdict) in [
        ("coregate_cache_hits_total", "HIT"),
        ("coregate_cache_misses_total", "MISS"),
        ("coregate_cache_stale_total", "STALE"),
        ("coregate_cache_bypass_total", "BYPASS"),
    ] {
        let want = seen.get(verdict).copied().unwrap_or(0.0);
        assert!(want > 0.0, "{verdict} was seen");
        assert_eq!(sum(&s, metric, &route), want, "{metric}");
    }
    // Stored: /a identity, /a gzip, /flaky. Nothing evicted from 64 MiB.
    assert_eq!(sum(&s, "coregate_cache_stores_total", &[]), 3.0);
    assert_eq!(sum(&s, "coregate_cache_entries", &[]), 3.0);
    assert!(sum(&s, "coregate_cache_bytes", &[]) > 2.0 * 2000.0);
    assert_eq!(sum(&s, "coregate_cache_evictions_total", &[]), 0.0);
    let gzip = [("coding", "gzip")];
    assert_eq!(sum(&s, "coregate_compressed_responses_total", &gzip), 1.0);
    assert_eq!(
        sum(
            &s,
            "coregate_compressed_responses_total",
            &[("coding", "br")]
        ),
        0.0
    );
}

#[test]
fn a_reload_drops_the_entries_of_routes_whose_cache_settings_changed() {
    let origin = origin();
    let routes = |pages_ttl: &str| {
        route("pages", "/p", &format!("cache = {{ ttl_s = {pages_ttl} }}"))
            + &route("assets", "/s", "cache = { ttl_s = 60 }")
    };
    let proxy = Proxy::start(&config(origin.addr, &routes("60")));
    let a = admin_addr(&proxy);
    let mut c = Client::connect(proxy.addr());
    for path in ["/p/1", "/s/1"] {
        assert_eq!(x_cache(&get(&mut c, "h", path)), "MISS");
        assert_eq!(x_cache(&get(&mut c, "h", path)), "HIT");
    }
    // A new TTL for "pages": its entries go at once; "assets" did not change and keeps its.
    proxy.write_config(&config(origin.addr, &routes("120")));
    let r = admin(a, "POST", "/reload", None, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut c = Client::connect(proxy.addr());
    assert_eq!(x_cache(&get(&mut c, "h", "/p/1")), "MISS");
    assert_eq!(x_cache(&get(&mut c, "h", "/p/1")), "HIT");
    assert_eq!(x_cache(&get(&mut c, "h", "/s/1")), "HIT");
    assert_eq!(origin.count_to("/p/1"), 2);
    assert_eq!(origin.count_to("/s/1"), 1);
    assert!(proxy.log().contains("cache entries dropped by the reload"));
    // Caching switched off for "pages": every request goes to the origin, no X-Cache.
    let off = route("pages", "/p", "") + &route("assets", "/s", "cache = { ttl_s = 60 }");
    proxy.write_config(&config(origin.addr, &off));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    let mut c = Client::connect(proxy.addr());
    for _ in 0..2 {
        assert_eq!(x_cache(&get(&mut c, "h", "/p/1")), "-");
    }
    assert_eq!(origin.count_to("/p/1"), 4);
    assert_eq!(x_cache(&get(&mut c, "h", "/s/1")), "HIT");
}
