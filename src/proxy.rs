//! Forwarding one request to an upstream cluster and its response back: pick a server, check a
//! connection out of the shard's pool (or connect), send the rewritten head and the body, read
//! the response head, send the rewritten head and stream the body, and return the connection to
//! the pool when both messages were framed completely.
//!
//! A reused pooled connection may have been closed by the server while idle; when it fails
//! before any response byte and the whole request is still in hand, the request is sent once
//! more on a fresh connection to the same server. Separately, the attempt loop moves a failed
//! request to another server (`retries`, within the retry budget; rules in `upstream::retry`),
//! and reports every outcome to the balancer (latency, in-flight count, outlier detection).

mod attempt;
mod fail;
mod respond;
mod treat;
mod upgrade;

use std::time::Instant;

use tracing::debug;

use crate::config::{Config, UpstreamId, UpstreamServer};
use crate::connection::Conn;
use crate::error::ProxyError;
use crate::gateway::ctx::Outcome;
use crate::http::canned;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{self, ResponseError, ResponseHead};
use crate::http::write::{self, FieldEdits, ForwardInfo, OutFraming};
use crate::http::{BodyKind, Version};
use crate::relay::{self, Relay, RelayError, Sink};
use crate::shard::{Shard, Snapshot};
use crate::upstream::UpstreamConn;
use fail::{request_body_error, upstream_write_error};
use respond::{send_response, serve_stale};

/// A request body up to this size is kept whole in the output buffer, so that the request can
/// be replayed on a fresh connection if a pooled one turns out dead.
const REPLAY_BYTES_MAX: usize = 64 * 1024;
/// Largest upstream response head.
const RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Interim (1xx) responses skipped before the final one.
const INTERIM_MAX: usize = 8;

/// Progress of one exchange, for deciding what a failure means to the client connection.
#[derive(Debug)]
struct Exchange {
    /// The exchange's latest clock reading: taken when it starts, when an attempt starts and
    /// when a response head arrives; deadlines and pool idle times count from it, so that a
    /// request reads the clock a few times instead of once per I/O operation.
    clock: Instant,
    /// The request head has been taken out of the client buffer.
    head_consumed: bool,
    /// The request body has been read from the client in full.
    body_done: bool,
    /// Bytes of the response have gone to the client: a failure can only close.
    response_started: bool,
    /// Status, bytes, server and timing, for the request's context.
    outcome: Outcome,
}

/// What the gateway changes on the way through (route rewrites and header transforms).
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a> {
    /// Upstream request-target instead of the client's.
    pub target: Option<&'a [u8]>,
    pub request: FieldEdits<'a>,
    pub response: FieldEdits<'a>,
    /// Largest request body (the route's `body_bytes_max`, else `limits.body_bytes_max`).
    pub body_bytes_max: u64,
    /// Caching and compression of the response (`None` on routes without either).
    pub treat: Option<&'a crate::cache::Treatment<'a>>,
}

/// Forward `head` to cluster `id`. `retry_non_idempotent`: the route lets non-idempotent
/// requests move to another server too. Returns whether the client connection may go on;
/// `outcome` says what was answered.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    conn: &mut Conn,
    shard: &Shard,
    snap: &Snapshot,
    head: &RequestHead,
    id: UpstreamId,
    retry_non_idempotent: bool,
    changes: &Changes<'_>,
    outcome: &mut Outcome,
) -> bool {
    let mut ex = Exchange {
        clock: Instant::now(),
        head_consumed: false,
        body_done: matches!(head.body, BodyKind::None | BodyKind::Length(0)),
        response_started: false,
        outcome: Outcome::default(),
    };
    let cfg = &snap.config;
    let retry_unsafe = retry_non_idempotent;
    let result =
        attempt::exchange(conn, shard, snap, head, id, retry_unsafe, changes, &mut ex).await;
    *outcome = ex.outcome;
    match result {
        Ok(keep) => keep,
        Err(e) if ex.response_started => {
            debug!(peer = %conn.peer, error = %e, "response cut short; closing");
            false
        }
        Err(e) => {
            debug!(peer = %conn.peer, upstream = %cfg.upstreams[id].name, error = %e, "request failed");
            if !ex.head_consumed {
                conn.inbuf.consume(head.head_len);
                ex.body_done = conn.skip_body(head.body);
            }
            conn.body_unread = !ex.body_done;
            let keep = ex.body_done && head.keep_alive && !shard.draining();
            if let Some((t, entry)) = changes
                .treat
                .and_then(|t| Some((t, treat::stale_for_error(t, &e)?)))
            {
                // Boxed: rare, and its future would otherwise enlarge every request's.
                let stale = serve_stale(conn, t, &entry, head, changes, keep, cfg, outcome);
                return Box::pin(stale).await;
            }
            outcome.status = e.status().unwrap_or(STATUS_CLIENT_GONE);
            outcome.body_bytes =
                canned::error(outcome.status).body_len(head.method == Method::Head);
            conn.answer_error(&e, cfg, head.method == Method::Head, keep)
                .await
        }
    }
}

/// Logged status of a request whose client left before any answer (nginx's convention).
pub const STATUS_CLIENT_GONE: u16 = 499;

/// Write the upstream request head into `conn.out`, then as much of the body as is already
/// buffered. Consumes the head from the client buffer.
fn build_request(
    conn: &mut Conn,
    cfg: &Config,
    head: &RequestHead,
    server: &UpstreamServer,
    changes: &Changes<'_>,
    ex: &mut Exchange,
) -> Result<Relay, ProxyError> {
    let framing = match head.body {
        BodyKind::None | BodyKind::UntilClose => OutFraming::None,
        BodyKind::Length(n) => OutFraming::Length(n),
        BodyKind::Chunked => OutFraming::Chunked,
    };
    let info = ForwardInfo {
        client_ip: &conn.ip_text,
        proto: conn.scheme,
        default_host: server.address.as_bytes(),
        target: changes.target,
        edits: changes.request,
    };
    conn.out.clear();
    write::request_head(
        &mut conn.out,
        conn.inbuf.pending(),
        head,
        &conn.headers,
        &info,
        framing,
    );
    conn.inbuf.consume(head.head_len);
    ex.head_consumed = true;
    let sink = match framing {
        OutFraming::Chunked => Sink::Chunked,
        _ => Sink::Raw,
    };
    let mut body =
        Relay::new(head.body, sink, changes.body_bytes_max).with_min_rate(cfg.limits.body_rate_min);
    let limit = conn.out.len() + REPLAY_BYTES_MAX;
    body.encode_buffered(&mut conn.inbuf, &mut conn.out, limit)
        .map_err(request_body_error)?;
    ex.body_done = body.is_done();
    Ok(body)
}

enum Attempt {
    /// Failed before any response byte on a connection that may have been stale.
    Retry(ProxyError),
    Fail(ProxyError),
}

/// Send the request (head, buffered body, then the rest of the body) and read the final
/// response head. `conn.out` holds the request on entry and is kept intact until the response
/// head arrives when the request is replayable.
async fn send_request(
    conn: &mut Conn,
    up: &mut UpstreamConn,
    body: &mut Relay,
    head: &RequestHead,
    cfg: &Config,
    ex: &mut Exchange,
) -> Result<ResponseHead, Attempt> {
    let t = &cfg.timeouts;
    let (res, out) = write_keep(
        &mut up.stream,
        std::mem::take(&mut conn.out),
        ex.clock + t.upstream_response,
        &mut conn.timer,
    )
    .await;
    conn.out = out;
    res.map_err(|e| match e {
        // The buffer went with the cancelled write: nothing left to replay.
        RelayError::WriteTimeout => Attempt::Fail(ProxyError::UpstreamTimeout),
        e => Attempt::Retry(upstream_write_error(e)),
    })?;
    if !body.is_done() {
        conn.out.clear();
        if head.expect_continue && head.version == Version::Http11 {
            conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            relay::write_all_timed(
                &mut conn.stream,
                &mut conn.out,
                t.client_send,
                &mut conn.timer,
            )
            .await
            .map_err(|_| Attempt::Fail(ProxyError::DownstreamIo))?;
        }
        body.pump(
            &mut conn.stream,
            &mut conn.inbuf,
            &mut up.stream,
            &mut conn.out,
            t.client_body,
            t.upstream_response,
            &mut conn.timer,
        )
        .await
        .map_err(|e| Attempt::Fail(request_body_error(e)))?;
        ex.body_done = true;
        // The body took its time: the wait for the response starts now.
        ex.clock = Instant::now();
    }
    read_response_head(conn, up, head, cfg, ex.clock).await
}

/// Read the final response head, within `upstream_response` of `sent` (when the request was
/// sent, or a moment before).
async fn read_response_head(
    conn: &mut Conn,
    up: &mut UpstreamConn,
    head: &RequestHead,
    cfg: &Config,
    sent: Instant,
) -> Result<ResponseHead, Attempt> {
    let deadline = monoio::time::Instant::from_std(sent + cfg.timeouts.upstream_response);
    let head_request = head.method == Method::Head;
    let mut received_any = false;
    let mut interim = 0;
    loop {
        match response::parse(
            up.buf.pending(),
            head_request,
            RESPONSE_HEAD_BYTES_MAX,
            &mut conn.resp_headers,
        ) {
            Ok(Some(r)) if r.status == 101 => {
                return upgrade::accept_101(head, r, up.buf.pending(), &conn.resp_headers)
                    .map_err(Attempt::Fail)
            }
            Ok(Some(r)) if r.status < 200 => {
                interim += 1;
                if interim > INTERIM_MAX {
                    return Err(Attempt::Fail(ProxyError::UpstreamProtocol(
                        "too many interim responses",
                    )));
                }
                up.buf.consume(r.head_len);
                continue;
            }
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(ResponseError::TooLarge) => {
                return Err(Attempt::Fail(ProxyError::UpstreamProtocol(
                    "response head too large",
                )))
            }
            Err(ResponseError::Malformed(why)) => {
                return Err(Attempt::Fail(ProxyError::UpstreamProtocol(why)))
            }
        }
        let fill = up.buf.fill(&mut up.stream, RESPONSE_HEAD_BYTES_MAX);
        let read = conn.timer.limit_at(deadline, fill).await;
        match read {
            Ok(Ok(0)) if !received_any => {
                return Err(Attempt::Retry(ProxyError::UpstreamProtocol(
                    "closed before responding",
                )))
            }
            Ok(Ok(0)) => {
                return Err(Attempt::Fail(ProxyError::UpstreamProtocol(
                    "response head cut short",
                )))
            }
            Ok(Ok(_)) => received_any = true,
            Ok(Err(e)) if !received_any => {
                return Err(Attempt::Retry(ProxyError::UpstreamIo(e.kind())))
            }
            Ok(Err(e)) => return Err(Attempt::Fail(ProxyError::UpstreamIo(e.kind()))),
            Err(_) => return Err(Attempt::Fail(ProxyError::UpstreamTimeout)),
        }
    }
}

/// Write `buf` by `deadline` without clearing it; returns it for a possible replay.
async fn write_keep(
    stream: &mut crate::stream::Stream,
    buf: Vec<u8>,
    deadline: Instant,
    timer: &mut crate::timer::Timer,
) -> (Result<(), RelayError>, Vec<u8>) {
    use monoio::io::AsyncWriteRentExt;
    let deadline = monoio::time::Instant::from_std(deadline);
    match timer.limit_at(deadline, stream.write_all(buf)).await {
        Ok((Ok(_), buf)) => (Ok(()), buf),
        Ok((Err(e), buf)) => (Err(RelayError::WriteIo(e)), buf),
        Err(_) => (Err(RelayError::WriteTimeout), Vec::new()),
    }
}
