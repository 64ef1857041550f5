//! Every default of the TOML interface, named, with its unit and why it has that value.
//! The README's config reference lists the same numbers; `tests/config.rs` checks they agree.

/// Graceful shutdown: how long in-flight requests get to finish (nginx's worker_shutdown_timeout
/// is unset by default; Envoy drains for 600 s; 10 s suits an edge that restarts often).
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;

/// Whole request head (request line + fields). nginx allows 4 × 8 KiB, HAProxy 15 KiB.
pub const HEADER_BYTES_MAX: usize = 32 * 1024;
/// Field lines per request head (HAProxy's tune.http.maxhdr is 101).
pub const HEADER_COUNT_MAX: usize = 100;
/// Request target length; RFC 9112 §3 recommends supporting at least 8000 octets.
pub const URI_BYTES_MAX: usize = 8192;
/// Request body (nginx default is 1 MiB; APIs upload more).
pub const BODY_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// Open client connections per shard before new ones are refused.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 65_536;
/// Open client connections per shard above which idle ones give up their task and buffers:
/// below, what they hold (~11 KiB each) is at most ~11 MB.
pub const IDLE_RELEASE_CONNECTIONS: usize = 1000;

/// Upstream response fields hidden from clients: they name the server software behind us.
pub const HIDE_RESPONSE_HEADERS: &[&str] = &["server", "x-powered-by"];
/// Window over which `client_body_rate_min_bytes_per_s` is averaged (Apache mod_reqtimeout
/// checks its MinRate per second after a grace period; a longer window forgives bursts).
pub const CLIENT_BODY_RATE_WINDOW_MS: u64 = 10_000;
/// Access-log fields, in the order they are written.
pub const ACCESS_FIELDS: &[&str] = &[
    "time",
    "client",
    "method",
    "path",
    "status",
    "bytes",
    "upstream",
    "upstream_ms",
    "total_ms",
    "cache",
    "consumer",
];
/// Idle upgraded tunnel (WebSocket): no byte either way for this long closes it (HAProxy's
/// `timeout tunnel` is often 1 h; nginx's proxy_read_timeout 60 s closes quiet sockets).
pub const TUNNEL_IDLE_MS: u64 = 300_000;

/// Time for a whole request head once its first byte has arrived (HAProxy guides use 5–10 s).
pub const CLIENT_HEADER_MS: u64 = 10_000;
/// Longest pause between two reads of a request body (nginx client_body_timeout is 60 s).
pub const CLIENT_BODY_MS: u64 = 30_000;
/// Idle keep-alive time between requests (nginx keepalive_timeout is 75 s).
pub const CLIENT_IDLE_MS: u64 = 60_000;
/// Longest pause between two writes to a client that does not read (nginx send_timeout).
pub const CLIENT_SEND_MS: u64 = 60_000;
/// Lingering close, in total: after an answer that closes the connection while the client may
/// still be sending (an unread body, pipelined bytes), coregate half-closes and discards what
/// arrives for at most this long, so the client reads the answer instead of a reset. nginx's
/// lingering_time is 30 s; a client that reads its answer stops within a round trip, and one
/// that does not is not helped by holding its connection slot longer, so 10 s (the head timeout
/// and the default drain) is enough.
pub const CLIENT_LINGER_MS: u64 = 10_000;
/// Lingering ends when no byte arrives for this long (nginx's lingering_timeout is 5 s).
pub const CLIENT_LINGER_IDLE_MS: u64 = 5_000;
/// A client's TLS handshake, from accept.
pub const TLS_HANDSHAKE_MS: u64 = 10_000;
/// TCP connect to an upstream server.
pub const UPSTREAM_CONNECT_MS: u64 = 2_000;
/// Wait for the response head, and the longest pause between two reads of its body.
pub const UPSTREAM_RESPONSE_MS: u64 = 30_000;
/// Longest time a pooled upstream connection stays idle before it is closed.
pub const UPSTREAM_IDLE_MS: u64 = 60_000;

/// Idle keep-alive connections kept per upstream server, per shard.
pub const IDLE_PER_SERVER_MAX: usize = 64;
/// Weight of an upstream server.
pub const SERVER_WEIGHT: u32 = 1;
/// Key of `balance = "hash"` (as HAProxy's `balance source`).
pub const HASH_KEY: &str = "client_ip";
/// Further servers tried after a connect failure or a reset before any response byte
/// (nginx's proxy_next_upstream_tries is unlimited; Envoy's num_retries is 1).
pub const RETRIES: u32 = 1;
/// Retries as a share of requests (Envoy's and Finagle's retry budgets default to 20%).
pub const RETRY_BUDGET_PERCENT: u32 = 20;
/// Retries per second always allowed per shard (Linkerd and Finagle: 10), so that a quiet
/// cluster can still retry.
pub const RETRY_BUDGET_MIN_PER_S: u32 = 10;
/// Decay of the p2c_ewma latency average (Linkerd and Finagle use 10 s).
pub const EWMA_DECAY_MS: u64 = 10_000;
/// Re-resolution of servers given by hostname (HAProxy's `hold valid` is 10 s; 30 s is gentler
/// on resolvers).
pub const RESOLVE_INTERVAL_MS: u64 = 30_000;

/// Discovery: one DNS query's deadline (glibc's resolver waits 5 s; a discovery round can
/// retry on the next interval instead).
pub const DNS_TIMEOUT_MS: u64 = 1_000;
/// How often a `servers_file` is checked for changes (a stat, and a read when it changed).
pub const FILE_POLL_MS: u64 = 1_000;
/// A `servers_file` larger than this is refused (1024 servers fit in well under it).
pub const SERVERS_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Active checks (Envoy's and HAProxy's usual settings: 2 s, 1 s timeout, rise 2, fall 3).
pub const HEALTH_PATH: &str = "/healthz";
pub const HEALTH_INTERVAL_MS: u64 = 2_000;
pub const HEALTH_TIMEOUT_MS: u64 = 1_000;
pub const HEALTH_EXPECT_STATUS: &str = "200-399";
pub const HEALTHY_THRESHOLD: u32 = 2;
pub const UNHEALTHY_THRESHOLD: u32 = 3;

/// Passive checks (Envoy's outlier detection: 5 consecutive errors, 30 s base, 300 s max).
pub const OUTLIER_CONSECUTIVE_FAILURES: u32 = 5;
pub const OUTLIER_BASE_EJECTION_MS: u64 = 30_000;
pub const OUTLIER_MAX_EJECTION_MS: u64 = 300_000;

/// Default listener when a file names none.
pub const LISTEN: &str = "127.0.0.1:8080";

/// Bounds that make a value "impossible" rather than merely unusual.
pub const TIMEOUT_MS_MAX: u64 = 24 * 60 * 60 * 1000;
pub const HEADER_BYTES_MIN: usize = 1024;
pub const HEADER_BYTES_LIMIT: usize = 1024 * 1024;
/// httparse parses into a stack array of this many entries (no allocation, no zeroing).
pub const HEADER_COUNT_LIMIT: usize = 1024;
pub const WEIGHT_MAX: u32 = 10_000;
/// Servers per upstream: balancer scans stay short and per-shard state small.
pub const SERVERS_PER_UPSTREAM_MAX: usize = 1024;
/// Retries per request (the attempt loop keeps the tried servers in a fixed array).
pub const RETRIES_MAX: u32 = 10;
/// Consistent-hash ring points per unit of weight, and per ring at most (10 bytes each, one
/// read-only copy per config). ketama uses 160; 400 narrows the spread of each server's share
/// (standard deviation about 5% of its share instead of 8%).
pub const HASH_POINTS_PER_WEIGHT: usize = 400;
pub const HASH_POINTS_MAX: usize = 1 << 20;
/// Active-check and outlier thresholds.
pub const THRESHOLD_MAX: u32 = 1000;
/// Shortest probe interval (a probe storm is a self-inflicted outage).
pub const HEALTH_INTERVAL_MS_MIN: u64 = 10;
pub const IDLE_PER_SERVER_LIMIT: usize = 100_000;

/// JWT clock-skew allowance for `exp` and `nbf` (jsonwebtoken's own default is 60 s).
pub const JWT_LEEWAY_S: u64 = 30;
/// Claim that names the consumer of a JWT.
pub const JWT_CONSUMER_CLAIM: &str = "sub";
/// Rate-limit period when a policy names none.
pub const RATE_PERIOD_MS: u64 = 1000;
/// Keys a rate-limit policy tracks per shard (owned buckets and held leases, each) before idle
/// ones are evicted: about 3 MiB per table at this size.
pub const RATE_KEYS_MAX: usize = 100_000;
pub const RATE_KEYS_LIMIT: usize = 10_000_000;
/// Global rate limits: longest wait for Redis when a shard's lease is empty, and for each
/// Redis command (a loopback or LAN round trip is well under 1 ms; 100 ms rides out a hiccup).
pub const REDIS_TIMEOUT_MS: u64 = 100;
/// Most tokens one Redis lease may carry.
pub const LEASE_TOKENS_LIMIT: u64 = 100_000;

/// Tokens a shard leases from Redis per round trip when `lease_tokens` is not set: 1% of the
/// burst, 1..=100. The tokens leased and not yet spent are the error of a global limit (at
/// most nodes × shards × lease); 1% keeps it small while cutting round trips 100-fold.
pub fn lease_tokens(burst: u64) -> u64 {
    (burst / 100).clamp(1, 100)
}

/// Answer parts of an aggregate route.
pub const AGGREGATE_PARTS_MAX: usize = 16;

/// Response cache: bytes per shard (a node holds up to shards × this), the largest entry, how
/// long a miss waits for another request fetching the same key, and the default stale window.
pub const CACHE_BYTES_PER_SHARD_MAX: usize = 64 * 1024 * 1024;
pub const CACHE_ENTRY_BYTES_MAX: usize = 1024 * 1024;
pub const CACHE_COALESCE_TIMEOUT_MS: u64 = 5_000;
pub const CACHE_STALE_S: u64 = 0;
/// Smallest cache budget accepted (a few entries' bookkeeping).
pub const CACHE_BYTES_MIN: usize = 4096;
pub const CACHE_BYTES_LIMIT: usize = 1 << 40;
/// Longest route TTL or stale window (a year).
pub const CACHE_SECONDS_MAX: u64 = 365 * 24 * 3600;

/// Compression: moderate levels (gzip 5 of 9, brotli 4 of 11) keep CPU per response near
/// gzip's default while brotli still beats it on size; bodies under 1 KiB gain little.
pub const GZIP_LEVEL: u32 = 5;
pub const BROTLI_LEVEL: u32 = 4;
pub const COMPRESS_MIN_BYTES: u64 = 1024;
pub const COMPRESS_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/manifest+json",
    "application/ld+json",
    "application/problem+json",
    "application/wasm",
    "image/svg+xml",
];
pub const COMPRESS_ENCODINGS: &[&str] = &["br", "gzip"];
