//! The answers a connection writes itself: configured static responses, the phases' answers
//! (204 preflight, 401, 403, 405, 413, 429), aggregations, canned errors; and dropping a request
//! body that is already buffered so the connection can go on.

use super::Conn;
use crate::config::Config;
use crate::error::ProxyError;
use crate::gateway::aggregate::Aggregate;
use crate::gateway::{self, RequestCtx};
use crate::http::canned::{self, StaticResponse};
use crate::http::chunked::Decoder;
use crate::http::request::{Method, RequestHead};
use crate::http::BodyKind;
use crate::relay;
use crate::shard::{Shard, Snapshot};
use tracing::debug;

impl Conn {
    /// Answer with a configured static response (plus the route's response fields).
    pub(super) async fn respond(
        &mut self,
        head: &RequestHead,
        resp: &StaticResponse,
        extra: &[u8],
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        let close = !self.take_request(head, shard);
        self.out.clear();
        resp.write_with(&mut self.out, &[extra], close, head.method == Method::Head);
        self.send_out(cfg, close).await && !close
    }

    /// The one writer of answers the phases give (204 preflight, 401, 403, 405, 429): the
    /// status's pre-rendered answer with the context's extra fields. The request body is
    /// dropped when it is already buffered in full; otherwise the connection closes.
    pub(super) async fn answer_local(
        &mut self,
        head: &RequestHead,
        status: u16,
        ctx: &mut RequestCtx,
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        ctx.outcome.status = status;
        ctx.outcome.body_bytes = canned::local(status).body_len(head.method == Method::Head);
        debug!(peer = %self.peer, route = ctx.route, consumer = ctx.consumer.as_deref(), status, "answered by a gateway phase");
        let keep = self.take_request(head, shard);
        self.out.clear();
        canned::local(status).write_with(
            &mut self.out,
            &[&ctx.resp_fields, &ctx.answer_fields],
            !keep,
            head.method == Method::Head,
        );
        self.send_out(cfg, !keep).await && keep
    }

    /// Fan out to the aggregate's parts and answer one JSON object.
    pub(super) async fn aggregate(
        &mut self,
        shard: &Shard,
        snap: &Snapshot,
        head: &RequestHead,
        agg: &Aggregate,
        ctx: &mut RequestCtx,
    ) -> bool {
        let cfg = &snap.config;
        let mut body = Vec::new();
        let result = gateway::aggregate::run(
            snap,
            agg,
            self.inbuf.pending(),
            &ctx.params,
            &self.ip_text,
            &mut body,
        )
        .await;
        let keep = self.take_request(head, shard);
        let head_only = head.method == Method::Head;
        let complete = match result {
            Ok(complete) => complete,
            Err(e) => {
                ctx.outcome.status = e.status().unwrap_or(0);
                ctx.outcome.body_bytes = canned::error(ctx.outcome.status).body_len(head_only);
                return self.answer_error(&e, cfg, head_only, keep).await;
            }
        };
        ctx.outcome.status = 200;
        ctx.outcome.body_bytes = if head_only { 0 } else { body.len() as u64 };
        self.out.clear();
        gateway::aggregate::write_answer(
            &mut self.out,
            &body,
            complete,
            &ctx.resp_fields,
            !keep,
            head.method == Method::Head,
        );
        self.send_out(cfg, !keep).await && keep
    }

    /// Answer an error for a request whose head is still in the buffer.
    pub(super) async fn refuse(
        &mut self,
        head: &RequestHead,
        e: &ProxyError,
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        let keep = self.take_request(head, shard);
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
        self.cut_off = matches!(e, ProxyError::ClientTimeout);
        let close = !(keep && e.keep_alive());
        self.out.clear();
        self.out
            .extend_from_slice(canned::error(status).bytes(close, head_only));
        self.send_out(cfg, close).await && !close
    }

    /// Take the request out of the input buffer for an answer coregate writes itself: its head,
    /// and its body when that is already buffered in full. Returns whether the connection may
    /// stay open afterwards (the body was dropped, the client allows it, the shard is not
    /// draining).
    pub(super) fn take_request(&mut self, head: &RequestHead, shard: &Shard) -> bool {
        self.inbuf.consume(head.head_len);
        self.body_unread = !self.skip_body(head.body);
        !self.body_unread && head.keep_alive && !shard.draining()
    }

    /// Write the answer in `self.out` to the client within `client_send`; whether it all went.
    /// `last`: the connection closes after it, and the FIN goes with it (`hold_last_answer`).
    pub(super) async fn send_out(&mut self, cfg: &Config, last: bool) -> bool {
        if last {
            self.hold_last_answer(&cfg.timeouts);
        }
        relay::write_all_timed(
            &mut self.stream,
            &mut self.out,
            cfg.timeouts.client_send,
            &mut self.timer,
        )
        .await
        .is_ok()
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
