//! coregate: a thread-per-core HTTP/1.1 edge proxy on io_uring.
//!
//! # Layout (the request path, top to bottom)
//! ```text
//! main ─► config::load ─► server::Server::bind ─► start: one shard thread per core
//!   shard      pinned thread, own monoio runtime, pools, balancers; control by message
//!   listener   SO_REUSEPORT socket per shard; accept loop; client IP rules; connection
//!              limits (per shard, per client IP)
//!   connection keep-alive loop: read head → http::request::parse → router::route
//!              → gateway phases (access → CORS → auth → rate limit → cache)
//!              → respond (static) | gateway::aggregate | proxy::forward;
//!              the only writer to the client; one access_log line per request
//!   gateway    API-gateway policies: auth (JWT, API keys), rate limits (per-shard buckets,
//!              leases from the key's owner shard, or from Redis for global limits: redis),
//!              CORS, header transforms, rewrites
//!   proxy      balancer::pick → upstream::pool checkout | connect → http::write head
//!              → relay body → http::response::parse → write head → relay body → pool checkin;
//!              on a connect failure or an unanswered request: pick another server (retries,
//!              retry budget: upstream::retry); TLS to upstreams: upstream::tls;
//!              a 101 to an upgrade request: proxy::upgrade → tunnel (both ways at once)
//!   access_log per-shard line buffers handed to one writer thread, never blocking a shard
//!   error      ProxyError → status and connection fate, in one place
//!   health     control thread (own runtime): active probes, node-wide ejections, cluster
//!              memberships; tells every shard by shard::Control message. upstream::dns
//!              re-resolves hostnames off-shard
//!   discovery  thread reading servers files and asking DNS (A/AAAA, SRV) for discovered
//!              clusters; new lists go to the control thread, memberships to every shard
//!              (cluster: a shard's membership + balancer, held per request)
//!   redis      RESP2 client on monoio sockets for global rate limits (gateway::global)
//!   metrics    per-shard Cell counters and histograms, gathered by message, Prometheus text
//!   admin      admin listener thread (own runtime): /metrics, /status, /config, /upstreams,
//!              /reload, /cache/purge; asks the shards by message and the supervisor to reload
//!   server     start, stop, and hot reload (server::reload): validate, bind new listeners,
//!              every shard swaps its shard::Snapshot between requests, carrying what stays
//! ```
//!
//! # Glossary
//! - *shard*: one core's thread and everything it owns.
//! - *downstream* / *client*: who connects to coregate; *upstream* / *cluster*: a named group
//!   of *servers* coregate forwards to.
//! - *route*: (host, path, method, fields) → an action: forward to a cluster, a static
//!   response, or an aggregation of several upstream calls.
//! - *consumer*: who a request is from, as authentication established it.

#![forbid(unsafe_code)]
#![deny(clippy::await_holding_refcell_ref)]

pub mod access_log;
pub mod admin;
pub mod balancer;
pub mod buf;
pub mod cache;
pub mod cluster;
pub mod compress;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod error;
pub mod gateway;
pub mod health;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod redis;
pub mod relay;
pub mod router;
pub mod server;
pub mod shard;
pub mod signal;
pub mod stream;
pub mod timer;
pub mod tls;
pub mod tunnel;
pub mod upstream;
