//! The WebSocket origin: a tungstenite echo server on loopback.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A WebSocket echo server (tungstenite) on 127.0.0.1, a thread per connection: every text or
/// binary message comes back unchanged. It also records each handshake request's path.
pub struct WsOrigin {
    pub addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
}

impl WsOrigin {
    pub fn start() -> WsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                thread::spawn(move || ws_echo(stream, seen));
            }
        });
        WsOrigin { addr, paths }
    }

    /// Paths of the handshakes received so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
fn ws_echo(stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let callback = |req: &tungstenite::handshake::server::Request,
                    resp: tungstenite::handshake::server::Response| {
        seen.lock().unwrap().push(req.uri().path().to_string());
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(tungstenite::Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
