//! The recording HTTP/1.1 origin: a real server on loopback that records every request it
//! receives (head and body as sent) and answers with what the test's handler says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// One request as an origin received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which accepted connection (0-based) it came on.
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    /// Field lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// The head exactly as received (request line and fields, final CRLF included).
    pub raw_head: Vec<u8>,
    /// "length", "chunked" or "none".
    pub framing: &'static str,
    /// The body exactly as received (chunk framing included).
    pub raw_body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// What the origin does with a request.
pub enum Reply {
    /// Write these bytes, keep the connection.
    Bytes(Vec<u8>),
    /// Write these bytes, then close.
    BytesThenClose(Vec<u8>),
    /// Wait, then write the bytes.
    Delayed(Duration, Vec<u8>),
    /// Close without answering.
    Close,
}

pub type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

/// A recording HTTP/1.1 origin on 127.0.0.1, one thread per connection. It can be stopped
/// (listener closed, open connections shut down, as when its process dies) and restarted on
/// the same port.
pub struct Origin {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handler: Arc<Handler>,
    acceptor: Mutex<Option<thread::JoinHandle<()>>>,
    /// Open connections by id, to shut them down on `stop`.
    live: Arc<Mutex<HashMap<usize, TcpStream>>>,
}

impl Origin {
    /// An origin answering every request with `handler`.
    pub fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::start_on("127.0.0.1:0".parse().unwrap(), handler)
    }

    /// An origin on `addr` (another loopback IP, or a given port).
    pub fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind(addr).expect("bind origin");
        Origin::on_listener(listener, handler)
    }

    /// Two origins on one port, at 127.0.0.1 and 127.0.0.2 (one name, two addresses). The
    /// port comes from `bind(0)` on the first address, which says nothing of the second: a
    /// test running in parallel can hold it there (one of these pairs, or an origin whose drop
    /// gave up waiting), so a port taken there is given back and another one tried.
    pub fn pair_on_one_port(
        a: impl Fn(&Received) -> Reply + Send + Sync + 'static,
        b: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> (Origin, Origin) {
        for _ in 0..50 {
            let first = TcpListener::bind("127.0.0.1:0").expect("bind origin");
            let port = first.local_addr().unwrap().port();
            if let Ok(second) = TcpListener::bind(("127.0.0.2", port)) {
                return (
                    Origin::on_listener(first, a),
                    Origin::on_listener(second, b),
                );
            }
        }
        panic!("no port free on both 127.0.0.1 and 127.0.0.2 in 50 tries");
    }

    fn on_listener(
        listener: TcpListener,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let origin = Origin {
            addr: listener.local_addr().unwrap(),
            received: Arc::new(Mutex::new(Vec::new())),
            connections: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            handler: Arc::new(handler),
            acceptor: Mutex::new(None),
            live: Arc::new(Mutex::new(HashMap::new())),
        };
        origin.accept_on(listener);
        origin
    }

    fn accept_on(&self, listener: TcpListener) {
        let (received, connections, stop, handler, live) = (
            self.received.clone(),
            self.connections.clone(),
            self.stop.clone(),
            self.handler.clone(),
            self.live.clone(),
        );
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    live.lock().unwrap().insert(id, clone);
                }
                let (received, handler, live) = (received.clone(), handler.clone(), live.clone());
                thread::spawn(move || {
                    serve_origin_conn(stream, id, received, handler);
                    // Our clone keeps the socket open: close it for real.
                    if let Some(s) = live.lock().unwrap().remove(&id) {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                });
            }
        });
        *self.acceptor.lock().unwrap() = Some(acceptor);
    }

    /// Die: close the listener (connects are refused from now on) and shut down every open
    /// connection.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.acceptor.lock().unwrap().take() {
            let _ = t.join();
        }
        for (_, s) in self.live.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Come back on the same port, with the same handler and records.
    pub fn restart(&self) {
        let deadline = Instant::now() + DEADLINE;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("origin cannot bind {} again: {e}", self.addr),
            }
        };
        self.stop.store(false, Ordering::SeqCst);
        self.accept_on(listener);
    }

    /// Requests received whose target starts with `prefix`.
    pub fn count_to(&self, prefix: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.starts_with(prefix))
            .count()
    }

    /// 200 with a fixed body; `X-Origin: name` names the origin.
    pub fn fixed(name: &str, body: &str) -> Origin {
        let resp = response(200, &[("X-Origin", name)], body.as_bytes());
        Origin::start(move |_| Reply::Bytes(resp.clone()))
    }

    /// 200 echoing the request body, with the request target in `X-Target`.
    pub fn echo() -> Origin {
        Origin::start(|r| Reply::Bytes(response(200, &[("X-Target", &r.target)], &r.body)))
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Wait until `n` requests have arrived.
    pub fn wait_requests(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "origin got {} of {n} requests",
                got.len()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Origin {
    /// Close the listener before returning (waiting up to 2 s for the accept loop to see the
    /// wake-up), so that its port is free again for the next `bind(0)` of a test running in
    /// parallel, as it would be were the origin's process gone.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        let Some(acceptor) = self.acceptor.get_mut().ok().and_then(|a| a.take()) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !acceptor.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A complete response with Content-Length.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn serve_origin_conn(
    stream: TcpStream,
    id: usize,
    received: Arc<Mutex<Vec<Received>>>,
    handler: Arc<Handler>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let Some(req) = read_request(&mut reader, id) else {
            return;
        };
        received.lock().unwrap().push(req.clone());
        let reply = handler(&req);
        let (bytes, close) = match reply {
            Reply::Bytes(b) => (b, false),
            Reply::BytesThenClose(b) => (b, true),
            Reply::Delayed(d, b) => {
                thread::sleep(d);
                (b, false)
            }
            Reply::Close => return,
        };
        if writer.write_all(&bytes).is_err() || close {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Read one request; None at EOF or on anything malformed.
fn read_request(r: &mut BufReader<TcpStream>, conn: usize) -> Option<Received> {
    let mut raw_head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        raw_head.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if text.is_empty() {
            break;
        }
        lines.push(text);
    }
    let mut start = lines.first()?.splitn(3, ' ');
    let (method, target, version) = (
        start.next()?.to_string(),
        start.next()?.to_string(),
        start.next()?.to_string(),
    );
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.to_string(), v.trim().to_string()))
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut raw_body = Vec::new();
    let (body, framing) = if find("transfer-encoding").is_some() {
        (read_chunked(r, &mut raw_body)?, "chunked")
    } else if let Some(cl) = find("content-length") {
        let mut body = vec![0; cl.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        raw_body.clone_from(&body);
        (body, "length")
    } else {
        (Vec::new(), "none")
    };
    Some(Received {
        conn,
        method,
        target,
        version,
        headers,
        body,
        raw_head,
        framing,
        raw_body,
    })
}

fn read_chunked(r: &mut impl BufRead, raw: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        raw.extend_from_slice(line.as_bytes());
        let size = usize::from_str_radix(line.trim_end().split(';').next()?, 16).ok()?;
        if size == 0 {
            loop {
                let mut t = String::new();
                r.read_line(&mut t).ok()?;
                raw.extend_from_slice(t.as_bytes());
                if t == "\r\n" || t.is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).ok()?;
        raw.extend_from_slice(&body[start..]);
        raw.extend_from_slice(&crlf);
    }
}
