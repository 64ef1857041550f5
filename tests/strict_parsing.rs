//! RFC 9112 strictness at the edge: every ambiguous or malformed request is answered with the
//! right status, the connection is closed, and the origin receives nothing at all.

mod support;

use support::*;

/// (name, raw request, expected status)
const CASES: &[(&str, &str, u16)] = &[
    ("CL.TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400),
    ("TE.CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nA\r\n0\r\n\r\n", 400),
    ("two differing CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("CL list differing", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    ("empty CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400),
    ("signed CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("overflowing CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551617\r\n\r\na", 400),
    ("TE chunked, identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("TE gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("TE xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE repeated", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE space before colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE tab before colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE vertical tab value", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("invalid chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("overflowing chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size with 0x", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("bare LF after chunk data", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400),
    ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    ("leading whitespace field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
    ("bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400),
    ("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", 400),
    ("DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n", 400),
    ("control in name", "GET / HTTP/1.1\r\nHost: h\r\nX\x01A: b\r\n\r\n", 400),
    ("empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", 400),
    ("no colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
    ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
    ("repeated Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400),
    ("invalid method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("invalid target", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("junk version", "GET / HTTQ/1.1\r\nHost: h\r\n\r\n", 400),
    ("garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n", 400),
    ("CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405),
    ("HTTP/2 line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ("unknown expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n", 417),
];

#[test]
fn every_malformed_request_is_refused_and_nothing_is_forwarded() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    for (name, raw, want) in CASES {
        let t = std::time::Instant::now();
        let answer = send_raw(proxy.addr(), raw.as_bytes());
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), Some(*want), "{name}: got {text:?}");
        assert!(
            text.contains("Connection: close\r\n"),
            "{name}: not closed: {text:?}"
        );
        // Exactly one response: nothing after it was processed as a request.
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{name}: {text:?}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{name}: slow answer"
        );
    }
    // A well-formed request still works: the shard survived every case.
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/").status, 200);
    assert_eq!(
        origin.request_count(),
        1,
        "origin received a malformed request"
    );
}

#[test]
fn limits_give_the_usual_statuses() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[limits]\nheader_bytes_max = 4096\nheader_count_max = 10\nuri_bytes_max = 100\nbody_bytes_max = 1000\n",
    ));
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "long uri",
            format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(200)),
            414,
        ),
        (
            "endless request line",
            format!("GET /{}", "a".repeat(5000)),
            414,
        ),
        (
            "big head",
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
                "v".repeat(5000)
            ),
            431,
        ),
        (
            "too many fields",
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
                "X-A: 1\r\n".repeat(11)
            ),
            431,
        ),
        (
            "big CL body",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n".to_string(),
            413,
        ),
    ];
    for (name, raw, want) in &cases {
        let answer = send_raw(proxy.addr(), raw.as_bytes());
        assert_eq!(
            status_of(&answer),
            Some(*want),
            "{name}: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // A chunked body over the limit is cut off with 413 while streaming.
    let mut c = Client::connect(proxy.addr());
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        c.send(b"190\r\n");
        c.send(&[b'x'; 400]);
        c.send(b"\r\n");
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    // Just under the limits passes.
    let mut c = Client::connect(proxy.addr());
    let r = c.request(&format!(
        "GET /{} HTTP/1.1\r\nHost: h\r\n{}\r\n",
        "a".repeat(99),
        "X-A: 1\r\n".repeat(9)
    ));
    assert_eq!(r.status, 200);
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn bad_upstream_framing_is_502_not_a_desync() {
    let origin = Origin::start(|r| {
        Reply::BytesThenClose(match r.target.as_str() {
            "/dup-cl" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec()
            }
            "/bad-te" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc".to_vec(),
            "/garbage" => b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
            "/fold" => {
                b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 1\r\n\r\na".to_vec()
            }
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        })
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    for path in ["/dup-cl", "/bad-te", "/garbage", "/fold"] {
        assert_eq!(c.get(path).status, 502, "{path}");
    }
    assert_eq!(c.get("/ok").body, b"ok");
}
