//! Request aggregation: one client request fans out to several upstream GETs at once, and the
//! answer is one JSON object with each part's response under its key. Uses the shard's
//! balancers, pools and `upstream::connect` like forwarding does; part bodies are bounded.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::balancer::{Affinity, Tried};
use crate::config::UpstreamId;
use crate::error::ProxyError;
use crate::http::chunked::Decoder;
use crate::http::response;
use crate::http::BodyKind;
use crate::router::Params;
use crate::shard::Snapshot;
use crate::upstream::{self, UpstreamConn};

use super::rewrite::Piece;

/// Largest body accepted from one part.
pub const PART_BYTES_MAX: usize = 1024 * 1024;
/// Largest response head of one part.
const PART_HEAD_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug)]
pub struct Aggregate {
    pub parts: Vec<Part>,
    pub on_error: OnError,
}

#[derive(Debug)]
pub struct Part {
    pub key: String,
    pub upstream: UpstreamId,
    /// Path and query template with the route's parameters.
    pub path: Vec<Piece>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Failed parts become `{"error": "…"}` under their key; the answer is still 200.
    Partial,
    /// Any failed part fails the request (502, or 504 for a timeout).
    Fail,
}

/// Why a part failed (the text goes into the partial answer; nothing internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartError {
    Timeout,
    Unavailable,
    Invalid,
    TooLarge,
    Status(u16),
}

impl PartError {
    fn text(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"error\":\"");
        match self {
            PartError::Timeout => out.extend_from_slice(b"timeout"),
            PartError::Unavailable => out.extend_from_slice(b"unavailable"),
            PartError::Invalid => out.extend_from_slice(b"invalid response"),
            PartError::TooLarge => out.extend_from_slice(b"response too large"),
            PartError::Status(s) => {
                out.extend_from_slice(b"status\",\"status\":");
                out.extend_from_slice(itoa::Buffer::new().format(s).as_bytes());
                out.push(b'}');
                return;
            }
        }
        out.extend_from_slice(b"\"}");
    }
}

/// Call every part concurrently and write the JSON answer body into `body`. `Ok(complete)`.
pub async fn run(
    snap: &Snapshot,
    agg: &Aggregate,
    buf: &[u8],
    params: &Params,
    client_ip: &[u8],
    body: &mut Vec<u8>,
) -> Result<bool, ProxyError> {
    let calls = agg.parts.iter().map(|p| {
        let mut target = Vec::new();
        for piece in &p.path {
            match piece {
                Piece::Lit(l) => target.extend_from_slice(l.as_bytes()),
                Piece::Param(i) if *i < params.len => {
                    target.extend_from_slice(params.spans[*i].get(buf))
                }
                Piece::Param(_) => {}
            }
        }
        async move {
            match monoio::time::timeout(p.timeout, call(snap, p.upstream, &target, client_ip)).await
            {
                Ok(r) => r,
                Err(_) => Err(PartError::Timeout),
            }
        }
    });
    let results = join_all(calls).await;
    if agg.on_error == OnError::Fail {
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            return Err(match e {
                PartError::Timeout => ProxyError::UpstreamTimeout,
                _ => ProxyError::UpstreamProtocol("aggregate part failed"),
            });
        }
    }
    body.clear();
    body.push(b'{');
    let mut complete = true;
    for (i, (part, r)) in agg.parts.iter().zip(&results).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        json_string(body, part.key.as_bytes());
        body.push(b':');
        match r {
            Ok(b) if serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok() => {
                body.extend_from_slice(b)
            }
            Ok(b) => json_string(body, &String::from_utf8_lossy(b).into_owned().into_bytes()),
            Err(e) => {
                complete = false;
                e.text(body);
            }
        }
    }
    body.push(b'}');
    Ok(complete)
}

/// The 200 answer: JSON `body`, `X-Aggregate-Complete: false` when a part failed, `extra` field
/// lines (CORS, RateLimit-*, transforms); the body is left out for HEAD.
pub fn write_answer(
    out: &mut Vec<u8>,
    body: &[u8],
    complete: bool,
    extra: &[u8],
    close: bool,
    head_only: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
    if !complete {
        out.extend_from_slice(b"X-Aggregate-Complete: false\r\n");
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// One GET to one server of `id`: the response body when the status is 2xx.
async fn call(
    snap: &Snapshot,
    id: UpstreamId,
    target: &[u8],
    client_ip: &[u8],
) -> Result<Vec<u8>, PartError> {
    let cfg = &snap.config;
    let cluster = snap.cluster(id).ok_or(PartError::Unavailable)?;
    let (upstream, lb) = (&*cluster.upstream, &cluster.lb);
    let i = lb
        .pick(
            upstream,
            &Affinity::default(),
            &Tried::default(),
            Instant::now(),
        )
        .ok_or(PartError::Unavailable)?;
    let _load = lb.begin(i);
    let server = &upstream.servers[i];
    let addr = snap.pools.addr(server.pool).unwrap_or(server.addr);
    let tls = snap.tls_target(id, upstream, server);
    let pooled = snap
        .pools
        .checkout(server.pool, cfg.timeouts.upstream_idle, Instant::now())
        .filter(|c| c.stream.is_tls() == tls.is_some());
    let mut up = match pooled {
        Some(up) => up,
        None => upstream::connect(addr, server.pool, cfg.timeouts.upstream_connect, tls)
            .await
            .map_err(|_| PartError::Unavailable)?,
    };
    let mut out = Vec::with_capacity(128 + target.len());
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(server.address.as_bytes());
    out.extend_from_slice(b"\r\nAccept: application/json\r\nX-Forwarded-For: ");
    out.extend_from_slice(client_ip);
    out.extend_from_slice(b"\r\nVia: 1.1 coregate\r\n\r\n");
    crate::relay::write_all(&mut up.stream, &mut out, cfg.timeouts.upstream_response)
        .await
        .map_err(|_| PartError::Unavailable)?;
    let (status, body, reusable) = read_response(&mut up).await?;
    if reusable && up.buf.is_empty() {
        snap.pools
            .checkin(up, upstream.idle_per_server_max, Instant::now());
    }
    if !(200..300).contains(&status) {
        return Err(PartError::Status(status));
    }
    Ok(body)
}

/// Read a whole response (head and bounded body): (status, body, connection reusable).
async fn read_response(up: &mut UpstreamConn) -> Result<(u16, Vec<u8>, bool), PartError> {
    let mut headers = Vec::new();
    let head = loop {
        match response::parse(up.buf.pending(), false, PART_HEAD_BYTES_MAX, &mut headers) {
            Ok(Some(h)) if h.status >= 200 => break h,
            Ok(Some(h)) => up.buf.consume(h.head_len),
            Ok(None) => fill(up, PART_HEAD_BYTES_MAX).await?,
            Err(_) => return Err(PartError::Invalid),
        }
    };
    up.buf.consume(head.head_len);
    let mut body = Vec::new();
    match head.body {
        BodyKind::None => {}
        BodyKind::Length(n) if n > PART_BYTES_MAX as u64 => return Err(PartError::TooLarge),
        BodyKind::Length(n) => {
            while (up.buf.len() as u64) < n {
                fill(up, PART_BYTES_MAX).await?;
            }
            body.extend_from_slice(&up.buf.pending()[..n as usize]);
            up.buf.consume(n as usize);
        }
        BodyKind::Chunked => {
            let mut dec = Decoder::new();
            while !dec.is_done() {
                let step = dec
                    .decode(up.buf.pending())
                    .map_err(|_| PartError::Invalid)?;
                if let Some(r) = step.data.clone() {
                    if body.len() + r.len() > PART_BYTES_MAX {
                        return Err(PartError::TooLarge);
                    }
                    body.extend_from_slice(&up.buf.pending()[r]);
                }
                up.buf.consume(step.consumed);
                if step.consumed == 0 && !dec.is_done() {
                    fill(up, PART_BYTES_MAX).await?;
                }
            }
        }
        BodyKind::UntilClose => loop {
            body.extend_from_slice(up.buf.pending());
            up.buf.consume(up.buf.len());
            if body.len() > PART_BYTES_MAX {
                return Err(PartError::TooLarge);
            }
            match up.buf.fill(&mut up.stream, PART_BYTES_MAX).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(PartError::Invalid),
            }
        },
    }
    Ok((head.status, body, head.reusable))
}

async fn fill(up: &mut UpstreamConn, max: usize) -> Result<(), PartError> {
    match up.buf.fill(&mut up.stream, max).await {
        Ok(0) | Err(_) => Err(PartError::Invalid),
        Ok(_) => Ok(()),
    }
}

/// `s` as a JSON string literal.
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    let text = String::from_utf8_lossy(s);
    // serde_json escapes exactly what JSON needs; a String always serialises.
    if let Ok(quoted) = serde_json::to_vec(&*text) {
        out.extend_from_slice(&quoted);
    }
}
