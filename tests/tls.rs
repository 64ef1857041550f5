//! TLS termination with real clients (openssl s_client, curl): SNI certificate choice, ALPN,
//! TLS 1.2 and 1.3, resumption, forwarding with X-Forwarded-Proto https, bad certificate files.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn tls_config(certs: &Certs, origin: &Origin) -> String {
    format!(
        "[[listener]]\nname = \"https\"\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
[[listener.tls.sni]]\nserver_name = \"api.test\"\ncert = \"{}\"\nkey = \"{}\"\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{}\"\n[[route]]\nupstream = \"app\"\n",
        certs.cert("localhost").display(),
        certs.key("localhost").display(),
        certs.cert("api.test").display(),
        certs.key("api.test").display(),
        origin.addr
    )
}

#[test]
fn https_is_terminated_and_forwarded() {
    let certs = Certs::generate(&["localhost", "api.test"]);
    let origin = Origin::echo();
    let proxy = Proxy::start(&tls_config(&certs, &origin));
    let port = proxy.addr().port();
    let ca = certs.ca();
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}/hello?x=1");
    let (code, out) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-d",
        "payload",
        &url,
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "payload");
    let got = origin.wait_requests(1);
    assert_eq!(got[0].target, "/hello?x=1");
    assert_eq!(got[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(got[0].header("host"), Some(&*format!("api.test:{port}")));
    // Keep-alive over TLS: several requests on one connection reach the origin on one connection.
    let (code, out) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
        &url,
        &url,
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(origin.request_count(), 4);
}

#[test]
fn sni_chooses_the_certificate_with_a_default() {
    let certs = Certs::generate(&["localhost", "api.test"]);
    let origin = Origin::echo();
    let proxy = Proxy::start(&tls_config(&certs, &origin));
    let subject = |args: &[&str]| {
        let out = s_client(proxy.addr(), args, b"");
        out.lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_else(|| panic!("no certificate: {out}"))
            .to_string()
    };
    assert!(subject(&["-servername", "api.test"]).ends_with("CN = api.test"));
    assert!(subject(&["-servername", "API.TEST"]).ends_with("CN = api.test"));
    assert!(subject(&["-servername", "other.test"]).ends_with("CN = localhost"));
    assert!(subject(&["-noservername"]).ends_with("CN = localhost"));
}

#[test]
fn alpn_versions_and_resumption() {
    let certs = Certs::generate(&["localhost"]);
    let origin = Origin::echo();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{}\"\n[[route]]\nupstream = \"app\"\n",
        certs.cert("localhost").display(),
        certs.key("localhost").display(),
        origin.addr
    );
    let proxy = Proxy::start(&toml);
    let out = s_client(proxy.addr(), &["-alpn", "h2,http/1.1"], b"");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    let out = s_client(proxy.addr(), &["-tls1_3"], b"");
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let out = s_client(proxy.addr(), &["-tls1_2"], b"");
    assert!(out.contains("New, TLSv1.2"), "{out}");
    // A proxied answer over TLS 1.2 through s_client.
    let out = s_client(
        proxy.addr(),
        &["-tls1_2", "-quiet", "-ign_eof"],
        b"GET /over-tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    // Resumption by session ticket (TLS 1.2: the ticket arrives within the handshake).
    let sess = certs.dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let first = s_client(proxy.addr(), &["-tls1_2", "-sess_out", sess], b"");
    assert!(first.contains("New, TLSv1.2"), "{first}");
    let second = s_client(proxy.addr(), &["-tls1_2", "-sess_in", sess], b"");
    assert!(second.contains("Reused, TLSv1.2"), "not resumed: {second}");
}

#[test]
fn plain_http_to_a_tls_port_is_closed_and_the_shard_keeps_serving() {
    let certs = Certs::generate(&["localhost", "api.test"]);
    let origin = Origin::echo();
    let proxy = Proxy::start(&tls_config(&certs, &origin));
    let answer = send_raw(proxy.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"));
    let ca = certs.ca();
    let url = format!("https://localhost:{}/", proxy.addr().port());
    let (code, out) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn bad_certificate_files_fail_check() {
    let certs = Certs::generate(&["localhost", "other"]);
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let check = |cert: &Path, key: &Path| {
        let toml = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        );
        let path = write_temp_config(&toml);
        let out = Command::new(env!("CARGO_BIN_EXE_coregate"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = certs.dir.join("missing.pem");
    let (code, err) = check(&missing, &certs.key("localhost"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("listener[0].tls: cannot read") && err.contains("missing.pem"),
        "{err}"
    );
    let (code, err) = check(&garbage, &certs.key("localhost"));
    assert_eq!(code, Some(1));
    assert!(err.contains("no certificate"), "{err}");
    let (code, err) = check(&certs.cert("localhost"), &garbage);
    assert_eq!(code, Some(1));
    assert!(err.contains("no usable private key"), "{err}");
    let (code, err) = check(&certs.cert("localhost"), &certs.key("other"));
    assert_eq!(code, Some(1));
    assert!(err.contains("does not match"), "{err}");
    let (code, err) = check(&certs.cert("localhost"), &certs.key("localhost"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn slow_tls_client_times_out_cleanly() {
    use std::io::{Read, Write};
    let certs = Certs::generate(&["localhost", "api.test"]);
    let origin = Origin::echo();
    let toml = tls_config(&certs, &origin) + "[timeouts]\nclient_header_ms = 300\n";
    let proxy = Proxy::start(&toml);
    let mut slow = tls_client(proxy.addr(), &certs.ca(), "localhost");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: local").unwrap();
    // The head never completes: the proxy gives up and closes (with a 408 and close_notify:
    // `every_tls_connection_ends_with_close_notify`).
    let mut rest = Vec::new();
    let t = std::time::Instant::now();
    let _ = slow.read_to_end(&mut rest);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // Others are served; the shard did not panic.
    let mut ok = tls_client(proxy.addr(), &certs.ca(), "localhost");
    ok.write_all(b"GET /fine HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = ok.read_to_end(&mut answer);
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

/// Every end of a TLS connection says close_notify (RFC 8446 §6.1), so that a client can tell
/// the end of the stream from a cut: after `Connection: close`, after an HTTP/1.0 answer whose
/// body ends with the connection, when the client says close_notify first, at the keep-alive
/// idle timeout, and after the 408 for a head that came too slowly (the cancelled read leaves
/// the write side usable). rustls reports a bare FIN as `UnexpectedEof`.
#[test]
fn every_tls_connection_ends_with_close_notify() {
    use std::io::{Read, Write};
    let certs = Certs::generate(&["localhost", "api.test"]);
    let body: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let whole = body.clone();
    let origin = Origin::start(move |_| {
        let mut out = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        out.extend_from_slice(&whole);
        Reply::BytesThenClose(out)
    });
    let toml =
        tls_config(&certs, &origin) + "[timeouts]\nclient_header_ms = 300\nclient_idle_ms = 300\n";
    let proxy = Proxy::start(&toml);
    let answer_to = |request: &[u8], close_first: bool| -> String {
        let mut c = tls_client(proxy.addr(), &certs.ca(), "localhost");
        c.write_all(request).unwrap();
        if close_first {
            c.conn.send_close_notify();
            c.flush().unwrap();
        }
        let mut got = Vec::new();
        let end = c.read_to_end(&mut got);
        let got = String::from_utf8_lossy(&got).into_owned();
        assert!(end.is_ok(), "no close_notify after {got:.60}: {end:?}");
        got
    };
    let keep = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let got = answer_to(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got:.60}");
    let got = answer_to(b"GET / HTTP/1.0\r\n\r\n", false);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:.60}");
    assert!(
        !got.contains("Content-Length") && !got.contains("chunked"),
        "{got:.200}"
    );
    assert!(
        got.ends_with(std::str::from_utf8(&body).unwrap()),
        "body cut short"
    );
    let got = answer_to(keep, true);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:.60}");
    let got = answer_to(keep, false);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:.60}");
    let got = answer_to(b"GET / HTTP/1.1\r\nHost: loc", false);
    assert!(got.starts_with("HTTP/1.1 408"), "{got:.60}");
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

/// Bodies far larger than a TLS record cross a TLS client connection whole in both directions,
/// on one keep-alive connection, between small requests: the TLS buffers grow for large
/// records and shrink again for small ones (vendor/monoio-io-wrapper), and lose no byte.
#[test]
fn large_and_small_bodies_alternate_on_one_tls_connection() {
    use std::io::{BufRead, BufReader, Read, Write};
    let certs = Certs::generate(&["localhost", "api.test"]);
    let origin = Origin::echo();
    let proxy = Proxy::start(&tls_config(&certs, &origin));
    let tls = tls_client(proxy.addr(), &certs.ca(), "localhost");
    let mut c = BufReader::new(tls);
    for (i, size) in [10usize, 3_000_000, 100, 70_000, 0, 1_000_000, 5]
        .into_iter()
        .enumerate()
    {
        let body: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        let head =
            format!("POST /{i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n");
        c.get_mut().write_all(head.as_bytes()).unwrap();
        c.get_mut().write_all(&body).unwrap();
        let mut length = None;
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "request {i}: {line}");
        loop {
            line.clear();
            c.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        assert_eq!(length, Some(size), "request {i}");
        let mut echoed = vec![0u8; size];
        c.read_exact(&mut echoed).unwrap();
        assert!(echoed == body, "request {i}: the echoed body differs");
    }
}

/// Read from `c` until `n` answers with the body "ok" are in; everything read, as text.
fn read_oks(c: &mut impl std::io::Read, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(6).filter(|w| w == b"\r\n\r\nok").count() < n {
        let k = c.read(&mut buf).expect("an answer");
        assert!(k > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..k]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Idle TLS keep-alive connections give back their task and buffers too, as plain ones do
/// (tests/lifecycle.rs): with `idle_release_connections = 0`, a TLS connection quiet for a
/// second waits without a task, keeping only its socket and rustls state. A TLS record that
/// arrives in two pieces with a release between them still makes a request; two pipelined
/// requests after idling are both answered; a client that closes while idle is let go; one
/// that stays quiet is closed at `client_idle_ms`, with close_notify.
#[test]
fn idle_tls_connections_wait_without_a_task_and_come_back() {
    use std::io::Write;
    use support::ops::{admin_addr, scrape, sum};
    let certs = Certs::generate(&["localhost", "api.test"]);
    for driver in [Driver::Auto, Driver::Legacy] {
        let origin = Origin::fixed("o", "ok");
        let toml = format!(
            "[server]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\
             [timeouts]\nclient_idle_ms = 5000\n[limits]\nidle_release_connections = 0\n",
            tls_config(&certs, &origin)
        );
        let proxy = Proxy::start_with(&toml, driver);
        let admin = admin_addr(&proxy);
        let gauge = |name: &str| sum(&scrape(admin, None), name, &[]);
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");

        let mut a = tls_client(proxy.addr(), &certs.ca(), "localhost");
        a.write_all(get("/a").as_bytes()).unwrap();
        read_oks(&mut a, 1);
        let mut b = tls_client(proxy.addr(), &certs.ca(), "localhost");
        b.write_all(get("/b").as_bytes()).unwrap();
        read_oks(&mut b, 1);
        wait_until(DEADLINE, "two idle TLS connections", || {
            gauge("coregate_connections_idle") == 2.0
        });
        assert_eq!(gauge("coregate_connection_tasks_parked"), 2.0, "{driver:?}");

        // Two requests in one write on an idle connection: both answered.
        a.write_all((get("/1") + &get("/2")).as_bytes()).unwrap();
        let got = read_oks(&mut a, 2);
        assert!(got.starts_with("HTTP/1.1 200"), "{driver:?}: {got:.60}");
        let answered = Instant::now();
        wait_until(DEADLINE, "two idle TLS connections again", || {
            gauge("coregate_connections_idle") == 2.0
        });

        // b's next request as one TLS record, sent in two pieces: the first wakes the
        // connection, which reads no whole record, goes idle again holding the piece, and
        // makes the request once the rest arrives.
        b.conn.writer().write_all(get("/split").as_bytes()).unwrap();
        let mut record = Vec::new();
        while b.conn.wants_write() {
            b.conn.write_tls(&mut record).unwrap();
        }
        b.sock.write_all(&record[..10]).unwrap();
        assert!(
            poll_until(DEADLINE, || gauge("coregate_connections_idle") == 1.0),
            "{driver:?}: the first piece did not wake the connection"
        );
        wait_until(
            DEADLINE,
            "the connection idle again with half a record",
            || gauge("coregate_connections_idle") == 2.0,
        );
        b.sock.write_all(&record[10..]).unwrap();
        let got = read_oks(&mut b, 1);
        assert!(got.starts_with("HTTP/1.1 200"), "{driver:?}: {got:.60}");

        // A client that closes while idle is let go.
        wait_until(DEADLINE, "both idle before b closes", || {
            gauge("coregate_connections_idle") == 2.0
        });
        drop(b);
        wait_until(DEADLINE, "the closed client's connection gone", || {
            gauge("coregate_connections_active") == 1.0
        });

        // A client that stays quiet is closed at client_idle_ms, with close_notify.
        let mut rest = Vec::new();
        let end = std::io::Read::read_to_end(&mut a, &mut rest);
        let took = answered.elapsed();
        assert!(
            end.is_ok() && rest.is_empty(),
            "{driver:?}: {end:?} {rest:?}"
        );
        assert!(
            took >= Duration::from_millis(4800) && took < Duration::from_secs(8),
            "{driver:?}: idle TLS client closed after {took:?}"
        );
        wait_until(DEADLINE, "no idle connection left", || {
            gauge("coregate_connections_idle") == 0.0 && gauge("coregate_connections_active") == 0.0
        });
        assert_eq!(origin.request_count(), 5, "{driver:?}");
        assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
    }
}

/// A drain (SIGTERM) ends idle TLS keep-alive connections with close_notify, whether they wait
/// in their task (answered just now; below `idle_release_connections` or not) or released
/// without one (quiet for over a second), and the process exits at once rather than at their
/// idle timeout.
#[test]
fn a_drain_ends_idle_tls_connections_with_close_notify() {
    use std::io::{Read, Write};
    use support::ops::{admin_addr, scrape, sum};
    let certs = Certs::generate(&["localhost", "api.test"]);
    for (driver, release) in [(Driver::Auto, 0), (Driver::Legacy, 0), (Driver::Auto, 1000)] {
        let origin = Origin::fixed("o", "ok");
        let toml = format!(
            "[server]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\
             [limits]\nidle_release_connections = {release}\n",
            tls_config(&certs, &origin)
        );
        let mut proxy = Proxy::start_with(&toml, driver);
        let admin = admin_addr(&proxy);
        let get = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let mut clients = Vec::new();
        if release == 0 {
            let mut released = tls_client(proxy.addr(), &certs.ca(), "localhost");
            released.write_all(get).unwrap();
            read_oks(&mut released, 1);
            wait_until(DEADLINE, "the first connection released", || {
                sum(&scrape(admin, None), "coregate_connections_idle", &[]) == 1.0
            });
            clients.push(("released", released));
        }
        let mut in_task = tls_client(proxy.addr(), &certs.ca(), "localhost");
        in_task.write_all(get).unwrap();
        read_oks(&mut in_task, 1);
        clients.push(("in its task", in_task));

        let stopped = Instant::now();
        proxy.signal(libc::SIGTERM);
        for (name, mut c) in clients {
            let mut rest = Vec::new();
            let end = c.read_to_end(&mut rest);
            assert!(
                end.is_ok() && rest.is_empty(),
                "{driver:?} {release}: the connection {name} ended without close_notify: \
                 {end:?} {rest:?}"
            );
        }
        assert_eq!(proxy.wait_exit(DEADLINE), Some(0), "{driver:?} {release}");
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "{driver:?} {release}: the drain took {:?}",
            stopped.elapsed()
        );
    }
}
