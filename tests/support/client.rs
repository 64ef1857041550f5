//! Raw-socket HTTP/1.1 clients: a keep-alive client that parses responses (framing
//! included), and one-shot sends of raw bytes.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::DEADLINE;

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
    /// `pub(super)`: `rel::Client::try_connect` builds a `Client` too.
    pub(super) buf: VecDeque<u8>,
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
