//! Protection, over real sockets: CIDR allow/deny per listener (closed before reading) and
//! per route (403), slowloris cut off at the header timeout while others are served, a slow
//! POST cut off below the minimum body rate, the per-IP connection limit, per-route body
//! limits, and hiding the servers (Server / X-Powered-By, error pages without addresses).

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn listener_deny_closes_before_reading() {
    let origin = Origin::fixed("o", "ok");
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\ndeny = [\"127.0.0.2/32\"]\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{}\"\n[[route]]\nupstream = \"app\"\n",
        origin.addr
    );
    let proxy = Proxy::start(&toml);
    let mut denied = Client::connect_from(proxy.addr(), ip("127.0.0.2"));
    // Whatever it sends, nothing comes back: the connection is closed at accept.
    let _ = denied
        .stream
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(denied.is_closed());
    assert_eq!(
        Client::connect_from(proxy.addr(), ip("127.0.0.3"))
            .get("/")
            .status,
        200
    );
    assert_eq!(Client::connect(proxy.addr()).get("/").status, 200);
    assert_eq!(origin.request_count(), 2);
}

#[test]
fn route_allow_and_deny_answer_403() {
    let origin = Origin::fixed("o", "ok");
    let extra = "[[route]]\nname = \"admin\"\npath_prefix = \"/admin\"\nupstream = \"app\"\n\
allow = [\"127.0.0.0/30\"]\ndeny = [\"127.0.0.2\"]\n";
    let proxy = Proxy::start(&simple_config(&[origin.addr], extra));
    let status_from = |from: &str, path: &str| {
        Client::connect_from(proxy.addr(), ip(from))
            .get(path)
            .status
    };
    assert_eq!(status_from("127.0.0.1", "/admin/x"), 200);
    assert_eq!(status_from("127.0.0.3", "/admin/x"), 200);
    assert_eq!(
        status_from("127.0.0.2", "/admin/x"),
        403,
        "deny wins over allow"
    );
    assert_eq!(status_from("127.0.0.9", "/admin/x"), 403, "not in allow");
    assert_eq!(
        status_from("127.0.0.9", "/public"),
        200,
        "other routes unaffected"
    );
    // A refused request keeps the connection and never reaches the origin.
    let mut c = Client::connect_from(proxy.addr(), ip("127.0.0.9"));
    assert_eq!(c.get("/admin/a").status, 403);
    assert_eq!(c.get("/admin/b").status, 403);
    assert_eq!(c.get("/ok").status, 200);
    assert_eq!(origin.count_to("/admin"), 2);
}

/// One header byte a second: cut off at `client_header_ms` (408), while a normal client on
/// the same single shard is served throughout.
#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\nworkers = 1\n[timeouts]\nclient_header_ms = 2500\n",
    ));
    let addr = proxy.addr();
    let slow = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        let started = Instant::now();
        let head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut answer = Vec::new();
        for b in head.iter().take(20) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            // Paced at a byte a second; a read doubles as the pause and sees the cut-off.
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if !answer.is_empty() {
                let _ = s.read_to_end(&mut answer);
                break;
            }
        }
        (started.elapsed(), answer)
    });
    // Meanwhile, normal requests keep being answered.
    let mut served = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(Client::connect(proxy.addr()).get("/fast").status, 200);
        served += 1;
    }
    let (took, answer) = slow.join().unwrap();
    assert!(served >= 5, "only {served} normal requests served");
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(took >= Duration::from_millis(2000), "cut after {took:?}");
    assert!(took < Duration::from_secs(12), "cut after {took:?}");
    assert_eq!(origin.count_to("/fast"), served);
    assert_eq!(
        origin.request_count(),
        served,
        "the slow request never reached the origin"
    );
}

/// A body trickling at 100 B/s with a floor of 2000 B/s (1 s windows) is cut off with 408;
/// the same body sent at once passes.
#[test]
fn slow_post_below_the_minimum_rate_is_cut_off() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[limits]\nclient_body_rate_min_bytes_per_s = 2000\nclient_body_rate_window_ms = 1000\n",
    ));
    let body = vec![b'x'; 20_000];
    let mut fast = Client::connect(proxy.addr());
    let head = format!(
        "POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    fast.send(head.as_bytes());
    fast.send(&body);
    let r = fast.read_response(false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, body.len()));

    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let head = "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 20000\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        if s.write_all(&[b'y'; 10]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {} // 100 ms pause, nothing to read yet
        }
    }
    let took = started.elapsed();
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");
    assert!(took < Duration::from_secs(8), "cut after {took:?}");
}

#[test]
fn per_ip_connection_limit_holds() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\nworkers = 1\n[limits]\nconnections_per_ip_max = 2\n",
    ));
    let mut a = Client::connect(proxy.addr());
    let mut b = Client::connect(proxy.addr());
    assert_eq!(a.get("/a").status, 200);
    assert_eq!(b.get("/b").status, 200);
    let mut third = Client::connect(proxy.addr());
    let _ = third
        .stream
        .write_all(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        third.is_closed(),
        "a third connection from one IP was accepted"
    );
    // Another client IP is not affected.
    assert_eq!(
        Client::connect_from(proxy.addr(), ip("127.0.0.5"))
            .get("/d")
            .status,
        200
    );
    // Once one closes, the IP may connect again.
    drop(a);
    wait_until(DEADLINE, "a freed slot for 127.0.0.1", || {
        let mut c = Client::connect(proxy.addr());
        c.send(b"GET /e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        c.read_response(false).is_some_and(|r| r.status == 200)
    });
    assert_eq!(b.get("/b2").status, 200);
    assert_eq!(origin.count_to("/c"), 0);
}

#[test]
fn route_body_limits() {
    let origin = Origin::echo();
    let extra = "[[route]]\nname = \"small\"\npath_prefix = \"/small\"\nupstream = \"app\"\n\
body_bytes_max = 10\n[[route]]\nname = \"upload\"\npath_prefix = \"/upload\"\nupstream = \"app\"\n\
body_bytes_max = 5000\n[limits]\nbody_bytes_max = 100\n";
    let proxy = Proxy::start(&simple_config(&[origin.addr], extra));
    let post = |path: &str, n: usize, chunked: bool| {
        let mut c = Client::connect(proxy.addr());
        let body = "z".repeat(n);
        let req = if chunked {
            format!("POST {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n")
        } else {
            format!("POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {n}\r\n\r\n{body}")
        };
        c.request(&req).status
    };
    assert_eq!(post("/small", 10, false), 200);
    assert_eq!(post("/small", 11, false), 413);
    assert_eq!(post("/small", 11, true), 413);
    assert_eq!(post("/other", 100, false), 200);
    assert_eq!(
        post("/other", 101, false),
        413,
        "the global limit elsewhere"
    );
    assert_eq!(post("/upload", 4000, false), 200, "a route may allow more");
    assert_eq!(post("/upload", 4000, true), 200);
    assert_eq!(post("/upload", 5001, true), 413);
}

#[test]
fn upstream_server_fields_are_hidden() {
    let origin = Origin::start(|_| {
        Reply::Bytes(response(
            200,
            &[
                ("Server", "Apache/2.4.1 (Unix)"),
                ("X-Powered-By", "PHP/5.2"),
                ("X-Kept", "1"),
            ],
            b"ok",
        ))
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let r = Client::connect(proxy.addr()).get("/");
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-powered-by"), None);
    assert_eq!(r.header("x-kept"), Some("1"));
    assert_eq!(r.header("via"), Some("1.1 coregate"));

    let named = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\nserver_header = \"coregate\"\nhide_response_headers = [\"x-kept\"]\n",
    ));
    let r = Client::connect(named.addr()).get("/");
    assert_eq!(r.header("server"), Some("coregate"));
    assert_eq!(r.header("x-kept"), None);
    assert_eq!(
        r.header("x-powered-by"),
        Some("PHP/5.2"),
        "the list was replaced"
    );

    let open = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\nhide_response_headers = []\n",
    ));
    let r = Client::connect(open.addr()).get("/");
    assert_eq!(r.header("server"), Some("Apache/2.4.1 (Unix)"));
}

#[test]
fn error_pages_never_name_the_upstream() {
    let dead = closed_port();
    let slow =
        Origin::start(|_| Reply::Delayed(Duration::from_secs(3), response(200, &[], b"late")));
    let extra = format!(
        "[[upstream]]\nname = \"slow\"\n[[upstream.server]]\naddress = \"{}\"\n\
[[route]]\nname = \"slow\"\npath_prefix = \"/slow\"\nupstream = \"slow\"\n\
[timeouts]\nupstream_response_ms = 300\n",
        slow.addr
    );
    let proxy = Proxy::start(&simple_config(&[dead], &extra));
    for (path, status, addr) in [("/", 502, dead), ("/slow", 504, slow.addr)] {
        let mut c = Client::connect(proxy.addr());
        c.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, status);
        let all = format!("{:?}{}", r.headers, r.text());
        assert!(!all.contains(&addr.port().to_string()), "{all}");
        assert!(!all.contains("127.0.0.1"), "{all}");
    }
}
