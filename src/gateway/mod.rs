//! The API-gateway phases of a request, run by `connection` in a fixed order after routing:
//!
//! ```text
//! access rules (client IP lists, body limit) → CORS (preflight answered here) → auth (JWT, API key)
//!   → rate limit → cache lookup (connection/cached.rs) → action: respond | aggregate | forward
//! ```
//!
//! Each phase reads the request and the per-request `RequestCtx` and returns `Step::Continue`
//! or `Step::Respond(status)`, with any fields of that answer in `ctx.answer_fields`; the
//! connection writes every such answer through one writer. Policies (`Auth`, `RateLimitPolicy`,
//! `CorsPolicy`) are built at load into `Gateway`; per-shard state (buckets) lives in `Shard`.

pub mod access;
pub mod aggregate;
pub mod auth;
pub mod bucket;
pub mod cors;
pub mod ctx;
pub mod global;
pub mod methods;
pub mod rate_limit;
pub mod rewrite;
pub mod transform;

use std::hash::BuildHasher;

use crate::http::request::RequestHead;
use crate::http::{BodyKind, HeaderSpan};
use crate::router::Route;
use crate::shard::{Shard, Snapshot};

pub use ctx::RequestCtx;

use auth::{Auth, Credentials, Denial};
use cors::CorsPolicy;
use rate_limit::{Fallback, From, LimitKey, Placement, RateLimitPolicy, Scope};
use rewrite::Rewrite;
use transform::{HeaderOps, Vars};

/// The gateway policies of a config, built at load, shared read-only.
#[derive(Debug, Default)]
pub struct Gateway {
    pub auths: Vec<Auth>,
    pub rate_limits: Vec<RateLimitPolicy>,
    pub cors: Vec<CorsPolicy>,
    /// Keyed hash of rate-limit keys, the same on every shard (owner choice, table keys).
    pub hasher: std::collections::hash_map::RandomState,
}

/// A route's gateway settings (indexes into `Gateway`).
#[derive(Debug, Default)]
pub struct RoutePolicy {
    pub auth: Option<usize>,
    pub rate_limit: Option<usize>,
    pub cors: Option<usize>,
    pub rewrite: Option<Rewrite>,
    pub request_ops: HeaderOps,
    pub response_ops: HeaderOps,
    /// Claims the route's templates use; `RequestCtx::claims` holds their values.
    pub claims: Vec<String>,
    /// Client IP rules of the route (403); `None`: none.
    pub access: Option<access::IpRules>,
    /// Request body limit replacing `limits.body_bytes_max` on this route.
    pub body_bytes_max: Option<u64>,
    /// The route's response cache settings; `None`: not cached.
    pub cache: Option<crate::cache::CachePolicy>,
    /// Compress answers for clients that accept it.
    pub compress: bool,
}

/// What a phase decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Answer now with this status; extra fields are in `ctx.answer_fields`.
    Respond(u16),
}

/// The request as the phases see it.
pub struct RequestView<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderSpan],
    /// The client's address as text (X-Forwarded-For, `${client_ip}`, rate-limit keys).
    pub client_ip: &'a [u8],
    /// The client's address (access rules).
    pub peer: std::net::IpAddr,
}

/// Run the request phases in their fixed order, on the config snapshot `snap` (whose policies
/// and counters the route's indexes refer to).
pub async fn request_phases(
    shard: &Shard,
    snap: &Snapshot,
    route: &Route,
    ctx: &mut RequestCtx,
    req: &RequestView<'_>,
) -> Step {
    let gw = &snap.config.gateway;
    let stats = snap.stats.route(Some(ctx.route));
    if let Step::Respond(s) = access_phase(route, req) {
        return Step::Respond(s);
    }
    if let Step::Respond(s) = cors_phase(gw, route, ctx, req) {
        return Step::Respond(s);
    }
    if let Step::Respond(s) = auth_phase(gw, route, ctx, req) {
        stats.c.auth_failures.inc();
        return Step::Respond(s);
    }
    match rate_limit_phase(shard, snap, route, ctx, req).await {
        Step::Respond(429) => {
            stats.c.rate_limited.inc();
            return Step::Respond(429);
        }
        Step::Respond(s) => return Step::Respond(s),
        Step::Continue => {}
    }
    // The cache lookup comes next, after the limits and before the action: the connection runs
    // it (`connection/cached.rs`), as a hit is an answer only the connection writes.
    Step::Continue
}

/// Access rules, before anything else: the route's client IP lists (403) and its body limit
/// on a declared Content-Length (413). Method lists are the router's (405 + Allow).
fn access_phase(route: &Route, req: &RequestView<'_>) -> Step {
    if let Some(rules) = &route.policy.access {
        if !rules.permits(req.peer) {
            return Step::Respond(403);
        }
    }
    if let (Some(max), BodyKind::Length(n)) = (route.policy.body_bytes_max, req.head.body) {
        if n > max {
            return Step::Respond(413);
        }
    }
    Step::Continue
}

/// Preflight: answered here (204 or 403). Actual request: CORS fields for the response.
fn cors_phase(gw: &Gateway, route: &Route, ctx: &mut RequestCtx, req: &RequestView<'_>) -> Step {
    let Some(policy) = route.policy.cors.and_then(|i| gw.cors.get(i)) else {
        return Step::Continue;
    };
    let Some((cr, preflight)) = cors::request(req.head.method, req.buf, req.headers) else {
        return Step::Continue;
    };
    if preflight {
        return Step::Respond(if policy.preflight(&cr, &mut ctx.answer_fields) {
            204
        } else {
            403
        });
    }
    policy.actual(&cr, &mut ctx.resp_fields);
    Step::Continue
}

fn auth_phase(gw: &Gateway, route: &Route, ctx: &mut RequestCtx, req: &RequestView<'_>) -> Step {
    let Some(auth) = route.policy.auth.and_then(|i| gw.auths.get(i)) else {
        return Step::Continue;
    };
    let creds = Credentials {
        buf: req.buf,
        headers: req.headers,
        target: req.head.target,
    };
    match auth.check(&creds) {
        Ok(id) => {
            for (slot, name) in ctx.claims.iter_mut().zip(&route.policy.claims) {
                *slot = id.claims.get(name).and_then(auth::claim_text);
            }
            ctx.consumer = id.consumer;
            Step::Continue
        }
        Err(d) => {
            ctx.answer_fields.extend_from_slice(b"WWW-Authenticate: ");
            ctx.answer_fields
                .extend_from_slice(auth.challenge(d).as_bytes());
            ctx.answer_fields.extend_from_slice(b"\r\n");
            Step::Respond(if d == Denial::Forbidden { 403 } else { 401 })
        }
    }
}

async fn rate_limit_phase(
    shard: &Shard,
    snap: &Snapshot,
    route: &Route,
    ctx: &mut RequestCtx,
    req: &RequestView<'_>,
) -> Step {
    let gw = &snap.config.gateway;
    let gen = snap.gen;
    let Some(id) = route.policy.rate_limit else {
        return Step::Continue;
    };
    let Some(p) = gw.rate_limits.get(id) else {
        return Step::Continue;
    };
    let key: &[u8] = match &p.key {
        LimitKey::ClientIp => req.client_ip,
        LimitKey::Consumer => ctx.consumer.as_deref().map_or(req.client_ip, str::as_bytes),
        LimitKey::Header(name) => req
            .headers
            .iter()
            .find(|h| h.name.get(req.buf).eq_ignore_ascii_case(name.as_bytes()))
            .map_or(&b""[..], |h| h.value.get(req.buf)),
        LimitKey::Route => route.name.as_bytes(),
    };
    let hash = gw.hasher.hash_one((id, key));
    let decision = if p.scope == Scope::Global {
        match global::check(shard, p, id, hash, key).await {
            global::Outcome::Decided(d) => Some(d),
            global::Outcome::Fallback(Fallback::Local) => {
                node_decision(shard, gen, p, id, hash).await
            }
            global::Outcome::Fallback(Fallback::Open) => None,
            global::Outcome::Fallback(Fallback::Closed) => {
                global::closed_fields(&mut ctx.answer_fields);
                return Step::Respond(503);
            }
        }
    } else {
        node_decision(shard, gen, p, id, hash).await
    };
    let Some(decision) = decision else {
        return Step::Continue;
    };
    if decision.allowed {
        decision.write_fields(&mut ctx.resp_fields);
        Step::Continue
    } else {
        decision.write_fields(&mut ctx.answer_fields);
        Step::Respond(429)
    }
}

/// The node-wide (or per-shard) decision: the owner shard's bucket, directly or through a
/// lease. `None`: the owner did not answer in time (let the request through).
async fn node_decision(
    shard: &Shard,
    gen: u64,
    p: &RateLimitPolicy,
    id: usize,
    hash: u64,
) -> Option<rate_limit::Decision> {
    let limiter = &shard.limiter;
    Some(match p.placement(hash, shard.peers.len(), shard.id) {
        Placement::Local => {
            let g = limiter.take_owned(id, hash, 1);
            rate_limit::decision(
                p,
                g.granted == 1,
                u64::from(g.remaining),
                g.full_ns,
                g.wait_ns,
            )
        }
        Placement::Remote { owner, want } => match limiter.from_lease(From::Owner, p, id, hash) {
            Some(d) => d,
            None => {
                let g = rate_limit::lease(&shard.peers, gen, owner, id, hash, want).await?;
                limiter.on_grant(From::Owner, p, id, hash, g)
            }
        },
    })
}

/// Render the route's header transforms into `ctx.req_fields` / `ctx.resp_fields`, and its
/// rewrite into `ctx.target`. Run after the phases, while the request head is still buffered.
pub fn prepare_forward(route: &Route, ctx: &mut RequestCtx, req: &RequestView<'_>) {
    let v = Vars {
        client_ip: req.client_ip,
        consumer: ctx.consumer.as_deref(),
        route: &route.name,
        buf: req.buf,
        params: &ctx.params,
        claims: &ctx.claims,
    };
    route.policy.request_ops.render(&mut ctx.req_fields, &v);
    route.policy.response_ops.render(&mut ctx.resp_fields, &v);
    ctx.rewritten = match &route.policy.rewrite {
        Some(rw) => rw.apply(
            &mut ctx.target,
            req.buf,
            req.head.target,
            req.head.path,
            &ctx.params,
        ),
        None => false,
    };
}
