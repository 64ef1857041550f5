//! The admin listener's HTTP/1.1, kept apart from the proxy's: one request per connection
//! (answered with `Connection: close`), a bounded head and body, a deadline on reading them.
//! Operators and scrapers are the only clients; nothing here is on the request path.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// Largest request head.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest request body (`POST /cache/purge` filters).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Time to receive a whole request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to send a whole response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The `Authorization` field, if any.
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub extra: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            extra: Vec::new(),
            body,
        }
    }

    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
    }
}

/// Read one request; `None` when it is malformed, too large, or does not arrive in time.
pub async fn read(stream: &mut TcpStream) -> Option<Request> {
    monoio::time::timeout(READ_TIMEOUT, read_inner(stream))
        .await
        .ok()
        .flatten()
}

async fn read_inner(stream: &mut TcpStream) -> Option<Request> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(n) = req.parse(&buf).ok()? {
            let length = content_length(req.headers)?;
            if length > BODY_BYTES_MAX {
                return None;
            }
            let target = req.path?;
            let mut out = Request {
                method: req.method?.to_string(),
                path: target.split('?').next().unwrap_or("").to_string(),
                authorization: req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_string),
                body: buf[n..].to_vec(),
            };
            while out.body.len() < length {
                out.body.extend(read_some(stream).await?);
            }
            out.body.truncate(length);
            return Some(out);
        }
        if buf.len() >= HEAD_BYTES_MAX {
            return None;
        }
        buf.extend(read_some(stream).await?);
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let mut length = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None; // not needed by any admin endpoint
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
    }
    Some(length)
}

async fn read_some(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let (res, buf) = stream.read(Vec::with_capacity(8192)).await;
    match res {
        Ok(n) if n > 0 => Some(buf),
        _ => None,
    }
}

pub async fn write(stream: &mut TcpStream, r: Response) {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        r.status,
        crate::http::canned::reason(r.status),
        r.content_type,
        r.body.len()
    )
    .into_bytes();
    for (name, value) in &r.extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&r.body);
    let _ = monoio::time::timeout(WRITE_TIMEOUT, stream.write_all(out)).await;
}
