//! Process-level behaviour: bounded memory while streaming large bodies, graceful shutdown,
//! connection tasks kept from one client to the next.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::ops::*;
use support::*;

/// 10 MiB up and 10 MiB down through the proxy, while its resident memory stays far below the
/// body size: bodies are streamed through fixed buffers, never held whole.
#[test]
fn ten_mib_bodies_stream_with_bounded_memory() {
    const SIZE: usize = 10 * 1024 * 1024;
    let origin = Origin::start(|r| {
        // Answer with a 10 MiB body of our own, after having received 10 MiB.
        assert_eq!(r.body.len(), SIZE);
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").into_bytes();
        resp.extend(std::iter::repeat_n(b'd', SIZE));
        Reply::Bytes(resp)
    });
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[limits]\nbody_bytes_max = 20000000\n",
    ));
    let baseline = proxy.peak_rss_kib();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let sender = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            s.write_all(
                format!("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: {SIZE}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..SIZE / chunk.len() {
                s.write_all(&chunk).unwrap();
            }
        })
    };
    // Read the whole answer: head, then exactly SIZE body bytes.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut body_start = None;
    while Instant::now() < deadline {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "proxy closed early");
        got.extend_from_slice(&buf[..n]);
        if body_start.is_none() {
            body_start = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
        if let Some(b) = body_start {
            if got.len() - b >= SIZE {
                break;
            }
        }
    }
    sender.join().unwrap();
    let b = body_start.expect("response head");
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert_eq!(got.len() - b, SIZE);
    assert!(got[b..].iter().all(|&x| x == b'd'));
    let grown = proxy.peak_rss_kib().saturating_sub(baseline);
    assert!(
        grown < 4 * 1024,
        "proxy memory grew by {grown} KiB while streaming 2 × 10 MiB"
    );
    assert_eq!(origin.received()[0].body.len(), SIZE);
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    let origin = Origin::start(|_| {
        Reply::Delayed(Duration::from_millis(700), response(200, &[], b"finished"))
    });
    let mut proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\ndrain_timeout_ms = 5000\n",
    ));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    origin.wait_requests(1);
    proxy.signal(libc::SIGTERM);
    let r = c.read_response(false).expect("in-flight request finished");
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(5)),
        Some(0),
        "log:\n{}",
        proxy.log()
    );
    // No longer accepting.
    assert!(TcpStream::connect(proxy.addr()).is_err());
}

#[test]
fn shutdown_with_idle_connections_is_prompt() {
    let origin = Origin::fixed("a", "ok");
    let mut proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut idle = Client::connect(proxy.addr());
    assert_eq!(idle.get("/").status, 200);
    let t = Instant::now();
    proxy.signal(libc::SIGINT);
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(idle.is_closed());
}

/// A stopped coregate has freed its port by the time its process is gone, so a restart binds at
/// once. With io_uring, a listener's pending accept held its socket until the kernel tore down
/// the ring, some milliseconds after the exit: a kill-then-start loop failed about 1 start in 5
/// with "address in use" (`listener::close`). Ten rounds, each with clients connected.
#[test]
fn port_is_free_when_the_process_has_exited() {
    let origin = Origin::fixed("a", "ok");
    for round in 0..10 {
        let mut proxy = Proxy::start(&simple_config(&[origin.addr], ""));
        let addr = proxy.addr();
        let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
        for c in &mut clients {
            assert_eq!(c.get("/").status, 200);
        }
        proxy.signal(libc::SIGTERM);
        assert_eq!(proxy.wait_exit_closely(Duration::from_secs(5)), Some(0));
        // std binds with SO_REUSEADDR, as coregate does: only a listening socket conflicts.
        let bound = std::net::TcpListener::bind(addr);
        assert!(
            bound.is_ok(),
            "round {round}: {addr} still bound after the process exited: {:?}\nlog:\n{}",
            bound.err(),
            proxy.log()
        );
    }
}

/// A connection task outlives its client: it parks and serves the shard's next connection,
/// with the same timer. A client served by a parked task is still cut off at
/// `client_header_ms` and, idle between requests, at `client_idle_ms`; the pool of parked
/// tasks is bounded; parked tasks do not hold up shutdown.
#[test]
fn parked_connection_tasks_serve_later_clients_with_working_timeouts() {
    for driver in [Driver::Auto, Driver::Legacy] {
        let origin = Origin::fixed("o", "ok");
        let toml = format!(
            "{}[[route]]\nupstream = \"app\"\n\n[timeouts]\nclient_header_ms = 1000\n\
             client_idle_ms = 1500\n",
            ops_head_app(1, "", origin.addr)
        );
        let mut proxy = Proxy::start_with(&toml, driver);
        let admin = admin_addr(&proxy);
        let parked = || {
            sum(
                &scrape(admin, None),
                "coregate_connection_tasks_parked",
                &[],
            )
        };

        // 100 clients at once, then gone: their tasks park, at most 64 of them.
        let mut clients: Vec<Client> = (0..100).map(|_| Client::connect(proxy.addr())).collect();
        for c in &mut clients {
            assert_eq!(c.get("/").text(), "ok");
        }
        drop(clients);
        wait_until(DEADLINE, "64 parked connection tasks", || parked() == 64.0);

        // Clients one after another, each on a parked task.
        for _ in 0..20 {
            assert_eq!(Client::connect(proxy.addr()).get("/").text(), "ok");
        }
        wait_until(DEADLINE, "64 parked tasks again", || parked() == 64.0);

        // A client that stops halfway through its head: 408 at client_header_ms.
        let mut slow = TcpStream::connect(proxy.addr()).unwrap();
        slow.set_read_timeout(Some(DEADLINE)).unwrap();
        let started = Instant::now();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = slow.read_to_end(&mut answer);
        let took = started.elapsed();
        assert_eq!(status_of(&answer), Some(408), "{driver:?}: {answer:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{driver:?}: cut after {took:?}"
        );

        // A keep-alive client that goes quiet: closed at client_idle_ms.
        let mut idle = Client::connect(proxy.addr());
        assert_eq!(idle.get("/").text(), "ok");
        let started = Instant::now();
        assert!(idle.is_closed(), "{driver:?}: idle client not closed");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
            "{driver:?}: idle client closed after {took:?}"
        );
        assert_eq!(origin.request_count(), 121, "{driver:?}");

        // 64 parked tasks do not hold up shutdown.
        let t = Instant::now();
        proxy.signal(libc::SIGTERM);
        assert_eq!(
            proxy.wait_exit(Duration::from_secs(5)),
            Some(0),
            "{driver:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{driver:?}");
    }
}

/// With more open connections on the shard than `idle_release_connections` (here 0), a
/// keep-alive connection quiet for a second gives up its task and buffers and waits on a poll
/// alone (`coregate_connections_idle`), without losing anything: it is still counted against
/// `connections_per_shard_max`, its next requests (two pipelined in one write) are answered,
/// a client that closes while it waits is let go, and one that stays quiet is closed at
/// `client_idle_ms`, counted from its last answer. At the default (1,000) two connections
/// keep their tasks.
#[test]
fn idle_connections_wait_without_a_task_and_come_back() {
    for driver in [Driver::Auto, Driver::Legacy] {
        let origin = Origin::fixed("o", "ok");
        let head = ops_head_app(1, "", origin.addr);
        let proxy = Proxy::start_with(&format!("{head}[[route]]\nupstream = \"app\"\n"), driver);
        let admin = admin_addr(&proxy);
        let mut a = Client::connect(proxy.addr());
        assert_eq!(a.get("/").text(), "ok");
        let released = poll_until(Duration::from_millis(1500), || {
            let s = scrape(admin, None);
            sum(&s, "coregate_connections_idle", &[]) > 0.0
                || sum(&s, "coregate_connection_tasks_parked", &[]) > 0.0
        });
        assert!(
            !released,
            "{driver:?}: released below idle_release_connections"
        );
        assert_eq!(a.get("/").text(), "ok");
        drop((a, proxy));

        let toml = format!(
            "{head}[[route]]\nupstream = \"app\"\n\n[timeouts]\nclient_idle_ms = 3000\n\n\
             [limits]\nconnections_per_shard_max = 2\nidle_release_connections = 0\n"
        );
        let proxy = Proxy::start_with(&toml, driver);
        let admin = admin_addr(&proxy);
        let gauge = |name: &str| sum(&scrape(admin, None), name, &[]);

        let mut a = Client::connect(proxy.addr());
        assert_eq!(a.get("/").text(), "ok");
        let mut b = Client::connect(proxy.addr());
        assert_eq!(b.get("/").text(), "ok");
        let quiet_from = Instant::now();
        wait_until(DEADLINE, "two idle connections", || {
            gauge("coregate_connections_idle") == 2.0
        });
        assert!(
            quiet_from.elapsed() >= Duration::from_millis(900),
            "{driver:?}"
        );
        // Their tasks went back to the shard.
        assert_eq!(gauge("coregate_connection_tasks_parked"), 2.0, "{driver:?}");
        assert_eq!(gauge("coregate_connections_active"), 2.0, "{driver:?}");

        // Still counted: a third client is refused.
        let mut c = Client::connect(proxy.addr());
        assert!(c.is_closed(), "{driver:?}: a third connection was admitted");

        // Two requests in one write on an idle connection: both answered, in order.
        a.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
        for _ in 0..2 {
            let r = a.read_response(false).expect("an answer after idling");
            assert_eq!(r.status, 200, "{driver:?}");
            assert_eq!(r.text(), "ok", "{driver:?}");
        }
        let answered = Instant::now();
        // Back in a task (it goes idle again a second after this answer).
        assert_eq!(gauge("coregate_connections_idle"), 1.0, "{driver:?}");

        // A client that closes while idle is let go: its count goes.
        drop(b);
        wait_until(DEADLINE, "the closed client's connection gone", || {
            gauge("coregate_connections_active") == 1.0
        });

        // A client that stays quiet is closed at client_idle_ms after its last answer.
        assert!(a.is_closed(), "{driver:?}: idle client not closed");
        let took = answered.elapsed();
        assert!(
            took >= Duration::from_millis(2800) && took < Duration::from_secs(6),
            "{driver:?}: idle client closed after {took:?}"
        );
        wait_until(DEADLINE, "no idle connection left", || {
            gauge("coregate_connections_idle") == 0.0 && gauge("coregate_connections_active") == 0.0
        });
        assert_eq!(origin.request_count(), 6, "{driver:?}");
    }
}
