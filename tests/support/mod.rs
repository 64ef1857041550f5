//! Test harness shared by tests/*.rs: real origin servers on loopback that record what they
//! receive, the real coregate binary started on an ephemeral port, and raw-socket HTTP clients.
//! Every wait has a deadline; nothing sleeps to synchronise.
#![allow(dead_code, clippy::disallowed_types, clippy::disallowed_methods)]

pub mod dns;
pub mod jwt;
pub mod load;
pub mod ops;
pub mod redis;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod rel;
#[allow(unused_imports)]
pub use rel::*;

/// Default deadline for any single wait in a test.
pub const DEADLINE: Duration = Duration::from_secs(10);

// ============================================================================================
// Origin
// ============================================================================================

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
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
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

/// Poll `done` every few milliseconds until it holds or `within` passes; returns whether it held.
pub fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A port free right now, for a listener the test's config names (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP port with nothing listening: connects to it are refused. The port stays bound (not
/// listening, without SO_REUSEADDR) for the life of the test process, so that no other test
/// running in parallel gets it from `bind(0)` for an origin: a released port was handed out
/// again, and one test's health checks then connected to another test's origin.
pub fn closed_port() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Held until the process exits.
    std::mem::forget(s);
    addr
}

// ============================================================================================
// Proxy
// ============================================================================================

pub static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The coregate binary, started on a config whose listeners use port 0.
pub struct Proxy {
    pub child: Child,
    /// Bound address of each listener, in config order.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
    /// Everything the proxy wrote to stdout (the access log with `access = "stdout"`).
    out: Arc<Mutex<String>>,
    config_path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Auto,
    Legacy,
}

impl Proxy {
    /// Start coregate on `toml`, which must listen on 127.0.0.1:0.
    pub fn start(toml: &str) -> Proxy {
        Proxy::start_with(toml, Driver::Auto)
    }

    pub fn start_with(toml: &str, driver: Driver) -> Proxy {
        Proxy::start_under(toml, driver, &[])
    }

    /// Start coregate as the last argument of `wrapper` (e.g. `unshare -m sh -c …`); an empty
    /// wrapper runs it directly.
    pub fn start_under(toml: &str, driver: Driver, wrapper: &[&str]) -> Proxy {
        let path = write_temp_config(toml);
        let bin = env!("CARGO_BIN_EXE_coregate");
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
        };
        cmd.arg("--config")
            .arg(&path)
            .arg("--log-level")
            .arg("debug");
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        cmd.env_remove("RUST_LOG");
        if driver == Driver::Legacy {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        let mut child = cmd.spawn().expect("spawn coregate");
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        {
            let out = out.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(" listening ") {
                        if let Some(addr) = line
                            .split_whitespace()
                            .find_map(|t| t.strip_prefix("addr="))
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                        {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let listeners = toml.matches("[[listener]]").count().max(1);
        let mut addrs = Vec::new();
        while addrs.len() < listeners {
            match rx.recv_timeout(DEADLINE) {
                Ok(a) => addrs.push(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("coregate did not start; log:\n{}", log.lock().unwrap());
                }
            }
        }
        Proxy {
            child,
            addrs,
            log,
            out,
            config_path: path,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What the proxy printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The config file the proxy was started on (rewrite it, then reload).
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Replace the proxy's config file (takes effect at the next reload).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let r = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Wait for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident set size high-water mark of the proxy, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config_path);
    }
}

pub fn write_temp_config(toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("coregate-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{}-{}.toml",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, toml).unwrap();
    path
}

/// A config with one listener on port 0 and one upstream "app" over `origins`, routed at "/".
pub fn simple_config(origins: &[SocketAddr], extra: &str) -> String {
    let mut s = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n");
    s.push_str("[[upstream]]\nname = \"app\"\n");
    for o in origins {
        s.push_str(&format!("[[upstream.server]]\naddress = \"{o}\"\n"));
    }
    s.push_str("\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n\n");
    s.push_str(extra);
    s
}

/// A config with one listener on port 0 and one upstream "app" routed at "/": `keys` are the
/// upstream's own keys (balance, retries…), `servers` its (address, weight) list, `tables` its
/// sub-tables (`[upstream.health]`…), and `extra` anything after the route (`[server]`…).
pub fn lb_config(keys: &str, servers: &[(SocketAddr, u32)], tables: &str, extra: &str) -> String {
    let mut s = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n");
    s.push_str(&format!("[[upstream]]\nname = \"app\"\n{keys}\n"));
    for (addr, weight) in servers {
        s.push_str(&format!(
            "[[upstream.server]]\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    s.push_str(tables);
    s.push_str("\n\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n\n");
    s.push_str(extra);
    s
}

/// Every server with weight 1.
pub fn weight1(origins: &[&Origin]) -> Vec<(SocketAddr, u32)> {
    origins.iter().map(|o| (o.addr, 1)).collect()
}

/// Whether `ok` admitted requests are within 10 % of `limit`, either way: how closely a rate
/// limit under load must hold.
pub fn within_10_percent(ok: usize, limit: usize) -> bool {
    (limit * 9 / 10..=limit * 11 / 10).contains(&ok)
}

/// Poll `cond` every 10 ms until it holds; panics with `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ============================================================================================
// Client
// ============================================================================================

/// A parsed response as the client saw it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// "length", "chunked", "close" or "none".
    pub framing: &'static str,
}

impl Response {
    /// The `X-Origin` name of the origin that answered (`Origin::fixed`), or "" if none.
    pub fn origin(&self) -> String {
        self.header("x-origin").unwrap_or("").to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over one TCP connection.
pub struct Client {
    pub stream: TcpStream,
    buf: VecDeque<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to proxy");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: VecDeque::new(),
        }
    }

    /// Connect from `local` (any 127.x.y.z address works on Linux loopback), so that the
    /// proxy sees another client IP.
    pub fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> Client {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::new(local, 0).into())
            .expect("bind client");
        sock.connect(&addr.into()).expect("connect to proxy");
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: VecDeque::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to proxy");
    }

    /// Send a request and read its response. `head` is a full request head and body.
    pub fn request(&mut self, raw: &str) -> Response {
        self.send(raw.as_bytes());
        self.read_response(raw.starts_with("HEAD "))
            .expect("a response")
    }

    /// GET `path` with Host "test".
    pub fn get(&mut self, path: &str) -> Response {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend(&tmp[..n]);
                true
            }
        }
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                );
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Read one response (skipping 1xx interim ones unless `interim`). None at EOF.
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        loop {
            let r = self.read_response_raw(head_request)?;
            if !(100..200).contains(&r.status) {
                return Some(r);
            }
        }
    }

    /// Read one response, 1xx included.
    pub fn read_response_raw(&mut self, head_request: bool) -> Option<Response> {
        let status_line = self.line()?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next()?.to_string();
        let status: u16 = parts.next()?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':')?;
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let no_body =
            head_request || (100..200).contains(&status) || status == 204 || status == 304;
        let (body, framing) = if no_body {
            (Vec::new(), "none")
        } else if find("transfer-encoding").is_some() {
            let mut body = Vec::new();
            loop {
                let size_line = self.line()?;
                let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                body.extend(self.exact(size)?);
                self.exact(2)?;
            }
            (body, "chunked")
        } else if let Some(cl) = find("content-length") {
            (self.exact(cl.parse().ok()?)?, "length")
        } else {
            while self.fill() {}
            (self.buf.drain(..).collect(), "close")
        };
        Some(Response {
            status,
            version,
            headers,
            body,
            framing,
        })
    }

    /// True if the server closed the connection (EOF) within the deadline, with no more bytes.
    pub fn is_closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// Send raw bytes on a fresh connection and return everything the proxy answers until it closes.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Status code of the first response in `raw`.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// ============================================================================================
// TLS material and real TLS clients
// ============================================================================================

/// A fresh CA and leaf certificates for `names` in a temporary directory (scripts/gen-certs.sh).
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn generate(names: &[&str]) -> Certs {
        let dir = std::env::temp_dir().join(format!(
            "coregate-certs-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::SeqCst)
        ));
        let status = Command::new("scripts/gen-certs.sh")
            .arg(&dir)
            .args(names)
            .status()
            .expect("run scripts/gen-certs.sh (needs openssl)");
        assert!(status.success(), "gen-certs.sh failed");
        Certs { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `openssl s_client` against `addr` with `args`, sending `input`; returns its stdout.
pub fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("timeout")
        .arg("10")
        .arg("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Run curl with `args`; returns (exit code, stdout).
pub fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A rustls client over a std socket, trusting `ca`, sending `name` as SNI.
pub fn tls_client(
    addr: SocketAddr,
    ca: &std::path::Path,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

// ============================================================================================
// WebSocket origin
// ============================================================================================

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

// ============================================================================================
// Cache and compression
// ============================================================================================

/// A config with one shard (so that every request sees the same cache), one listener on
/// port 0 and one upstream "app" over `origin`, routed at "/" with the route keys
/// `route_keys` (e.g. `cache = { ttl_s = 60 }`); `extra` goes after the route.
pub fn cached_config(origin: SocketAddr, route_keys: &str, extra: &str) -> String {
    format!(
        "[server]\nworkers = 1\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{origin}\"\n\n\
[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n{route_keys}\n\n{extra}"
    )
}

/// Decode a gzip body.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Decode a brotli body.
pub fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

/// A text body of `n` bytes that compresses well but is not trivially repetitive.
pub fn text_body(n: usize) -> Vec<u8> {
    let words = [
        "edge ", "proxy ", "shard ", "cache ", "core ", "ring ", "route ", "pool ",
    ];
    let mut out = Vec::with_capacity(n + 8);
    let mut x: u32 = 7;
    while out.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    out.truncate(n);
    out
}
