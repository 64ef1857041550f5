//! Upgrades through coregate: a real WebSocket client (tungstenite) talks to a real WebSocket
//! echo origin through the proxy, over plain TCP and over TLS; the connection becomes a tunnel
//! only after the origin's 101, so a request smuggled after a refused upgrade is still parsed
//! and routed by coregate; an idle tunnel is closed.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;
use tungstenite::Message;

fn echo_roundtrips<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) {
    ws.send(Message::text("hello through coregate")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello through coregate"));
    // Larger than the tunnel's buffers, so it crosses several reads.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big));
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(text));
    }
    ws.close(None).unwrap();
}

fn websocket_echo(driver: Driver) {
    let origin = WsOrigin::start();
    let proxy = Proxy::start_with(&simple_config(&[origin.addr], ""), driver);
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let url = format!("ws://127.0.0.1:{}/chat?room=1", proxy.addr().port());
    let (mut ws, resp) = tungstenite::client(url, stream).expect("handshake through coregate");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["via"], "1.1 coregate");
    echo_roundtrips(&mut ws);
    assert_eq!(origin.paths(), vec!["/chat".to_string()]);
}

#[test]
fn websocket_echo_io_uring() {
    websocket_echo(Driver::Auto);
}

#[test]
fn websocket_echo_epoll() {
    websocket_echo(Driver::Legacy);
}

#[test]
fn websocket_echo_over_tls() {
    let certs = Certs::generate(&["localhost"]);
    let origin = WsOrigin::start();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
[[upstream]]\nname = \"ws\"\n[[upstream.server]]\naddress = \"{}\"\n[[route]]\nupstream = \"ws\"\n",
        certs.cert("localhost").display(),
        certs.key("localhost").display(),
        origin.addr
    );
    let proxy = Proxy::start(&toml);
    let tls = tls_client(proxy.addr(), &certs.ca(), "localhost");
    let url = format!("wss://localhost:{}/secure", proxy.addr().port());
    let (mut ws, resp) = tungstenite::client(url, tls).expect("handshake over TLS");
    assert_eq!(resp.status(), 101);
    echo_roundtrips(&mut ws);
    assert_eq!(origin.paths(), vec!["/secure".to_string()]);
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

/// CVE-2026-2833 / CVE-2024-23326: the origin answers the upgrade request with 200, so the
/// connection stays HTTP, and the request the client packed behind it is parsed and routed by
/// coregate (here refused by the route's access rules), never passed through to the origin.
#[test]
fn refused_upgrade_stays_http_and_smuggled_request_is_routed() {
    let origin = Origin::fixed("plain", "no upgrade here");
    let extra = "[[route]]\nname = \"admin\"\npath_prefix = \"/admin\"\nupstream = \"app\"\n\
deny = [\"127.0.0.0/8\"]\n";
    let proxy = Proxy::start(&simple_config(&[origin.addr], extra));
    let mut c = Client::connect(proxy.addr());
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
GET /admin/secrets HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let first = c.read_response(false).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "no upgrade here");
    let second = c.read_response(false).unwrap();
    assert_eq!(
        second.status, 403,
        "the second request was not routed by coregate"
    );
    let got = origin.wait_requests(1);
    assert_eq!(got.len(), 1);
    assert_eq!(origin.request_count(), 1);
    // The upgrade request itself went out with its upgrade fields.
    assert_eq!(got[0].header("upgrade"), Some("websocket"));
    assert_eq!(got[0].header("connection"), Some("upgrade"));
    assert!(got[0].header("sec-websocket-key").is_some());
}

#[test]
fn upgrade_fields_go_only_with_an_upgrade_request() {
    let origin = Origin::fixed("plain", "ok");
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    // Upgrade without the Connection option, and an h2c upgrade: plain HTTP, field dropped.
    for req in [
        "GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
        "GET /b HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    ] {
        assert_eq!(c.request(req).status, 200);
    }
    for r in origin.wait_requests(2) {
        assert_eq!(r.header("upgrade"), None, "{}", r.target);
        assert_eq!(r.header("http2-settings"), None);
        assert_eq!(r.header("connection"), None);
    }
}

#[test]
fn switching_protocols_without_an_upgrade_request_is_502() {
    let origin = Origin::start(|_| {
        Reply::Bytes(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec())
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], ""));
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/").status, 502);
}

#[test]
fn idle_tunnel_is_closed() {
    let origin = WsOrigin::start();
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[timeouts]\ntunnel_idle_ms = 400\n",
    ));
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let url = format!("ws://127.0.0.1:{}/idle", proxy.addr().port());
    let (mut ws, _) = tungstenite::client(url, stream).unwrap();
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("ping"));
    let quiet_since = Instant::now();
    // Nothing is sent: the proxy must end the tunnel on its own.
    let end = ws.read();
    let waited = quiet_since.elapsed();
    assert!(end.is_err(), "expected the tunnel to close, got {end:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(8), "closed after {waited:?}");
}
