//! Protocol upgrades (WebSocket): an upgrade request is forwarded with its `Upgrade` field,
//! and only a `101 Switching Protocols` from the upstream turns the client connection into a
//! tunnel. Any other answer is an ordinary response, and the connection stays HTTP: bytes the
//! client sent after its upgrade request are then parsed as its next request, never passed
//! through unseen (CVE-2026-2833, CVE-2024-23326).

use tracing::debug;

use super::Exchange;
use crate::config::Config;
use crate::connection::Conn;
use crate::error::ProxyError;
use crate::http::request::{self, RequestHead};
use crate::http::response::ResponseHead;
use crate::http::write::{self, FieldEdits};
use crate::http::HeaderSpan;
use crate::relay;
use crate::stream::Stream;
use crate::tunnel;
use crate::upstream::UpstreamConn;

/// A 101 is a final answer only to an upgrade request, and must name the protocol.
pub(super) fn accept_101(
    head: &RequestHead,
    resp: ResponseHead,
    buf: &[u8],
    fields: &[HeaderSpan],
) -> Result<ResponseHead, ProxyError> {
    if !head.upgrade {
        return Err(ProxyError::UpstreamProtocol(
            "101 without an upgrade request",
        ));
    }
    if !fields.iter().any(|h| request::is_upgrade(buf, h)) {
        return Err(ProxyError::UpstreamProtocol("101 without an Upgrade field"));
    }
    Ok(resp)
}

/// Send the 101 to the client, then tunnel both ways until either side ends or the tunnel
/// idles for `tunnel_idle_ms`. The client connection ends with the tunnel.
pub(super) async fn switch(
    conn: &mut Conn,
    cfg: &Config,
    mut up: Box<UpstreamConn>,
    resp: ResponseHead,
    extra: &[u8],
    edits: &FieldEdits<'_>,
    ex: &mut Exchange,
) -> Result<bool, ProxyError> {
    conn.out.clear();
    write::switching_head(
        &mut conn.out,
        up.buf.pending(),
        &resp,
        &conn.resp_headers,
        extra,
        edits,
    );
    up.buf.consume(resp.head_len);
    // Bytes the server sent right after its 101 belong to the new protocol.
    let early_down = up.buf.len() as u64;
    conn.out.extend_from_slice(up.buf.pending());
    up.buf.consume(up.buf.len());
    ex.response_started = true;
    relay::write_all_timed(
        &mut conn.stream,
        &mut conn.out,
        cfg.timeouts.client_send,
        &mut conn.timer,
    )
    .await
    .map_err(|_| ProxyError::DownstreamIo)?;
    let client = std::mem::replace(&mut *conn.stream, Stream::Closed);
    let (end, moved) = tunnel::run(
        client,
        up.stream,
        conn.inbuf.pending(),
        cfg.timeouts.tunnel_idle,
    )
    .await;
    conn.inbuf.consume(conn.inbuf.len());
    conn.stream.count(moved.up, moved.down);
    ex.outcome.body_bytes = early_down + moved.down;
    debug!(peer = %conn.peer, ?end, up = moved.up, down = early_down + moved.down, "tunnel closed");
    Ok(false)
}
