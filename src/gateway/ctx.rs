//! `RequestCtx`: the one plain per-request context the phases fill in and the action reads
//! (route, captured parameters, consumer, claims, rendered fields, rewritten target). One per
//! connection, cleared per request, so its buffers are reused across keep-alive requests.
//! `outcome` and `cache_status` are the facts the access log (and counters) read at the end.

use std::time::Duration;

use crate::config::UpstreamId;
use crate::router::{Params, RouteId};

/// What became of a request: filled by whoever answers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Status sent to the client; 0 until an answer is written.
    pub status: u16,
    /// Body bytes sent to the client (tunnelled bytes for an upgrade).
    pub body_bytes: u64,
    /// The server that answered: (cluster, index in the membership the request used).
    pub upstream: Option<(UpstreamId, usize)>,
    /// The address it was reached at.
    pub upstream_addr: Option<std::net::SocketAddr>,
    /// Request sent → response head received, on that server.
    pub upstream_time: Option<Duration>,
}

/// The response cache's verdict on a request (the cache fills it; "-" without one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache involved.
    #[default]
    None,
    Hit,
    Miss,
    /// Served stale (upstream failing).
    Stale,
    /// Not cacheable (method, Cache-Control…).
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::None => "-",
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}

#[derive(Debug)]
pub struct RequestCtx {
    pub route: RouteId,
    pub params: Params,
    /// Who the request is from (API key's consumer, or the JWT's consumer claim).
    pub consumer: Option<String>,
    /// Values of the route's wanted claims (`RoutePolicy::claims`), in that order.
    pub claims: Vec<Option<String>>,
    /// Extra field lines for the upstream request (rendered transforms).
    pub req_fields: Vec<u8>,
    /// Extra field lines for the client response (CORS, RateLimit-*, transforms).
    pub resp_fields: Vec<u8>,
    /// Extra field lines of an answer a phase gave (WWW-Authenticate, Allow, Retry-After…).
    pub answer_fields: Vec<u8>,
    /// Rewritten upstream request-target, when `rewritten`.
    pub target: Vec<u8>,
    pub rewritten: bool,
    pub outcome: Outcome,
    pub cache_status: CacheStatus,
    /// The cache phase's reusable buffers (key, copy of the request head).
    pub cache: crate::cache::Scratch,
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            route: 0,
            params: Params::default(),
            consumer: None,
            claims: Vec::new(),
            req_fields: Vec::new(),
            resp_fields: Vec::new(),
            answer_fields: Vec::new(),
            target: Vec::new(),
            rewritten: false,
            outcome: Outcome::default(),
            cache_status: CacheStatus::None,
            cache: crate::cache::Scratch::default(),
        }
    }
}

impl RequestCtx {
    /// Start a request on `route` with `claims` wanted claims.
    pub fn begin(&mut self, route: RouteId, params: Params, claims: usize) {
        self.clear();
        self.route = route;
        self.params = params;
        self.claims.resize(claims, None);
    }

    /// Forget the previous request (buffers keep their capacity).
    pub fn clear(&mut self) {
        self.route = 0;
        self.params = Params::default();
        self.consumer = None;
        self.claims.clear();
        self.req_fields.clear();
        self.resp_fields.clear();
        self.answer_fields.clear();
        self.target.clear();
        self.rewritten = false;
        self.outcome = Outcome::default();
        self.cache_status = CacheStatus::None;
    }
}
