//! The response cache over real sockets: hits that never reach the origin, what is never
//! stored (no-store, private, no-cache, Set-Cookie, Authorization), Vary, HEAD from the GET
//! entry, request coalescing (100 concurrent misses, at most one origin request per shard),
//! stale answers while the origin is down or failing, the LRU bound, and request bodies of
//! hits drained (CVE-2025-4366). Purge, metrics and reload: `tests/cache_ops.rs`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::*;

/// An origin answering `body` with these extra fields, counting requests per path.
fn origin_with(fields: &'static [(&'static str, &'static str)], body: &'static str) -> Origin {
    Origin::start(move |r| {
        let mut h: Vec<(&str, &str)> = fields.to_vec();
        h.push(("X-Path", &r.target));
        Reply::Bytes(response(200, &h, body.as_bytes()))
    })
}

fn hit_then_miss(driver: Driver) {
    let origin = origin_with(&[("Cache-Control", "max-age=60")], "hello");
    let proxy = Proxy::start_with(
        &cached_config(
            origin.addr,
            "cache = { ttl_s = 0 }",
            "[log]\naccess = \"stdout\"\n",
        ),
        driver,
    );
    let mut c = Client::connect(proxy.addr());
    let first = c.get("/a?x=1");
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    let second = c.get("/a?x=1");
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(second.text(), "hello");
    assert!(second.header("age").is_some());
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    // Another connection, same shard: still a hit. Another query string: a miss.
    assert_eq!(
        Client::connect(proxy.addr())
            .get("/a?x=1")
            .header("x-cache"),
        Some("HIT")
    );
    assert_eq!(c.get("/a?x=2").header("x-cache"), Some("MISS"));
    assert_eq!(
        origin.count_to("/a?x=1"),
        1,
        "the hits never reached the origin"
    );
    assert_eq!(origin.count_to("/a?x=2"), 1);
    // The access log says what the cache did, per request, in order.
    wait_until(DEADLINE, "four access-log lines", || {
        proxy.stdout().lines().count() >= 4
    });
    let verdicts: Vec<String> = proxy
        .stdout()
        .lines()
        .map(|l| l.rsplit("cache=").next().unwrap().to_string())
        .collect();
    assert_eq!(verdicts, ["MISS", "HIT", "HIT", "MISS"]);
}

#[test]
fn second_request_is_a_hit_without_reaching_the_origin() {
    hit_then_miss(Driver::Auto);
}

#[test]
fn second_request_is_a_hit_on_the_legacy_driver() {
    hit_then_miss(Driver::Legacy);
}

#[test]
fn never_stored_no_store_private_no_cache_cookie_authorization() {
    let origin = Origin::start(|r| {
        let cc = match r.target.as_str() {
            "/no-store" => "no-store, max-age=60",
            "/private" => "private, max-age=60",
            "/no-cache" => "no-cache, max-age=60",
            _ => "max-age=60",
        };
        let mut h = vec![("Cache-Control", cc)];
        if r.target == "/cookie" {
            h.push(("Set-Cookie", "session=secret"));
        }
        Reply::Bytes(response(200, &h, b"x"))
    });
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = { ttl_s = 60 }", ""));
    let mut c = Client::connect(proxy.addr());
    for path in ["/no-store", "/private", "/no-cache", "/cookie"] {
        for _ in 0..2 {
            let r = c.get(path);
            assert_eq!(
                (r.status, r.header("x-cache")),
                (200, Some("MISS")),
                "{path}"
            );
        }
        assert_eq!(origin.count_to(path), 2, "{path} was never stored");
    }
    assert_eq!(
        c.get("/cookie").header("set-cookie"),
        Some("session=secret")
    );
    // A request with Authorization: stored only when the response says `public`.
    let authed = "GET /auth HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer t\r\n\r\n";
    assert_eq!(c.request(authed).header("x-cache"), Some("MISS"));
    assert_eq!(c.request(authed).header("x-cache"), Some("MISS"));
    // The request's own no-store bypasses; POST bypasses.
    let r = c.request("GET /plain HTTP/1.1\r\nHost: test\r\nCache-Control: no-store\r\n\r\n");
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    let r = c.request("POST /plain HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    assert_eq!(c.get("/plain").header("x-cache"), Some("MISS"));
    assert_eq!(c.get("/plain").header("x-cache"), Some("HIT"));
}

#[test]
fn set_cookie_strip_stores_without_the_cookie() {
    let origin = origin_with(
        &[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")],
        "body",
    );
    let keys = "cache = { ttl_s = 60, set_cookie = \"strip\" }";
    let proxy = Proxy::start(&cached_config(origin.addr, keys, ""));
    let mut c = Client::connect(proxy.addr());
    let miss = c.get("/c");
    assert_eq!(
        miss.header("set-cookie"),
        Some("s=1"),
        "the fetching client gets it"
    );
    let hit = c.get("/c");
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("set-cookie"), None, "never replayed to others");
}

#[test]
fn public_response_to_an_authorized_request_is_stored() {
    let origin = origin_with(&[("Cache-Control", "public, max-age=60")], "pub");
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", ""));
    let mut c = Client::connect(proxy.addr());
    let authed = "GET /p HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer t\r\n\r\n";
    assert_eq!(c.request(authed).header("x-cache"), Some("MISS"));
    assert_eq!(c.request(authed).header("x-cache"), Some("HIT"));
}

#[test]
fn ttl_applies_only_without_explicit_freshness() {
    let origin = Origin::start(|r| {
        let h: Vec<(&str, &str)> = match r.target.as_str() {
            "/zero" => vec![("Cache-Control", "max-age=0")],
            _ => vec![],
        };
        Reply::Bytes(response(200, &h, b"t"))
    });
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = { ttl_s = 60 }", ""));
    let mut c = Client::connect(proxy.addr());
    c.get("/none");
    assert_eq!(c.get("/none").header("x-cache"), Some("HIT"), "route TTL");
    c.get("/zero");
    assert_eq!(
        c.get("/zero").header("x-cache"),
        Some("MISS"),
        "max-age=0 wins"
    );
    // Without a route TTL, a response without freshness is not stored.
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", ""));
    let mut c = Client::connect(proxy.addr());
    c.get("/none");
    assert_eq!(c.get("/none").header("x-cache"), Some("MISS"));
}

#[test]
fn vary_is_honoured() {
    let origin = Origin::start(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        let h = [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")];
        Reply::Bytes(response(200, &h, lang.as_bytes()))
    });
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", ""));
    let mut c = Client::connect(proxy.addr());
    let get = |c: &mut Client, lang: &str| {
        c.request(&format!(
            "GET /v HTTP/1.1\r\nHost: test\r\nAccept-Language: {lang}\r\n\r\n"
        ))
    };
    assert_eq!(get(&mut c, "en").header("x-cache"), Some("MISS"));
    assert_eq!(get(&mut c, "fr").header("x-cache"), Some("MISS"));
    for lang in ["en", "fr", "en"] {
        let r = get(&mut c, lang);
        assert_eq!(
            (r.header("x-cache"), r.text()),
            (Some("HIT"), lang.to_string())
        );
    }
    let none = c.get("/v");
    assert_eq!(
        (none.header("x-cache"), none.text()),
        (Some("MISS"), "none".into())
    );
    assert_eq!(origin.count_to("/v"), 3);
}

#[test]
fn head_is_answered_from_the_get_entry() {
    let origin = origin_with(&[("Cache-Control", "max-age=60")], "0123456789");
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", ""));
    let mut c = Client::connect(proxy.addr());
    // A HEAD miss goes to the origin and stores nothing.
    let h = c.request("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(h.header("x-cache"), Some("MISS"));
    assert_eq!(c.get("/h").header("x-cache"), Some("MISS"));
    let h = c.request("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(h.header("x-cache"), Some("HIT"));
    assert_eq!(h.header("content-length"), Some("10"));
    assert!(h.body.is_empty());
    // The connection is still in step: the next answer is whole.
    assert_eq!(c.get("/h").text(), "0123456789");
    assert_eq!(origin.count_to("/h"), 2);
}

#[test]
fn a_hit_drops_a_buffered_request_body_and_stays_in_step() {
    let origin = origin_with(&[("Cache-Control", "max-age=60")], "cached");
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", ""));
    let mut c = Client::connect(proxy.addr());
    c.get("/b");
    // A GET with a body that looks like a request, pipelined with a real one.
    c.send(
        b"GET /b HTTP/1.1\r\nHost: test\r\nContent-Length: 29\r\n\r\n\
GET /smuggled HTTP/1.1\r\nX: y\r\n\r\nGET /b HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    for _ in 0..2 {
        let r = c.read_response(false).expect("an answer");
        assert_eq!(
            (r.header("x-cache"), r.text()),
            (Some("HIT"), "cached".into())
        );
    }
    assert_eq!(origin.count_to("/smuggled"), 0);
    assert_eq!(origin.count_to("/b"), 1);
}

#[test]
fn concurrent_misses_reach_the_origin_at_most_once_per_shard() {
    let origin = Origin::start(|_| {
        let h = [("Cache-Control", "max-age=60")];
        Reply::Delayed(Duration::from_millis(400), response(200, &h, b"slow body"))
    });
    let toml = cached_config(origin.addr, "cache = {}", "").replace("workers = 1", "workers = 2");
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            thread::spawn(move || {
                let r = Client::connect(addr).get("/hot");
                (r.status, r.text(), r.header("x-cache").map(str::to_string))
            })
        })
        .collect();
    let mut hits = 0;
    for t in clients {
        let (status, body, x) = t.join().unwrap();
        assert_eq!((status, body.as_str()), (200, "slow body"));
        hits += usize::from(x.as_deref() == Some("HIT"));
    }
    let fetched = origin.count_to("/hot");
    assert!(
        fetched <= 2,
        "{fetched} origin requests for 100 misses on 2 shards"
    );
    assert!(hits >= 98, "{hits} waiters answered from the stored entry");
}

#[test]
fn stale_is_served_while_the_origin_is_down() {
    let origin = origin_with(&[("Cache-Control", "max-age=1")], "old but fine");
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = { stale_s = 60 }", ""));
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/s").header("x-cache"), Some("MISS"));
    origin.stop();
    // Fresh for a second (hits), then stale: the failing origin is tried, the entry answers.
    let mut last = None;
    let became_stale = poll_until(Duration::from_secs(8), || {
        let r = Client::connect(proxy.addr()).get("/s");
        let stale = r.header("x-cache") == Some("STALE");
        last = Some(r);
        stale
    });
    let r = last.unwrap();
    assert!(
        became_stale,
        "last answer: {} {:?}",
        r.status,
        r.header("x-cache")
    );
    assert_eq!((r.status, r.text()), (200, "old but fine".into()));
}

#[test]
fn stale_is_served_for_an_origin_503_but_not_past_its_window() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let origin = Origin::start(move |_| {
        if f.load(Ordering::SeqCst) {
            return Reply::Bytes(response(503, &[], b"down"));
        }
        Reply::Bytes(response(200, &[("Cache-Control", "max-age=1")], b"v1"))
    });
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = { stale_s = 2 }", ""));
    let mut c = Client::connect(proxy.addr());
    c.get("/f");
    failing.store(true, Ordering::SeqCst);
    assert!(
        poll_until(Duration::from_secs(8), || c.get("/f").header("x-cache")
            == Some("STALE")),
        "a 503 is answered with the stale entry"
    );
    // Past max-age + stale_s (3 s) the origin's 503 goes through.
    assert!(
        poll_until(Duration::from_secs(10), || c.get("/f").status == 503),
        "past the stale window the error is passed on"
    );
}

#[test]
fn lru_bound_holds() {
    // Each entry is about 4 KiB + bookkeeping: the shard holds only a few.
    let origin = Origin::start(|_| {
        let body = vec![b'z'; 4000];
        Reply::Bytes(response(200, &[("Cache-Control", "max-age=60")], &body))
    });
    let extra = "[cache]\nbytes_per_shard_max = 20000\nentry_bytes_max = 8000\n";
    let proxy = Proxy::start(&cached_config(origin.addr, "cache = {}", extra));
    let mut c = Client::connect(proxy.addr());
    for i in 0..10 {
        assert_eq!(c.get(&format!("/e{i}")).header("x-cache"), Some("MISS"));
    }
    assert_eq!(
        c.get("/e9").header("x-cache"),
        Some("HIT"),
        "the newest stays"
    );
    assert_eq!(
        c.get("/e0").header("x-cache"),
        Some("MISS"),
        "the oldest went"
    );
    // An entry over entry_bytes_max is streamed but never stored.
    let big = Origin::start(|_| {
        let body = vec![b'b'; 9000];
        Reply::Bytes(response(200, &[("Cache-Control", "max-age=60")], &body))
    });
    let proxy = Proxy::start(&cached_config(big.addr, "cache = {}", extra));
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/big").body.len(), 9000);
    assert_eq!(c.get("/big").header("x-cache"), Some("MISS"));
}
