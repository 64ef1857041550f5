//! The attempt loop of `proxy::forward`: pick a server, try it (a pooled or new connection,
//! the request, the response head), and on a failure that allows it move to another server not
//! tried yet, up to `retries` more times and within the cluster's retry budget (the rules are
//! in `upstream::retry`). Every outcome goes back to the balancer: in-flight count, latency,
//! failures for outlier detection (an ejection is reported to the control thread).

use std::time::Instant;

use tracing::debug;

use super::{build_request, send_request, send_response, Attempt, Changes, Exchange};
use crate::balancer::{Affinity, Balancer, RequestFacts, Tried, Verdict};
use crate::config::{Upstream, UpstreamId, UpstreamServer};
use crate::connection::Conn;
use crate::error::ProxyError;
use crate::health::Report;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::BodyKind;
use crate::metrics::ServerStats;
use crate::relay::Relay;
use crate::shard::{ServerRef, Shard, Snapshot};
use crate::upstream::retry::{self, Failure};
use crate::upstream::{self, TlsTarget, UpstreamConn};

/// The attempt loop: pick a server, try it; on a failure that allows it, pick another one not
/// tried yet, up to `retries` more times and within the cluster's retry budget.
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange(
    conn: &mut Conn,
    shard: &Shard,
    snap: &Snapshot,
    head: &RequestHead,
    id: UpstreamId,
    retry_non_idempotent: bool,
    changes: &Changes<'_>,
    ex: &mut Exchange,
) -> Result<bool, ProxyError> {
    let cfg = &snap.config;
    if let BodyKind::Length(n) = head.body {
        if n > changes.body_bytes_max {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    // This request's membership of the cluster, kept to its end (see `shard::Cluster`).
    let cluster = snap.cluster(id).ok_or(ProxyError::NoServer)?;
    let upstream = &*cluster.upstream;
    let c = Cluster {
        shard,
        snap,
        cluster: &cluster,
        id,
        upstream,
        lb: &cluster.lb,
        affinity: affinity(conn, upstream, head),
    };
    let now = ex.clock;
    c.lb.budget.on_request(now);
    let mut tried = Tried::default();
    let Some(mut server) = c.lb.pick(upstream, &c.affinity, &tried, now) else {
        snap.stats.upstream(id).c.unavailable.inc();
        return Err(ProxyError::NoServer);
    };
    let mut body = build_request(conn, cfg, head, &upstream.servers[server], changes, ex)?;
    let replayable = body.is_done();
    let resendable = replayable && (retry::idempotent(head.method) || retry_non_idempotent);
    loop {
        tried.push(server);
        let load = c.lb.begin(server);
        let started = ex.clock;
        let target = &upstream.servers[server];
        let tls = snap.tls_target(id, upstream, target);
        let stats = cluster.stats(server);
        let to = Target {
            server: target,
            tls,
            stats,
        };
        match attempt(conn, snap, to, &mut body, head, ex, replayable).await {
            Ok((up, resp)) => {
                let now = Instant::now();
                ex.clock = now;
                let latency = now - started;
                stats.answered(resp.status, latency);
                ex.outcome.upstream = Some((id, server));
                ex.outcome.upstream_addr = Some(up.addr);
                ex.outcome.upstream_time = Some(latency);
                c.report(
                    server,
                    c.lb.answered(upstream, server, resp.status, latency, now),
                );
                let cookie = sticky_cookie(upstream, &c.affinity, server);
                let pools = &snap.pools;
                let sent = send_response(
                    conn, shard, pools, cfg, upstream, head, up, resp, cookie, changes, ex,
                );
                let result = sent.await;
                drop(load);
                return result;
            }
            Err(failure) => {
                drop(load);
                stats.c.failures.inc();
                let next = c.after_failure(failure, server, &tried, resendable)?;
                if head.authority.is_none() {
                    let next_addr = upstream.servers[next].address.as_bytes();
                    retry::retarget_host(&mut conn.out, target.address.as_bytes(), next_addr);
                }
                server = next;
                ex.clock = Instant::now();
            }
        }
    }
}

/// What the balancer needs to know about a request, read before its head leaves the buffer.
fn affinity(conn: &Conn, upstream: &Upstream, head: &RequestHead) -> Affinity {
    let buf = conn.inbuf.pending();
    let facts = RequestFacts {
        client_ip: conn.peer.ip(),
        path: head.path.get(buf),
        buf,
        headers: &conn.headers,
    };
    Affinity::of(upstream, &facts)
}

/// The cluster a request is being balanced over, on this shard.
struct Cluster<'a> {
    shard: &'a Shard,
    snap: &'a Snapshot,
    /// This request's membership (its servers' counters).
    cluster: &'a crate::cluster::Cluster,
    id: UpstreamId,
    upstream: &'a Upstream,
    lb: &'a Balancer,
    affinity: Affinity,
}

impl Cluster<'_> {
    /// After a failed attempt on `server`: count it against the server, then choose where the
    /// request moves, or give the error to answer with.
    fn after_failure(
        &self,
        failure: Failure,
        server: usize,
        tried: &Tried,
        resendable: bool,
    ) -> Result<usize, ProxyError> {
        let (upstream, now) = (self.upstream, Instant::now());
        if failure.server_fault() {
            self.report(server, self.lb.failed(upstream, server, now));
        }
        if !failure.may_move(resendable) || tried.len() > upstream.retries as usize {
            return Err(failure.into_error());
        }
        let Some(next) = self.lb.pick(upstream, &self.affinity, tried, now) else {
            return Err(failure.into_error());
        };
        let stats = &self.snap.stats.upstream(self.id).c;
        if !self.lb.budget.try_retry(now, upstream.retry_budget) {
            stats.retry_budget_exhausted.inc();
            debug!(upstream = %upstream.name, "retry budget exhausted; not retrying");
            return Err(failure.into_error());
        }
        stats.retries.inc();
        debug!(upstream = %upstream.name, from = %upstream.servers[server].address,
            to = %upstream.servers[next].address, error = ?failure, "retrying on another server");
        Ok(next)
    }

    /// Pass an ejection verdict on to the control thread.
    fn report(&self, server: usize, verdict: Verdict) {
        if verdict == Verdict::Eject {
            let (shard, upstream) = (self.shard.id, self.id);
            debug!(
                shard,
                upstream, server, "consecutive failures: server ejected on this shard"
            );
            let pool = self.upstream.servers[server].pool;
            self.cluster.stats(server).c.ejections.inc();
            self.shard.report(Report::Failing(ServerRef {
                gen: self.snap.gen,
                upstream,
                server,
                pool,
            }));
        }
    }
}

/// One attempt on `server`: a pooled connection or a new one, the request, the response head.
/// A pooled connection found dead before any response byte is replaced once by a new one to
/// the same server when the whole request is in hand (`replayable`).
async fn attempt(
    conn: &mut Conn,
    snap: &Snapshot,
    to: Target<'_>,
    body: &mut Relay,
    head: &RequestHead,
    ex: &mut Exchange,
    replayable: bool,
) -> Result<(Box<UpstreamConn>, ResponseHead), Failure> {
    let (cfg, server, tls, stats) = (&snap.config, to.server, to.tls, to.stats);
    let addr = snap.pools.addr(server.pool).unwrap_or(server.addr);
    let connect_timeout = cfg.timeouts.upstream_connect;
    // A pooled connection of the other kind (a plain and an HTTPS cluster naming one
    // address) is not reused.
    let pooled = snap
        .pools
        .checkout(server.pool, cfg.timeouts.upstream_idle, ex.clock)
        .filter(|c| c.stream.is_tls() == tls.is_some());
    let mut up = match pooled {
        Some(up) => {
            stats.c.connections_reused.inc();
            up
        }
        None => {
            stats.c.connections_opened.inc();
            // Boxed: the connect future (TCP + TLS handshake) is large and rarely awaited;
            // inline, its size would be memcpy'd with every request's future.
            Box::pin(upstream::connect(
                addr,
                server.pool,
                connect_timeout,
                tls.clone(),
            ))
            .await
            .map_err(Failure::Connect)?
        }
    };
    if !up.reused {
        // Connecting took its time: the request's deadlines count from now.
        ex.clock = Instant::now();
    }
    loop {
        match send_request(conn, &mut up, body, head, cfg, ex).await {
            Ok(resp) => return Ok((up, resp)),
            Err(Attempt::Retry(e)) if up.reused && replayable => {
                debug!(server = %server.address, error = %e, "pooled connection failed; retrying on a fresh one");
                stats.c.connections_opened.inc();
                up = Box::pin(upstream::connect(
                    addr,
                    server.pool,
                    connect_timeout,
                    tls.clone(),
                ))
                .await
                .map_err(Failure::Connect)?;
                ex.clock = Instant::now();
            }
            Err(Attempt::Retry(error)) => {
                return Err(Failure::Unanswered {
                    error,
                    reused: up.reused,
                })
            }
            Err(Attempt::Fail(e)) => return Err(Failure::Final(e)),
        }
    }
}

/// Where one attempt goes: the server, how to secure a new connection, its counters.
struct Target<'a> {
    server: &'a UpstreamServer,
    tls: TlsTarget<'a>,
    stats: &'a ServerStats,
}

/// The `Set-Cookie` field for stickiness, when the client does not already name this server.
fn sticky_cookie<'a>(upstream: &'a Upstream, affinity: &Affinity, server: usize) -> &'a [u8] {
    if upstream.sticky_cookie.is_none() || affinity.sticky == Some(server) {
        return b"";
    }
    &upstream.servers[server].set_cookie
}
