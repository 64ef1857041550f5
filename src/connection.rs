//! One client connection: the keep-alive loop (read head → route → gateway phases → action →
//! next), its buffers and timeouts. The only place that writes to the client; it decides, the
//! `http`, `router`, `gateway` and `proxy` modules compute.
//!
//! Per request: route (404, or 405 + Allow) → `gateway::request_phases` in their fixed order
//! (access → CORS preflight → auth → rate limit → cache) → action: static response |
//! aggregation | forward. Every answer a phase gives goes through `answer_local`, which drains
//! a fully buffered body or closes the connection (a body left unread would be parsed as the
//! next request: Pingora CVE-2025-4366). A connection that closes while the client may still
//! be sending ends in a lingering close (`linger`), so the client reads its answer.

mod answer;
mod buffers;
mod cached;
mod guard;
mod idle;
mod linger;
mod logging;
mod workers;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant as StdInstant;

use futures_util::FutureExt;
use monoio::io::Canceller;
use monoio::time::{timeout, Instant};
use monoio_io_wrapper::CancelableIo;
use tracing::{debug, error};

use crate::buf::RecvBuf;
use crate::config::{Limits, Timeouts};
use crate::error::ProxyError;
use crate::gateway::{self, RequestCtx, RequestView, Step};
use crate::http::canned;
use crate::http::request::{self, Method, RequestHead};
use crate::http::write::FieldEdits;
use crate::http::HeaderSpan;
use crate::listener::ListenerCtx;
use crate::metrics::Metered;
use crate::proxy::Changes;
use crate::router::{Action, Lookup, RouteId, RouteRequest};
use crate::shard::{Shard, Snapshot};
use crate::signal::Signal;
use crate::stream::Stream;
use crate::timer::Timer;
use buffers::ConnBuffers;
use guard::{InFlight, OpenConnection};
pub use idle::IDLE_SWEEP_INTERVAL;
use idle::{Idle, Waited};
use workers::Kit;
pub use workers::{Accepted, Client, Workers};

/// Per-connection state, reused across the requests of a keep-alive connection.
pub struct Conn {
    /// The client stream, counting bytes into the listener's counters.
    pub stream: Metered<Stream>,
    /// "http" or "https": the listener's scheme, for X-Forwarded-Proto.
    pub scheme: &'static [u8],
    pub peer: SocketAddr,
    /// The peer IP as text, for X-Forwarded-For; formatted once per connection.
    pub ip_text: IpText,
    pub inbuf: RecvBuf,
    /// Output buffer: upstream request heads, then client response heads and body pieces.
    pub out: Vec<u8>,
    /// Fields of the current request head (spans into `inbuf`).
    pub headers: Vec<HeaderSpan>,
    /// Fields of the current response head (spans into the upstream buffer).
    pub resp_headers: Vec<HeaderSpan>,
    /// The current request as the access log needs it (filled only when the log is on).
    logged: logging::LoggedRequest,
    /// The current request's route, once routed (for its counters).
    route: Option<RouteId>,
    /// The current request's body was not read in full before its answer: the client may
    /// still be sending it, so closing lingers.
    pub body_unread: bool,
    /// The current request was answered 408 because the client was too slow with its head or
    /// body (`ProxyError::ClientTimeout`): closing does not linger.
    cut_off: bool,
    /// The deadline of the connection's current I/O operation (client or upstream side).
    pub timer: Timer,
    /// Cancels the wait for the next request when the connection goes idle (`idle`).
    canceller: Canceller,
}

/// How `Conn::run` ended.
enum Ended {
    /// The connection is over.
    Closed,
    /// Idle between requests, with nothing read: the connection waits without its task
    /// (`idle`) until the client sends or the idle timeout, given, passes.
    Idle(Instant),
}

/// What `Conn::read_head` found.
enum Next {
    Head(RequestHead),
    /// The connection ended quietly (client closed, idle timeout, or a head cut short).
    End,
    /// Idle: see `Ended::Idle`.
    Idle(Instant),
}

/// Serve a client until it leaves, errs, goes idle or the shard drains, with the timer and
/// buffers of `kit`, which is handed back for the task's next connection (`workers`). A panic
/// here is caught and ends only this connection, never the shard; the kit is then dropped.
async fn serve(shard: Rc<Shard>, client: Client, kit: Kit) -> Option<Kit> {
    let (stream, peer, listener, open, resumed) = match client {
        Client::New(Accepted {
            tcp,
            peer,
            listener,
        }) => {
            let open = OpenConnection::new(shard.clone(), peer.ip(), &listener);
            debug!(shard = shard.id, %peer, "connection accepted");
            let Some(stream) = handshake(&shard, tcp, peer, &listener).await else {
                return Some(kit);
            };
            let stream = Metered::new(stream, listener.stats.clone());
            (stream, peer, listener, open, false)
        }
        Client::Back(idle) => {
            let stream = Metered::new(idle.stream.resume(), idle.listener.stats.clone());
            (stream, idle.peer, idle.listener, idle.open, true)
        }
    };
    let Kit {
        timer,
        bufs,
        canceller,
    } = kit;
    let mut conn = Conn {
        stream,
        scheme: listener.scheme(),
        peer,
        ip_text: IpText::new(peer.ip()),
        inbuf: bufs.inbuf,
        out: bufs.out,
        headers: bufs.headers,
        resp_headers: bufs.resp_headers,
        logged: logging::LoggedRequest::default(),
        route: None,
        body_unread: false,
        cut_off: false,
        timer,
        canceller,
    };
    let served = async {
        let ended = conn.run(&shard, resumed).await;
        if let Ended::Closed = ended {
            conn.end(&shard).await;
        }
        ended
    };
    let Ok(ended) = AssertUnwindSafe(served).catch_unwind().await else {
        // Its buffers and timer are dropped with it, not kept.
        error!(shard = shard.id, %peer, "connection task panicked; connection closed");
        return None;
    };
    let Conn {
        stream,
        inbuf,
        out,
        headers,
        resp_headers,
        timer,
        canceller,
        ..
    } = conn;
    match ended {
        // Close the socket first, then keep the buffers and timer for the task's next
        // connection.
        Ended::Closed => drop((stream, open)),
        Ended::Idle(until) => match stream.into_inner().park() {
            Some(parked) => {
                let idle = Idle {
                    stream: parked,
                    peer,
                    listener,
                    open,
                };
                monoio::spawn(idle::wait(shard.clone(), idle, until));
            }
            // Not reached: only a stream whose read could be cancelled goes idle.
            None => drop(open),
        },
    }
    let bufs = ConnBuffers {
        inbuf,
        out,
        headers,
        resp_headers,
    }
    .recycle();
    Some(Kit {
        timer,
        bufs,
        canceller,
    })
}

/// The client's stream: TLS after a handshake within `timeouts.tls_handshake` on a TLS
/// listener. `None`: the handshake failed or timed out (the connection is closed).
async fn handshake(
    shard: &Shard,
    tcp: monoio::net::TcpStream,
    peer: SocketAddr,
    listener: &ListenerCtx,
) -> Option<Stream> {
    let Some(acceptor) = &listener.tls else {
        return Some(Stream::from(tcp));
    };
    let t = shard.snapshot().config.timeouts.tls_handshake;
    let fd = tcp.as_raw_fd();
    // Boxed: a monoio timeout's timer entry is 128-byte aligned and the handshake future is
    // large; inline, they would pad every connection's task, plain ones included.
    let (socket, cancel) = CancelableIo::new(tcp);
    match Box::pin(timeout(t, acceptor.accept(socket))).await {
        Ok(Ok(tls)) => Some(Stream::tls(tls, fd, cancel)),
        Ok(Err(e)) => {
            debug!(shard = shard.id, %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(shard = shard.id, %peer, "TLS handshake timed out");
            None
        }
    }
}

/// A client IP as text, kept inline: formatting it into a `String` cost a connection three
/// allocations. 48 bytes hold the longest form (45: an IPv6 address ending in dotted IPv4).
pub struct IpText {
    len: u8,
    buf: [u8; 48],
}

impl IpText {
    pub fn new(ip: IpAddr) -> IpText {
        let mut buf = [0u8; 48];
        let len = match ip {
            // By hand: `Display` for an IPv4 address costs ~1,000 instructions, a noticeable
            // share of a connection that carries one request (callgrind, `Connection: close`).
            IpAddr::V4(v4) => {
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        buf[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        buf[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    buf[n] = b'0' + octet % 10;
                    n += 1;
                }
                n
            }
            IpAddr::V6(_) => {
                let mut rest = &mut buf[..];
                // Cannot fail: every IP address's text fits.
                let _ = write!(rest, "{ip}");
                48 - rest.len()
            }
        };
        IpText {
            len: len as u8,
            buf,
        }
    }
}

impl std::ops::Deref for IpText {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

// === impl Conn ===

impl Conn {
    /// `resumed`: an idle connection whose client sent again; its request is served even
    /// when the shard drains, as one already waited for would be.
    async fn run(&mut self, shard: &Shard, mut resumed: bool) -> Ended {
        let mut ctx = RequestCtx::default();
        loop {
            if shard.draining() && self.inbuf.is_empty() && !std::mem::take(&mut resumed) {
                return Ended::Closed;
            }
            self.route = None;
            self.body_unread = false;
            self.cut_off = false;
            // Wait for the head with copies of the limits: an idle connection holds no config
            // snapshot, so a reload's old snapshot goes as soon as its requests finish.
            let (limits, timeouts) = {
                let snap = shard.snapshot();
                (snap.config.limits.clone(), snap.config.timeouts.clone())
            };
            let hand_off = shard.connections() > limits.idle_release_connections;
            // A TLS connection waiting for a request ends at a drain with close_notify.
            let stop = self.stream.is_tls().then_some(&shard.stop);
            let read = self.read_head(&limits, &timeouts, hand_off, stop).await;
            // The config current when the request arrived; the request keeps it to the end.
            let snap = shard.snapshot();
            let head = match read {
                Ok(Next::Head(head)) => head,
                Ok(Next::End) => return Ended::Closed,
                Ok(Next::Idle(_)) if shard.draining() => return Ended::Closed,
                Ok(Next::Idle(until)) => return Ended::Idle(until),
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "refused request head");
                    ctx.clear();
                    ctx.outcome.status = e.status().unwrap_or(0);
                    ctx.outcome.body_bytes = canned::error(ctx.outcome.status).body_len(false);
                    let started = StdInstant::now();
                    self.answer_error(&e, &snap.config, false, false).await;
                    self.logged.unknown();
                    logging::log_request(shard, &self.ip_text, &self.logged, &ctx, started);
                    snap.stats
                        .unrouted
                        .done(ctx.outcome.status, started.elapsed());
                    // The refused head is still buffered, and more may follow it.
                    self.close(shard, &timeouts).await;
                    return Ended::Closed;
                }
            };
            let in_flight = InFlight::new(shard);
            if shard.access_log.is_some() {
                self.logged
                    .capture(self.inbuf.pending(), &head, &self.headers);
            }
            let started = StdInstant::now();
            let keep = self.exchange(shard, &snap, &head, &mut ctx).await;
            logging::log_request(shard, &self.ip_text, &self.logged, &ctx, started);
            let stats = snap.stats.route(self.route);
            stats.done(ctx.outcome.status, started.elapsed());
            stats.cached(ctx.cache_status);
            if !keep || shard.draining() {
                // The request is answered; a lingering close is not a request in flight.
                drop(in_flight);
                self.close(shard, &timeouts).await;
                return Ended::Closed;
            }
        }
    }

    /// Wait for the next request head (`hand_off`: an idle wait may end in `Next::Idle`; `stop`:
    /// an idle wait ends in `Next::End` when it fires).
    async fn read_head(
        &mut self,
        limits: &Limits,
        timeouts: &Timeouts,
        hand_off: bool,
        stop: Option<&Signal>,
    ) -> Result<Next, ProxyError> {
        let cap = limits.header_bytes_max;
        if self.inbuf.is_empty() {
            match self
                .await_request(timeouts.client_idle, cap, hand_off, stop)
                .await
            {
                Waited::Bytes => {}
                Waited::End => return Ok(Next::End),
                Waited::Idle(until) => return Ok(Next::Idle(until)),
            }
        }
        // The head deadline is read from the clock only when the first read did not bring the
        // whole head (the common case reads no clock here).
        let mut deadline = None;
        loop {
            if let Some(head) = request::parse(self.inbuf.pending(), limits, &mut self.headers)? {
                return Ok(Next::Head(head));
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeouts.client_header);
            let fill = self.inbuf.fill(&mut self.stream, cap);
            match self.timer.limit_at(deadline, fill).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Ok(Next::End),
                Err(_) => return Err(ProxyError::ClientTimeout),
            }
        }
    }

    /// Serve one request whose head is parsed. Returns whether the connection may go on.
    async fn exchange(
        &mut self,
        shard: &Shard,
        snap: &Snapshot,
        head: &RequestHead,
        ctx: &mut RequestCtx,
    ) -> bool {
        let cfg = &snap.config;
        ctx.clear();
        let found = {
            let buf = self.inbuf.pending();
            cfg.router.route(&RouteRequest {
                host: head.authority.map_or(&b""[..], |a| a.get(buf)),
                path: head.path.get(buf),
                method: gateway::cors::routing_method(head.method, buf, &self.headers),
                buf,
                headers: &self.headers,
            })
        };
        let (id, params) = match found {
            Lookup::Found(id, params) => (id, params),
            Lookup::NotFound => {
                ctx.outcome.status = 404;
                ctx.outcome.body_bytes = canned::error(404).body_len(head.method == Method::Head);
                return self
                    .refuse(head, &ProxyError::RouteNotFound, cfg, shard)
                    .await;
            }
            Lookup::MethodNotAllowed(allow) => {
                ctx.answer_fields.extend_from_slice(b"Allow: ");
                allow.write(&mut ctx.answer_fields);
                ctx.answer_fields.extend_from_slice(b"\r\n");
                return self.answer_local(head, 405, ctx, cfg, shard).await;
            }
        };
        let route = cfg.router.get(id);
        self.route = Some(id);
        ctx.begin(id, params, route.policy.claims.len());
        let step = {
            let view = RequestView {
                buf: self.inbuf.pending(),
                head,
                headers: &self.headers,
                client_ip: &self.ip_text,
                peer: self.peer.ip(),
            };
            let step = gateway::request_phases(shard, snap, route, ctx, &view).await;
            if step == Step::Continue {
                gateway::prepare_forward(route, ctx, &view);
            }
            step
        };
        if let Step::Respond(status) = step {
            return self.answer_local(head, status, ctx, cfg, shard).await;
        }
        match &route.action {
            Action::Respond(resp) => {
                ctx.outcome.status = resp.status;
                ctx.outcome.body_bytes = resp.body_len(head.method == Method::Head);
                self.respond(head, resp, &ctx.resp_fields, cfg, shard).await
            }
            // Boxed: its future is larger than the proxy path's and would be memcpy'd along.
            Action::Aggregate(agg) => Box::pin(self.aggregate(shard, snap, head, agg, ctx)).await,
            Action::Proxy(up) => {
                // The cache phase: only routes that cache or compress pay for it.
                let treat = if route.policy.cache.is_some() || route.policy.compress {
                    match self
                        .cache_phase(shard, cfg, head, route, &mut ctx.cache)
                        .await
                    {
                        cached::Phase::Hit(entry) => {
                            return self.answer_hit(head, &entry, ctx, cfg, shard).await
                        }
                        cached::Phase::Forward(t) => Some(t),
                    }
                } else {
                    None
                };
                let changes = Changes {
                    target: ctx.rewritten.then_some(&ctx.target[..]),
                    request: FieldEdits {
                        remove: &route.policy.request_ops.remove,
                        extra: &ctx.req_fields,
                        weaken_etag: false,
                    },
                    response: FieldEdits {
                        remove: &route.policy.response_ops.remove,
                        extra: &ctx.resp_fields,
                        weaken_etag: false,
                    },
                    body_bytes_max: route
                        .policy
                        .body_bytes_max
                        .unwrap_or(cfg.limits.body_bytes_max),
                    treat: treat.as_ref(),
                };
                let retry_unsafe = route.retry_non_idempotent;
                let outcome = &mut ctx.outcome;
                let keep = crate::proxy::forward(
                    self,
                    shard,
                    snap,
                    head,
                    *up,
                    retry_unsafe,
                    &changes,
                    outcome,
                )
                .await;
                if let Some(t) = &treat {
                    ctx.cache_status = t.status.get();
                }
                keep
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IpText;
    use std::net::IpAddr;

    #[test]
    fn ip_text_matches_display_for_the_longest_forms() {
        for ip in [
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "1:2:3:4:5:6:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(&*IpText::new(ip), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn ip_text_writes_every_octet_value_in_every_position() {
        for octet in 0..=255u8 {
            for pos in 0..4 {
                let mut octets = [1, 20, 255, 0];
                octets[pos] = octet;
                let ip = IpAddr::from(octets);
                assert_eq!(&*IpText::new(ip), ip.to_string().as_bytes(), "{ip}");
            }
        }
    }
}
