//! Forwarding end to end: coregate in front of real origins, over real sockets, on both drivers.

mod support;

use std::time::Duration;
use support::*;

fn both_drivers(test: impl Fn(Driver)) {
    test(Driver::Auto);
    test(Driver::Legacy);
}

#[test]
fn get_is_forwarded_byte_exact() {
    both_drivers(|driver| {
        let origin = Origin::fixed("a", "hello world");
        let proxy = Proxy::start_with(&simple_config(&[origin.addr], ""), driver);
        let mut c = Client::connect(proxy.addr());
        let r = c.request("GET /some/path?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Custom: a b  c\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world");
        assert_eq!(r.header("x-origin"), Some("a"));
        assert_eq!(r.header("content-length"), Some("11"));
        let got = origin.wait_requests(1);
        let head = String::from_utf8(got[0].raw_head.clone()).unwrap();
        assert_eq!(
            head,
            format!(
                "GET /some/path?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
X-Custom: a b  c\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\
X-Forwarded-Host: example.com\r\nVia: 1.1 coregate\r\n\r\n"
            ),
            "driver {driver:?}"
        );
    });
}

#[test]
fn post_with_content_length_is_byte_exact() {
    both_drivers(|driver| {
        let origin = Origin::echo();
        let proxy = Proxy::start_with(&simple_config(&[origin.addr], ""), driver);
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = Client::connect(proxy.addr());
        let mut req = format!(
            "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        c.send(&req);
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body);
        let got = origin.wait_requests(1);
        assert_eq!(got[0].framing, "length");
        assert_eq!(got[0].header("content-length"), Some("100000"));
        assert_eq!(got[0].body, body);
    });
}

#[test]
fn chunked_request_is_reframed_and_decoded_exactly() {
    both_drivers(|driver| {
        let origin = Origin::echo();
        let proxy = Proxy::start_with(&simple_config(&[origin.addr], ""), driver);
        let mut c = Client::connect(proxy.addr());
        c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send(b"5;ext=1\r\nhello\r\n");
        c.send(b"1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n");
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world!");
        let got = origin.wait_requests(1);
        assert_eq!(got[0].framing, "chunked");
        assert_eq!(got[0].body, b"hello world!");
        assert_eq!(got[0].header("content-length"), None);
    });
}

#[test]
fn chunked_and_close_delimited_responses_reach_the_client_intact() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let chunked_body = big.clone();
    let origin = Origin::start(move |r| {
        if r.target == "/chunked" {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in chunked_body.chunks(7000) {
                out.extend_from_slice(format!("{:x};e=1\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
            Reply::Bytes(out)
        } else {
            let mut out = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            out.extend_from_slice(&chunked_body);
            Reply::BytesThenClose(out)
        }
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/chunked");
    assert_eq!((r.status, r.framing), (200, "chunked"));
    assert_eq!(r.body, big);
    // Close-delimited upstream body: re-chunked for an HTTP/1.1 client, connection kept.
    let r = c.get("/close");
    assert_eq!((r.status, r.framing), (200, "chunked"));
    assert_eq!(r.body, big);
    assert_eq!(c.get("/chunked").body, big);
    // For an HTTP/1.0 client: raw body, then close.
    let mut c10 = Client::connect(proxy.addr());
    let r = c10.request("GET /close HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.framing), (200, "close"));
    assert_eq!(r.body, big);
}

#[test]
fn keep_alive_is_reused_on_both_sides() {
    both_drivers(|driver| {
        let origin = Origin::fixed("a", "ok");
        let proxy = Proxy::start_with(&simple_config(&[origin.addr], ""), driver);
        let mut c = Client::connect(proxy.addr());
        for _ in 0..20 {
            let r = c.get("/");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("connection"), None);
        }
        let got = origin.wait_requests(20);
        assert!(got.iter().all(|r| r.conn == got[0].conn));
        assert_eq!(origin.connections(), 1, "upstream connection not reused");
    });
}

#[test]
fn round_robin_alternates_over_two_origins() {
    let a = Origin::fixed("a", "A");
    let b = Origin::fixed("b", "B");
    let proxy = Proxy::start(&simple_config(&[a.addr, b.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let bodies: Vec<String> = (0..10).map(|_| c.get("/").text()).collect();
    for pair in bodies.windows(2) {
        assert_ne!(pair[0], pair[1], "not alternating: {bodies:?}");
    }
    assert_eq!(a.request_count(), 5);
    assert_eq!(b.request_count(), 5);
}

#[test]
fn unknown_route_is_404_and_keeps_the_connection() {
    let origin = Origin::fixed("a", "ok");
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\nname = \"app\"\n\
[[upstream.server]]\naddress = \"{}\"\n[[route]]\npath_prefix = \"/api\"\nupstream = \"app\"\n",
        origin.addr
    );
    let proxy = Proxy::start(&toml);
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/other");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    assert_eq!(c.get("/api/x").status, 200);
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn refused_upstream_is_502_without_leaking_its_address() {
    let dead = closed_port();
    let proxy = Proxy::start(&simple_config(&[dead], ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/");
    assert_eq!(r.status, 502);
    assert!(!r.text().contains(&dead.port().to_string()));
    assert!(!r.text().contains("127.0.0.1"));
    // The connection survives a 502.
    assert_eq!(c.get("/").status, 502);
}

#[test]
fn slow_upstream_is_504() {
    let origin =
        Origin::start(|_| Reply::Delayed(Duration::from_millis(1500), response(200, &[], b"late")));
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[timeouts]\nupstream_response_ms = 300\n",
    ));
    let mut c = Client::connect(proxy.addr());
    let started = std::time::Instant::now();
    let r = c.get("/");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1400));
}

#[test]
fn hop_by_hop_fields_are_stripped_both_ways_and_xff_appended() {
    let origin = Origin::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
Proxy-Authenticate: Basic\r\nTrailer: X\r\nUpgrade: foo\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.request(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\
Keep-Alive: 300\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n\
Proxy-Authorization: Basic abc\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\
X-End: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    for hop in [
        "connection",
        "x-resp-hop",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(r.header(hop), None, "response kept {hop}");
    }
    assert_eq!(r.header("x-end"), Some("kept"));
    assert_eq!(r.header("via"), Some("1.1 coregate"));
    let got = origin.wait_requests(1);
    let req = &got[0];
    for hop in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
    ] {
        assert_eq!(req.header(hop), None, "request kept {hop}");
    }
    assert_eq!(req.header("x-end"), Some("kept"));
    assert_eq!(
        req.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(req.header_count("x-forwarded-for"), 1);
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));
    assert_eq!(req.header("x-forwarded-host"), Some("h"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::start(|r| {
        // Make the first one slow so that order is not an accident of timing.
        let delay = if r.target == "/1" { 200 } else { 0 };
        Reply::Delayed(
            Duration::from_millis(delay),
            response(200, &[], r.target.as_bytes()),
        )
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let mut batch = String::new();
    for i in 1..=5 {
        batch.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n"));
    }
    batch.push_str("POST /6 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /7 HTTP/1.1\r\nHost: h\r\n\r\n");
    c.send(batch.as_bytes());
    for i in 1..=7 {
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), format!("/{i}"));
    }
    let got = origin.wait_requests(7);
    let targets: Vec<_> = got.iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/1", "/2", "/3", "/4", "/5", "/6", "/7"]);
    assert_eq!(got[5].body, b"abc");
}

#[test]
fn no_body_responses_head_204_304() {
    let origin = Origin::start(|r| {
        Reply::Bytes(match r.target.as_str() {
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec(),
            _ if r.method == "HEAD" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        })
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.request("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    let r = c.get("/204");
    assert_eq!(
        (
            r.status,
            r.header("content-length"),
            r.header("transfer-encoding")
        ),
        (204, None, None)
    );
    let r = c.get("/304");
    assert_eq!((r.status, r.header("content-length")), (304, Some("10")));
    // The connection is still in sync after the body-less answers.
    let r = c.get("/");
    assert_eq!(r.body, b"hello");
    assert_eq!(origin.connections(), 1);
}

#[test]
fn expect_100_continue_gets_an_interim_answer_before_the_body() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    c.send(b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.read_response_raw(false).unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"data");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"data"[..]));
    let got = origin.wait_requests(1);
    assert_eq!(got[0].header("expect"), None);
    // A body too large is refused without the 100.
    c.send(b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n");
    let r = c.read_response_raw(false).unwrap();
    assert_eq!(r.status, 413);
}

#[test]
fn http10_client_is_served_and_closed() {
    let origin = Origin::fixed("a", "hi");
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let raw = send_raw(proxy.addr(), b"GET / HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Connection: close\r\n"));
    assert!(text.ends_with("\r\n\r\nhi"));
    let got = origin.wait_requests(1);
    assert_eq!(got[0].version, "HTTP/1.1");
    assert_eq!(got[0].header("host"), Some(&*origin.addr.to_string()));
    assert_eq!(got[0].header("via"), Some("1.0 coregate"));
    // HTTP/1.0 with keep-alive stays open.
    let mut c = Client::connect(proxy.addr());
    let r = c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(
        c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn stale_pooled_connection_is_retried_once() {
    // The origin closes each connection right after answering, without saying so.
    let origin = Origin::start(|_| Reply::BytesThenClose(response(200, &[], b"ok")));
    let proxy = Proxy::start(&simple_config(&[origin.addr], "[server]\nworkers = 1\n"));
    let mut c = Client::connect(proxy.addr());
    for _ in 0..5 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(origin.request_count(), 5);
}

#[test]
fn static_route_answers_without_upstream() {
    let toml = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[route]]\npath_prefix = \"/\"\n\
respond = { status = 200, body = \"hello\", content_type = \"text/plain\" }\n";
    let proxy = Proxy::start(toml);
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/anything");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let r = c.request("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    let r = c.request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn empty_bodies_keep_content_length_zero() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.request("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        (r.status, r.header("content-length"), r.framing),
        (200, Some("0"), "length")
    );
    let got = origin.wait_requests(1);
    assert_eq!(got[0].header("content-length"), Some("0"));
}

#[test]
fn default_config_answers_through_routing() {
    let shipped = std::fs::read_to_string("config/coregate.toml").unwrap();
    assert!(shipped.contains("listen = \"127.0.0.1:8080\""));
    let proxy = Proxy::start(&shipped.replace("127.0.0.1:8080", "127.0.0.1:0"));
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("coregate"));
    assert_eq!(c.get("/healthz").text(), "ok\n");
}

/// A Content-Length body that arrives with its head goes out without being copied: the
/// proxy's head is put in front of it in the upstream read buffer. Whatever the two heads'
/// sizes (a proxy head longer than the upstream's, needing the buffer's headroom; one too
/// long for it, which falls back to copying), every byte arrives, in order, on every
/// response of a reused upstream connection, and the cache's copy holds the same body.
#[test]
fn large_bodies_arrive_intact_whatever_the_head_sizes() {
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    let reply = body.clone();
    // The shortest head an origin can send: coregate's own (with `Via`) is longer.
    let origin = Origin::start(move |_| {
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len()).into_bytes();
        out.extend_from_slice(&reply);
        Reply::Bytes(out)
    });
    let long = "v".repeat(600);
    let cases = [
        ("headroom".to_string(), String::new()),
        (
            "too long for it".to_string(),
            format!("response_headers = {{ add = {{ \"x-long\" = \"{long}\" }} }}"),
        ),
        ("cached".to_string(), "cache = { ttl_s = 60 }".to_string()),
    ];
    for (case, keys) in &cases {
        for driver in [Driver::Auto, Driver::Legacy] {
            let cfg = cached_config(origin.addr, keys, "");
            let proxy = Proxy::start_with(&cfg, driver);
            let mut c = Client::connect(proxy.addr());
            for i in 0..4 {
                let r = c.get(&format!("/big?{i}"));
                let what = format!("{case}, {driver:?}, response {i}");
                assert_eq!(r.status, 200, "{what}");
                assert_eq!(r.header("content-length"), Some("40000"), "{what}");
                assert!(r.body == body, "{what}: body differs");
                if case == "too long for it" {
                    assert_eq!(r.header("x-long"), Some(long.as_str()), "{what}");
                }
            }
            if case == "cached" {
                let again = c.get("/big?0");
                assert_eq!(again.header("x-cache"), Some("HIT"));
                assert!(again.body == body, "cached copy differs ({driver:?})");
            }
        }
    }
    // The upstream connection was reused, so later responses went through a buffer whose
    // headroom had been written over.
    assert!(
        origin.connections() <= 6,
        "{} connections",
        origin.connections()
    );
}
