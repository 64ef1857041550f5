//! Fault injection with real origins: servers that reset mid-body, close before answering, cut a
//! chunked body short, answer garbage, answer too slowly, never read, or flood headers. Every
//! case gives the client a clean 502/504, or a closed connection when the response had started;
//! a bystander client on the same shard is served throughout; and the proxy's file descriptors
//! return to their count before the faults. Cases are rows of a table: add rows for new faults.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::*;

/// What the client must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A complete response with this status.
    Status(u16),
    /// The response head arrived, then the connection closed before the body was complete.
    Cut,
}

/// (request target, what the origin does is chosen by the target, what the client sees)
const CASES: &[(&str, Seen)] = &[
    ("/close-before-answer", Seen::Status(502)),
    ("/reset-before-answer", Seen::Status(502)),
    ("/garbage-status-line", Seen::Status(502)),
    ("/header-flood", Seen::Status(502)),
    ("/header-count-flood", Seen::Status(502)),
    ("/slower-than-timeout", Seen::Status(504)),
    ("/reset-mid-body", Seen::Cut),
    ("/close-mid-body", Seen::Cut),
    ("/truncated-chunked", Seen::Cut),
    ("/stall-mid-body", Seen::Cut),
];

/// upstream_response_ms in this file's config; the slow origin waits well past it.
const RESPONSE_MS: u64 = 1500;

/// One flag per case, set once the client has seen the response head.
type Released = Arc<Vec<AtomicBool>>;

fn case_index(target: &str) -> usize {
    CASES.iter().position(|c| c.0 == target).unwrap_or(0)
}

/// The misbehaving origin: reads a request head and does what its target names. Cases that
/// cut a body short wait for their `released` flag (set once the client has seen the head), so
/// the cut lands after the response started, without sleeping to synchronise.
fn faulty_origin(released: Released) -> RawOrigin {
    RawOrigin::start(move |mut s, _| {
        let Some(head) = read_request_bytes(&mut s) else {
            return;
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let target = text.split(' ').nth(1).unwrap_or("").to_string();
        let flag = &released[case_index(&target)];
        let wait_release = || poll_until(DEADLINE, || flag.load(Ordering::SeqCst));
        match target.as_str() {
            "/close-before-answer" => drop(s),
            "/reset-before-answer" => reset(s),
            "/garbage-status-line" => write_quiet(&mut s, b"\x00\x01garbage\r\n\r\n"),
            "/header-flood" => {
                write_quiet(&mut s, b"HTTP/1.1 200 OK\r\n");
                let line = format!("X-Flood: {}\r\n", "a".repeat(1000));
                for _ in 0..1000 {
                    if s.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
            }
            "/header-count-flood" => {
                write_quiet(&mut s, b"HTTP/1.1 200 OK\r\n");
                write_quiet(&mut s, "X: y\r\n".repeat(5000).as_bytes());
            }
            "/slower-than-timeout" => {
                // The origin is slow on purpose: this sleep is the fault, not a synchronisation.
                #[allow(clippy::disallowed_methods)]
                thread::sleep(Duration::from_millis(RESPONSE_MS * 3));
                write_quiet(&mut s, &response(200, &[], b"late"));
            }
            "/reset-mid-body" | "/close-mid-body" | "/stall-mid-body" => {
                write_quiet(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
                write_quiet(&mut s, &[b'x'; 1000]);
                wait_release();
                match target.as_str() {
                    "/reset-mid-body" => reset(s),
                    "/close-mid-body" => drop(s),
                    // Stall: hold the connection open, silent, until the proxy gives up on it.
                    _ => {
                        let mut sink = [0u8; 64];
                        let _ = s.read(&mut sink);
                    }
                }
            }
            "/truncated-chunked" => {
                write_quiet(
                    &mut s,
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                write_quiet(&mut s, b"5\r\nhello\r\n5\r\nhel");
                wait_release();
            }
            _ => write_quiet(&mut s, &response(404, &[], b"unknown case")),
        }
    })
}

/// An origin that accepts connections and never reads from them.
fn deaf_origin() -> RawOrigin {
    RawOrigin::start(|s, _| {
        let stop = Arc::new(AtomicBool::new(false));
        poll_until(Duration::from_secs(30), || stop.load(Ordering::SeqCst));
        drop(s);
    })
}

fn config(faulty: SocketAddr, deaf: SocketAddr, healthy: SocketAddr) -> String {
    format!(
        "[server]\nworkers = 1\n[timeouts]\nupstream_response_ms = {RESPONSE_MS}\n\
upstream_idle_ms = 1000\n[limits]\nbody_bytes_max = 67108864\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n\
[[upstream]]\nname = \"faulty\"\n[[upstream.server]]\naddress = \"{faulty}\"\n\
[[upstream]]\nname = \"deaf\"\n[[upstream.server]]\naddress = \"{deaf}\"\n\
[[upstream]]\nname = \"healthy\"\n[[upstream.server]]\naddress = \"{healthy}\"\n\n\
[[route]]\nupstream = \"faulty\"\n\
[[route]]\npath_prefix = \"/deaf\"\nupstream = \"deaf\"\n\
[[route]]\npath_prefix = \"/healthy\"\nupstream = \"healthy\"\n"
    )
}

/// Read from `s` until `pattern` has been seen; returns everything read. None at EOF first.
fn read_until(s: &mut TcpStream, pattern: &[u8]) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(pattern.len()).any(|w| w == pattern) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

/// Run one case on its own connection; `released` lets a cutting origin go on.
fn run_case(addr: SocketAddr, target: &str, seen: Seen, released: &Released) {
    let mut c = Client::connect(addr);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    match seen {
        Seen::Status(status) => {
            let r = c.read_response(false);
            assert_eq!(r.map(|r| r.status), Some(status), "{target}");
            // A clean error keeps the client connection usable.
            assert_eq!(c.get("/healthy").status, 200, "{target}: connection after");
        }
        Seen::Cut => {
            let head = read_until(&mut c.stream, b"\r\n\r\n");
            let head = head.unwrap_or_else(|| panic!("{target}: no response head"));
            assert!(head.starts_with(b"HTTP/1.1 200"), "{target}");
            released[case_index(target)].store(true, Ordering::SeqCst);
            // Then the connection closes: the body never completes.
            let mut rest = Vec::new();
            let _ = c.stream.read_to_end(&mut rest);
            assert!(
                head.len() + rest.len() < 100_000,
                "{target}: body completed"
            );
        }
    }
}

#[test]
fn every_upstream_fault_gets_a_clean_answer_and_frees_its_resources() {
    let released: Released = Arc::new(CASES.iter().map(|_| AtomicBool::new(false)).collect());
    let faulty = faulty_origin(released.clone());
    let deaf = deaf_origin();
    let healthy = Origin::fixed("healthy", "ok");
    let proxy = Proxy::start(&config(faulty.addr, deaf.addr, healthy.addr));
    let baseline = socket_count(proxy.pid());
    let addr = proxy.addr();

    // A bystander on the same shard, served throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let bystander = {
        let (stop, served) = (stop.clone(), served.clone());
        thread::spawn(move || {
            let mut c = Client::connect(addr);
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                assert_eq!(c.get("/healthy").text(), "ok", "bystander");
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let cases: Vec<_> = CASES
        .iter()
        .map(|&(target, seen)| {
            let released = released.clone();
            thread::spawn(move || run_case(addr, target, seen, &released))
        })
        .collect();
    let deaf_case = thread::spawn(move || {
        // The request fits in socket buffers; the answer never comes.
        let mut c = Client::connect(addr);
        assert_eq!(c.get("/deaf/small").status, 504);
    });
    for (case, (target, _)) in cases.into_iter().zip(CASES) {
        assert!(case.join().is_ok(), "case {target} failed");
    }
    assert!(deaf_case.join().is_ok(), "deaf origin case failed");
    stop.store(true, Ordering::SeqCst);
    assert!(bystander.join().is_ok(), "bystander failed");
    assert!(served.load(Ordering::SeqCst) > 0);

    // Everything the faults opened is closed again (idle pooled connections expire in 1 s).
    assert_sockets_return(proxy.pid(), baseline, "after faults");
    eprintln!(
        "faults: bystander served {} requests; proxy fds {}, RSS {} KiB, peak {} KiB",
        served.load(Ordering::SeqCst),
        fd_count(proxy.pid()),
        rss_kib(proxy.pid()),
        proxy.peak_rss_kib()
    );
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

/// An upload to an origin that never reads: the proxy's writes stall, it gives up after the
/// response timeout and answers 504 while the client is still sending, then closes; the client
/// reads the 504 before the reset that closing with unread data causes.
#[test]
fn upload_to_an_origin_that_never_reads_is_cut_off() {
    let deaf = deaf_origin();
    let healthy = Origin::fixed("healthy", "ok");
    let faulty = faulty_origin(Arc::new(Vec::new()));
    let proxy = Proxy::start(&config(faulty.addr, deaf.addr, healthy.addr));
    let baseline = socket_count(proxy.pid());
    let mut c = Client::connect(proxy.addr());
    let size = 32 * 1024 * 1024;
    let sender = {
        let mut s = c.stream.try_clone().unwrap();
        thread::spawn(move || {
            let head =
                format!("POST /deaf/big HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n");
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
    assert_eq!(r.status, 504);
    assert_eq!(r.header("connection"), Some("close"));
    drop(c);
    let _ = sender.join();
    assert_eq!(Client::connect(proxy.addr()).get("/healthy").status, 200);
    assert_sockets_return(proxy.pid(), baseline, "after the stalled upload");
}
