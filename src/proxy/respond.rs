//! The response half of an exchange: the upstream's response head rewritten for the client
//! (compression and cache treatment decided here, `treat.rs`), the body streamed through the
//! relay, the connection pooled again when clean; and stale cache entries answering instead
//! of a failing upstream.

use tracing::debug;

use super::fail::response_body_error;
use super::{treat, upgrade, Changes, Exchange};
use crate::compress::{self, Coding};
use crate::config::{Config, Upstream};
use crate::connection::Conn;
use crate::error::ProxyError;
use crate::gateway::ctx::Outcome;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::write::{self, FieldEdits, OutFraming};
use crate::http::{BodyKind, Version};
use crate::relay::{self, Relay, Sink};
use crate::shard::Shard;
use crate::upstream::UpstreamConn;

/// Answer with a stale entry instead of an upstream failure.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_stale(
    conn: &mut Conn,
    t: &crate::cache::Treatment<'_>,
    entry: &crate::cache::Entry,
    head: &RequestHead,
    changes: &Changes<'_>,
    keep: bool,
    cfg: &Config,
    outcome: &mut Outcome,
) -> bool {
    treat::mark_stale(t);
    debug!(peer = %conn.peer, "origin failing; answered with a stale entry");
    let status = crate::gateway::ctx::CacheStatus::Stale;
    let extra = changes.response.extra;
    let (kept, bytes) = conn
        .serve_entry(entry, status, head, extra, keep, cfg)
        .await;
    outcome.status = entry.status;
    outcome.body_bytes = bytes;
    kept
}

/// Send the response head (with the `extra` field lines) and body to the client; pool the
/// upstream connection if it is clean.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_response(
    conn: &mut Conn,
    shard: &Shard,
    pools: &crate::upstream::pool::Pools,
    cfg: &Config,
    upstream: &Upstream,
    head: &RequestHead,
    mut up: Box<UpstreamConn>,
    resp: ResponseHead,
    extra: &[u8],
    changes: &Changes<'_>,
    ex: &mut Exchange,
) -> Result<bool, ProxyError> {
    let t = &cfg.timeouts;
    let edits = &changes.response;
    ex.outcome.status = resp.status;
    if resp.status == 101 {
        // Boxed: rare, and its future would otherwise enlarge every request's.
        return Box::pin(upgrade::switch(conn, cfg, up, resp, extra, edits, ex)).await;
    }
    let mut plan = treat::Plan::default();
    if let Some(tr) = changes.treat {
        if let Some(entry) = treat::stale_for_status(tr, resp.status) {
            // The request body is all sent; the upstream connection is not reused.
            drop(up);
            ex.response_started = true;
            let keep = head.keep_alive && !shard.draining();
            let out = &mut ex.outcome;
            // Boxed: rare, and its future would otherwise enlarge every request's.
            let stale = Box::pin(serve_stale(conn, tr, &entry, head, changes, keep, cfg, out));
            return Ok(stale.await);
        }
        let (buf, fields) = (up.buf.pending(), &conn.resp_headers);
        plan = treat::plan(tr, &resp, buf, fields, head, edits);
    }
    let framing = match plan.coding {
        Coding::Identity => client_framing(&resp, head),
        _ if head.version == Version::Http11 => OutFraming::Chunked,
        _ => OutFraming::Close,
    };
    let close = !head.keep_alive || shard.draining() || framing == OutFraming::Close;
    let edits = FieldEdits {
        weaken_etag: plan.coding != Coding::Identity,
        ..*edits
    };
    let vary = if plan.vary { compress::VARY_FIELD } else { b"" };
    conn.out.clear();
    write::response_head(
        &mut conn.out,
        up.buf.pending(),
        &resp,
        &conn.resp_headers,
        framing,
        close,
        head.version,
        &[extra, plan.coding.field(), vary, plan.x_cache],
        &edits,
    );
    up.buf.consume(resp.head_len);
    let sink = if framing == OutFraming::Chunked {
        Sink::Chunked
    } else {
        Sink::Raw
    };
    let filter = changes.treat.and_then(|tr| treat::filter(tr, &plan));
    let mut body = Relay::new(resp.body, sink, u64::MAX).with_filter(filter);
    // The head and whatever body is already here go out in one write.
    let staged = body
        .stage(&mut up.buf, &mut conn.out)
        .map_err(response_body_error)?;
    ex.response_started = true;
    ex.outcome.body_bytes = body.sent();
    if close && body.is_done() {
        conn.hold_last_answer(t);
    }
    let deadline = monoio::time::Instant::from_std(ex.clock + t.client_send);
    let (inbuf, out, timer) = (&mut up.buf, &mut conn.out, &mut conn.timer);
    relay::write_staged(staged, inbuf, out, &mut conn.stream, deadline, timer)
        .await
        .map_err(|_| ProxyError::DownstreamIo)?;
    let streamed = !body.is_done();
    if streamed {
        body.pump(
            &mut up.stream,
            &mut up.buf,
            &mut conn.stream,
            &mut conn.out,
            t.upstream_response,
            t.client_send,
            &mut conn.timer,
        )
        .await
        .map_err(response_body_error)?;
    }
    ex.outcome.body_bytes = body.sent();
    if let (Some(tr), Some(pending)) = (changes.treat, plan.store) {
        treat::finish(tr, pending, body.take_filter());
    }
    if resp.reusable && ex.body_done && up.buf.is_empty() {
        // A streamed body took its time: the connection is idle from now, not from its head.
        let now = if streamed {
            std::time::Instant::now()
        } else {
            ex.clock
        };
        pools.checkin(up, upstream.idle_per_server_max, now);
    } else {
        // Ended by its server (`Connection: close`, a body delimited by the close), or left
        // unusable (a request body not all sent, bytes after the answer): over TLS, close_notify.
        up.close();
    }
    Ok(!close)
}

/// How the response body is framed towards the client.
fn client_framing(resp: &ResponseHead, head: &RequestHead) -> OutFraming {
    match resp.body {
        // An empty body, or a HEAD or 304 answer describing a body it does not carry: keep the
        // declared length. 1xx and 204 never carry Content-Length.
        BodyKind::None => match resp.declared_length {
            Some(n) if resp.status != 204 && resp.status >= 200 => OutFraming::Length(n),
            _ => OutFraming::None,
        },
        BodyKind::Length(n) => OutFraming::Length(n),
        BodyKind::Chunked | BodyKind::UntilClose => match head.version {
            Version::Http11 => OutFraming::Chunked,
            Version::Http10 => OutFraming::Close,
        },
    }
}
