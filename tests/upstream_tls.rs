//! TLS to upstreams: a coregate ("front") speaks HTTPS to a second coregate ("back", a real
//! rustls TLS listener) in front of a recording origin. Verified against a given CA with the
//! right name, refused (502) with the wrong name unless `verify = false`, TLS connections
//! pooled and reused, health probes over TLS, a WebSocket tunnel over an upstream TLS
//! connection, and a body that ends with the connection complete only with close_notify.

mod support;

use std::net::{SocketAddr, TcpStream};

use support::*;
use tungstenite::Message;

/// The back end: HTTPS with the `backend.test` certificate in front of `origin`.
fn back(certs: &Certs, origin: SocketAddr) -> Proxy {
    Proxy::start(&format!(
        "[server]\nworkers = 1\n[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\n\
cert = \"{}\"\nkey = \"{}\"\n[[upstream]]\nname = \"origin\"\n[[upstream.server]]\naddress = \"{}\"\n\
[[route]]\nupstream = \"origin\"\n",
        certs.cert("backend.test").display(),
        certs.key("backend.test").display(),
        origin
    ))
}

/// The front: plain HTTP, forwarding over TLS to `back` with the given `[upstream.tls]` keys.
fn front(back: &Proxy, tls: &str, extra: &str) -> Proxy {
    front_to(back.addr(), tls, extra)
}

/// The front, forwarding over TLS to the server at `addr`.
fn front_to(addr: SocketAddr, tls: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "[server]\nworkers = 1\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
[[upstream]]\nname = \"secure\"\nretries = 0\n[[upstream.server]]\naddress = \"{addr}\"\n\
[upstream.tls]\n{tls}\n{extra}\n[[route]]\nupstream = \"secure\"\n"
    ))
}

/// The `[upstream.tls]` keys that verify `back` as it should be: the test CA, the right name.
fn verified(certs: &Certs) -> String {
    format!(
        "ca = \"{}\"\nserver_name = \"backend.test\"",
        certs.ca().display()
    )
}

fn accepted(p: &Proxy) -> usize {
    p.log().matches("connection accepted").count()
}

#[test]
fn https_upstream_verified_against_a_ca_and_pooled() {
    let certs = Certs::generate(&["backend.test"]);
    let origin = Origin::echo();
    let back = back(&certs, origin.addr);
    let tls = verified(&certs);
    let front = front(&back, &tls, "");
    let mut c = Client::connect(front.addr());
    for i in 0..5 {
        let r = c.get(&format!("/over-tls/{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-target"),
            Some(format!("/over-tls/{i}").as_str())
        );
    }
    let got = origin.wait_requests(5);
    // The back end saw the requests arrive on its TLS listener.
    assert!(got
        .iter()
        .all(|r| r.header("x-forwarded-proto") == Some("https")));
    // One TLS connection from the front's pool carried all five.
    assert_eq!(accepted(&back), 1, "{}", back.log());
}

#[test]
fn wrong_name_is_502_unless_verification_is_off() {
    let certs = Certs::generate(&["backend.test"]);
    let origin = Origin::echo();
    let back = back(&certs, origin.addr);
    let ca = certs.ca();
    let wrong = front(
        &back,
        &format!("ca = \"{}\"\nserver_name = \"other.test\"", ca.display()),
        "",
    );
    assert_eq!(Client::connect(wrong.addr()).get("/").status, 502);
    // The system roots do not know the test CA either.
    let system = front(&back, "server_name = \"backend.test\"", "");
    assert_eq!(Client::connect(system.addr()).get("/").status, 502);
    assert_eq!(origin.request_count(), 0);
    let unchecked = front(&back, "server_name = \"other.test\"\nverify = false", "");
    assert_eq!(Client::connect(unchecked.addr()).get("/x").status, 200);
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn health_probes_speak_tls() {
    let certs = Certs::generate(&["backend.test"]);
    let origin = Origin::echo();
    let back = back(&certs, origin.addr);
    let tls = verified(&certs);
    let health =
        "[upstream.health]\npath = \"/healthz\"\ninterval_ms = 50\nunhealthy_threshold = 1\n";
    let front = front(&back, &tls, health);
    // Probes reach the origin through the TLS listener, and pass: the server stays up.
    wait_until(DEADLINE, "three probes over TLS", || {
        origin.count_to("/healthz") >= 3
    });
    assert_eq!(
        Client::connect(front.addr()).get("/after-probes").status,
        200
    );
    assert!(
        !front.log().contains("health probe failed"),
        "{}",
        front.log()
    );
}

#[test]
fn websocket_through_an_upstream_tls_connection() {
    let certs = Certs::generate(&["backend.test"]);
    let ws_origin = WsOrigin::start();
    let back = back(&certs, ws_origin.addr);
    let tls = verified(&certs);
    let front = front(&back, &tls, "");
    let stream = TcpStream::connect(front.addr()).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let url = format!("ws://127.0.0.1:{}/tunnel", front.addr().port());
    let (mut ws, resp) = tungstenite::client(url, stream).expect("handshake over two hops");
    assert_eq!(resp.status(), 101);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big));
    ws.send(Message::text("bye")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("bye"));
    ws.close(None).unwrap();
    assert_eq!(ws_origin.paths(), vec!["/tunnel".to_string()]);
}

/// A rustls server config with the `backend.test` certificate, for origins written in a test.
fn backend_tls(certs: &Certs) -> rustls::ServerConfig {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(certs.cert("backend.test"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.key("backend.test")).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// An HTTPS origin (rustls, `backend.test`) answering its first `connections` connections, one
/// request each, with `body` and no length: the body ends with the connection. For `/clean`
/// the TLS stream ends with close_notify; otherwise with a bare FIN, which is how a cut looks.
fn close_delimited_tls_origin(certs: &Certs, body: Vec<u8>, connections: usize) -> SocketAddr {
    use std::io::{Read, Write};
    let cfg = std::sync::Arc::new(backend_tls(certs));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming().take(connections) {
            let Ok(sock) = sock else { return };
            sock.set_read_timeout(Some(DEADLINE)).unwrap();
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && matches!(tls.read(&mut byte), Ok(1)) {
                head.push(byte[0]);
            }
            let mut answer = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            answer.extend_from_slice(&body);
            let _ = tls.write_all(&answer);
            if head.starts_with(b"GET /clean ") {
                tls.conn.send_close_notify();
            }
            let _ = tls.flush();
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        }
    });
    addr
}

/// Over TLS, the end of a body that ends with the connection is the server's close_notify: a
/// bare FIN may be an attacker's or a network's cut (RFC 9112 §9.8). The clean body reaches the
/// client whole and re-chunked; the cut one never gets its last chunk, so the client sees it
/// cut, not complete.
#[test]
fn a_close_delimited_body_over_tls_is_complete_only_with_close_notify() {
    let certs = Certs::generate(&["backend.test"]);
    let body: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let origin = close_delimited_tls_origin(&certs, body.clone(), 2);
    let front = front_to(origin, &verified(&certs), "");
    let mut c = Client::connect(front.addr());
    let r = c.get("/clean");
    assert_eq!((r.status, r.framing), (200, "chunked"));
    assert_eq!(r.body, body);
    let mut c = Client::connect(front.addr());
    c.send(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        c.read_response(false).is_none(),
        "a body cut without close_notify reached the client as complete"
    );
}

/// An HTTPS origin (rustls, `backend.test`) for one connection: answers each request with
/// `answer` until the client closes, then says on the channel whether the close came with
/// close_notify (rustls reads a bare FIN as `UnexpectedEof`).
fn tls_origin_answering(
    certs: &Certs,
    answer: &'static [u8],
) -> (SocketAddr, std::sync::mpsc::Receiver<bool>) {
    use std::io::{Read, Write};
    let cfg = backend_tls(certs);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(cfg)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        let clean = loop {
            match tls.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => break true,
                Err(_) => break false,
            }
            if head.ends_with(b"\r\n\r\n") {
                head.clear();
                let _ = tls.write_all(answer);
            }
        };
        let _ = tx.send(clean);
    });
    (addr, rx)
}

/// A pooled TLS connection that coregate closes (here: idle past `upstream_idle_ms`) ends with
/// close_notify, as RFC 8446 §6.1 requires: servers that log a bare FIN as a possible truncation
/// (Java's SSLEngine) see a clean end.
#[test]
fn idle_tls_upstream_connections_close_with_close_notify() {
    let certs = Certs::generate(&["backend.test"]);
    let (origin, closed) = tls_origin_answering(&certs, OK);
    let front = front_to(
        origin,
        &verified(&certs),
        "[timeouts]\nupstream_idle_ms = 200",
    );
    let mut c = Client::connect(front.addr());
    for _ in 0..2 {
        let r = c.get("/");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    }
    // The pool's sweep (every second) closes the idle connection.
    let clean = closed
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the idle upstream connection was not closed");
    assert!(clean, "closed without close_notify");
}

/// A keep-alive answer of "ok".
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A TLS upstream connection that its server's `Connection: close` ends is closed with
/// close_notify too, once its answer is relayed.
#[test]
fn a_tls_upstream_connection_its_server_ends_closes_with_close_notify() {
    let certs = Certs::generate(&["backend.test"]);
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let (origin, closed) = tls_origin_answering(&certs, answer);
    let front = front_to(origin, &verified(&certs), "");
    let r = Client::connect(front.addr()).get("/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    let clean = closed
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the upstream connection was not closed");
    assert!(clean, "closed without close_notify");
}
