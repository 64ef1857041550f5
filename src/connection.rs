//! One client connection: the keep-alive loop (read head → route → answer or forward → next),
//! its buffers and timeouts. The only place that writes to the client; it decides, the
//! `http`, `router` and `proxy` modules compute.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use futures_util::FutureExt;
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};
use tracing::{debug, error};

use crate::buf::RecvBuf;
use crate::config::Config;
use crate::error::ProxyError;
use crate::http::canned::{self, StaticResponse};
use crate::http::chunked::Decoder;
use crate::http::request::{self, Method, RequestHead};
use crate::http::{BodyKind, HeaderSpan};
use crate::listener::ListenerCtx;
use crate::relay;
use crate::router::Action;
use crate::shard::{Shard, Snapshot};
use crate::stream::Stream;

/// Initial read buffer of a client connection; grows up to `limits.header_bytes_max` for heads.
const CLIENT_BUF_BYTES: usize = 4096;

/// Per-connection state, reused across the requests of a keep-alive connection.
pub struct Conn {
    pub stream: Stream,
    /// "http" or "https": the listener's scheme, for X-Forwarded-Proto.
    pub scheme: &'static [u8],
    pub peer: SocketAddr,
    /// The peer IP as text, for X-Forwarded-For; formatted once per connection.
    pub ip_text: Box<[u8]>,
    pub inbuf: RecvBuf,
    /// Output buffer: upstream request heads, then client response heads and body pieces.
    pub out: Vec<u8>,
    /// Fields of the current request head (spans into `inbuf`).
    pub headers: Vec<HeaderSpan>,
    /// Fields of the current response head (spans into the upstream buffer).
    pub resp_headers: Vec<HeaderSpan>,
}

/// Serve a client until it leaves, errs or the shard drains. A panic here is caught and ends
/// only this connection, never the shard.
pub async fn serve(shard: Rc<Shard>, tcp: TcpStream, peer: SocketAddr, listener: Rc<ListenerCtx>) {
    let _open = OpenConnection(shard.clone());
    let stream = match &listener.tls {
        None => Stream::from(tcp),
        Some(acceptor) => {
            let t = shard.snapshot().config.timeouts.tls_handshake;
            match timeout(t, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Stream::tls(tls),
                Ok(Err(e)) => {
                    debug!(shard = shard.id, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(shard = shard.id, %peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let mut conn = Conn {
        stream,
        scheme: listener.scheme(),
        peer,
        ip_text: peer.ip().to_string().into_bytes().into_boxed_slice(),
        inbuf: RecvBuf::with_capacity(CLIENT_BUF_BYTES),
        out: Vec::new(),
        headers: Vec::new(),
        resp_headers: Vec::new(),
    };
    if AssertUnwindSafe(conn.run(&shard))
        .catch_unwind()
        .await
        .is_err()
    {
        error!(shard = shard.id, %peer, "connection task panicked; connection closed");
    }
}

/// Counts the connection open for as long as it lives, panics included.
struct OpenConnection(Rc<Shard>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Counts a request in flight (for graceful drain) for as long as it lives.
struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    fn new(shard: &'a Shard) -> Self {
        shard.request_started();
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

// === impl Conn ===

impl Conn {
    async fn run(&mut self, shard: &Shard) {
        loop {
            if shard.draining() && self.inbuf.is_empty() {
                return;
            }
            let snap = shard.snapshot();
            let head = match self.read_head(&snap.config).await {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "refused request head");
                    self.answer_error(&e, &snap.config, false, false).await;
                    return;
                }
            };
            let _in_flight = InFlight::new(shard);
            let keep = self.exchange(shard, &snap, &head).await;
            if !keep || shard.draining() {
                return;
            }
        }
    }

    /// Wait for the next request head. `Ok(None)`: the connection ended quietly (client closed,
    /// idle timeout, or a head cut short by the client).
    async fn read_head(&mut self, cfg: &Config) -> Result<Option<RequestHead>, ProxyError> {
        let cap = cfg.limits.header_bytes_max;
        if self.inbuf.is_empty() {
            let first = timeout(
                cfg.timeouts.client_idle,
                self.inbuf.fill(&mut self.stream, cap),
            );
            match first.await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Ok(None),
            }
        }
        let deadline = Instant::now() + cfg.timeouts.client_header;
        loop {
            if let Some(head) =
                request::parse(self.inbuf.pending(), &cfg.limits, &mut self.headers)?
            {
                return Ok(Some(head));
            }
            match timeout_at(deadline, self.inbuf.fill(&mut self.stream, cap)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Ok(None),
                Err(_) => return Err(ProxyError::ClientTimeout),
            }
        }
    }

    /// Serve one request whose head is parsed. Returns whether the connection may go on.
    async fn exchange(&mut self, shard: &Shard, snap: &Snapshot, head: &RequestHead) -> bool {
        let cfg = &snap.config;
        let buf = self.inbuf.pending();
        let host = head.authority.map_or(&b""[..], |a| a.get(buf));
        let Some(route) = cfg.router.route(host, head.path.get(buf)) else {
            return self
                .refuse(head, &ProxyError::RouteNotFound, cfg, shard)
                .await;
        };
        match &route.action {
            Action::Respond(resp) => self.respond(head, resp, cfg, shard).await,
            Action::Proxy(id) => {
                let retry_unsafe = route.retry_non_idempotent;
                crate::proxy::forward(self, shard, snap, head, *id, retry_unsafe).await
            }
        }
    }

    /// Answer with a configured static response.
    async fn respond(
        &mut self,
        head: &RequestHead,
        resp: &StaticResponse,
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        self.inbuf.consume(head.head_len);
        let skipped = self.skip_body(head.body);
        let close = !(head.keep_alive && skipped) || shard.draining();
        self.out.clear();
        self.out
            .extend_from_slice(resp.bytes(close, head.method == Method::Head));
        let sent =
            relay::write_all(&mut self.stream, &mut self.out, cfg.timeouts.client_send).await;
        sent.is_ok() && !close
    }

    /// Answer an error for a request whose head is still in the buffer.
    async fn refuse(
        &mut self,
        head: &RequestHead,
        e: &ProxyError,
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        self.inbuf.consume(head.head_len);
        let keep = self.skip_body(head.body) && head.keep_alive && !shard.draining();
        self.answer_error(e, cfg, head.method == Method::Head, keep)
            .await
    }

    /// Write the canned answer for `e`. `keep`: the request allows keeping the connection.
    /// Returns whether the connection may go on.
    pub async fn answer_error(
        &mut self,
        e: &ProxyError,
        cfg: &Config,
        head_only: bool,
        keep: bool,
    ) -> bool {
        let Some(status) = e.status() else {
            return false;
        };
        let close = !(keep && e.keep_alive());
        self.out.clear();
        self.out
            .extend_from_slice(canned::error(status).bytes(close, head_only));
        let sent =
            relay::write_all(&mut self.stream, &mut self.out, cfg.timeouts.client_send).await;
        sent.is_ok() && !close
    }

    /// Drop the request body if it is already in the buffer in full (then the connection can go
    /// on); otherwise return false and the connection must close, since reading an unbounded
    /// body just to discard it is not worth it.
    pub fn skip_body(&mut self, body: BodyKind) -> bool {
        match body {
            BodyKind::None => true,
            BodyKind::Length(n) if (self.inbuf.len() as u64) >= n => {
                self.inbuf.consume(n as usize);
                true
            }
            BodyKind::Length(_) | BodyKind::UntilClose => false,
            BodyKind::Chunked => {
                let mut dec = Decoder::new();
                let mut pos = 0;
                let pending = self.inbuf.pending();
                while !dec.is_done() {
                    match dec.decode(&pending[pos..]) {
                        Ok(step) if step.consumed > 0 => pos += step.consumed,
                        _ => return false,
                    }
                }
                self.inbuf.consume(pos);
                true
            }
        }
    }
}
