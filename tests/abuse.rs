//! Slow and abusive clients: slowloris, slow readers, header floods, 10,000 idle connections and
//! connection churn. In every case a well-behaved client is served meanwhile, the abusers are
//! cut off by the configured timeouts and limits, the proxy's sockets return to their count
//! before, and its memory stays bounded (printed: run with --nocapture to see the figures).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Short timeouts so that abusers are cut off quickly.
const TIMEOUTS: &str = "[timeouts]\nclient_header_ms = 1000\nclient_send_ms = 1000\n\
upstream_idle_ms = 1000\n";

/// A well-behaved client must be served while the abuse goes on: `n` requests, each answered.
fn served_meanwhile(addr: SocketAddr, n: usize) {
    let mut c = Client::connect(addr);
    for i in 0..n {
        let r = c.get("/");
        assert_eq!(r.status, 200, "served client, request {i}");
    }
}

fn report(what: &str, proxy: &Proxy, baseline_kib: u64) {
    eprintln!(
        "{what}: proxy RSS {} KiB (baseline {baseline_kib} KiB, peak {} KiB), {} fds",
        rss_kib(proxy.pid()),
        proxy.peak_rss_kib(),
        fd_count(proxy.pid())
    );
}

#[test]
fn slowloris_is_cut_off_by_the_header_timeout() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(&[origin.addr], TIMEOUTS));
    let sockets = socket_count(proxy.pid());
    let rss = rss_kib(proxy.pid());
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr()).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
            s
        })
        .collect();
    // One header line per connection every 100 ms: never a complete head. The pause paces the
    // attack; it synchronises nothing.
    let start = Instant::now();
    let mut open = slow.len();
    for _ in 0..100 {
        open = 0;
        for s in &mut slow {
            if s.write_all(b"X-Slow: 1\r\n").is_ok() {
                open += 1;
            }
        }
        served_meanwhile(proxy.addr(), 2);
        if open == 0 {
            break;
        }
        #[allow(clippy::disallowed_methods)] // pacing the attack (see above)
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(open, 0, "slowloris connections still open");
    assert!(start.elapsed() < Duration::from_secs(8), "cut off late");
    // Each got a 408 (or a reset when the answer raced its writes).
    for mut s in slow {
        let mut got = Vec::new();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty() || status_of(&got) == Some(408), "{got:?}");
    }
    assert_sockets_return(proxy.pid(), sockets, "after slowloris");
    report("slowloris x200", &proxy, rss);
}

#[test]
fn slow_readers_are_cut_off_and_hold_bounded_memory() {
    let body = vec![b'b'; 4 * 1024 * 1024];
    let big = response(200, &[], &body);
    let origin = Origin::start(move |r| {
        if r.target == "/big" {
            Reply::Bytes(big.clone())
        } else {
            Reply::Bytes(response(200, &[], b"ok"))
        }
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], TIMEOUTS));
    let sockets = socket_count(proxy.pid());
    let rss = rss_kib(proxy.pid());
    // 20 clients ask for 4 MiB each and never read a byte.
    let readers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr()).unwrap();
            s.write_all(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    served_meanwhile(proxy.addr(), 20);
    // The proxy gives up on them after client_send_ms, while they are still connected.
    assert_sockets_return(proxy.pid(), sockets, "slow readers still held");
    report("slow read x20 (4 MiB each)", &proxy, rss);
    let grown = proxy.peak_rss_kib().saturating_sub(rss);
    assert!(
        grown < 32 * 1024,
        "proxy grew by {grown} KiB for 20 stalled 4 MiB responses"
    );
    drop(readers);
    served_meanwhile(proxy.addr(), 5);
}

#[test]
fn header_floods_get_431_with_bounded_memory() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(&[origin.addr], TIMEOUTS));
    let sockets = socket_count(proxy.pid());
    let rss = rss_kib(proxy.pid());
    let floods: Vec<_> = (0..50)
        .map(|_| {
            let addr = proxy.addr();
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n");
                let line = format!("X-Flood: {}\r\n", "f".repeat(100));
                // Up to 1 MiB of fields; the proxy stops reading at header_bytes_max.
                for _ in 0..10_000 {
                    if s.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                got
            })
        })
        .collect();
    served_meanwhile(proxy.addr(), 20);
    for f in floods {
        let got = f.join().unwrap();
        // 431, or a reset when the close raced the client's writes.
        assert!(got.is_empty() || status_of(&got) == Some(431), "{got:?}");
    }
    assert_sockets_return(proxy.pid(), sockets, "after header floods");
    report("header flood x50 (1 MiB each)", &proxy, rss);
    let grown = proxy.peak_rss_kib().saturating_sub(rss);
    assert!(grown < 32 * 1024, "proxy grew by {grown} KiB");
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_service() {
    const IDLE: usize = 10_000;
    let limit = raise_nofile();
    assert!(
        limit as usize > IDLE + 500,
        "this test needs an open-file hard limit above {} (have {limit})",
        IDLE + 500
    );
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[timeouts]\nupstream_idle_ms = 1000\n",
    ));
    assert!(
        nofile_of(proxy.pid()) as usize > IDLE + 100,
        "the proxy did not raise its open-file limit: {}",
        nofile_of(proxy.pid())
    );
    let sockets = socket_count(proxy.pid());
    let rss = rss_kib(proxy.pid());
    let start = Instant::now();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect(proxy.addr()).unwrap_or_else(|e| panic!("connect {i}: {e}")))
        .collect();
    let accepted = poll_until(Duration::from_secs(30), || {
        socket_count(proxy.pid()) >= sockets + IDLE
    });
    assert!(
        accepted,
        "proxy holds {} sockets",
        socket_count(proxy.pid())
    );
    eprintln!("{IDLE} idle connections opened in {:?}", start.elapsed());
    let t = Instant::now();
    served_meanwhile(proxy.addr(), 50);
    eprintln!("50 requests beside them in {:?}", t.elapsed());
    report("10k idle connections", &proxy, rss);
    let per_conn = rss_kib(proxy.pid()).saturating_sub(rss) * 1024 / IDLE as u64;
    eprintln!("about {per_conn} bytes of RSS per idle connection");
    assert!(per_conn < 32 * 1024, "{per_conn} bytes per idle connection");
    drop(idle);
    assert_sockets_return(proxy.pid(), sockets, "after closing the idle connections");
    served_meanwhile(proxy.addr(), 5);
}

#[test]
fn connection_churn_leaves_nothing_behind() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(&[origin.addr], TIMEOUTS));
    let sockets = socket_count(proxy.pid());
    let rss = rss_kib(proxy.pid());
    let start = Instant::now();
    let churners: Vec<_> = (0..4)
        .map(|t| {
            let addr = proxy.addr();
            thread::spawn(move || {
                for i in 0..1500 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    match (t + i) % 4 {
                        0 => drop(s),
                        1 => reset(s),
                        2 => write_quiet(&mut s, b"GET / HTTP/1.1\r\nHo"),
                        // A whole request, then gone before the answer.
                        _ => {
                            write_quiet(&mut s, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
                            reset(s);
                        }
                    }
                }
            })
        })
        .collect();
    served_meanwhile(proxy.addr(), 50);
    for c in churners {
        c.join().unwrap();
    }
    eprintln!("6000 churned connections in {:?}", start.elapsed());
    served_meanwhile(proxy.addr(), 5);
    assert_sockets_return(proxy.pid(), sockets, "after churn");
    report("churn x6000", &proxy, rss);
    assert!(!proxy.log().contains("panicked"));
}

/// A client uploading far more than body_bytes_max reads its 413: coregate answers at once and
/// closes; the answer arrives before the reset that closing with unread data causes.
#[test]
fn oversized_upload_reads_its_413() {
    let origin = Origin::fixed("o", "ok");
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[limits]\nbody_bytes_max = 100000\n",
    ));
    let size = 8 * 1024 * 1024;
    let mut c = Client::connect(proxy.addr());
    let sender = {
        let mut s = c.stream.try_clone().unwrap();
        thread::spawn(move || {
            let head = format!("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..size / chunk.len() {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    let r = c.read_response(false).expect("an answer, not a reset");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    let _ = sender.join();
    assert_eq!(origin.request_count(), 0);
}
