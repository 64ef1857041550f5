//! `[[upstream]]` as written in the TOML file (serde, `deny_unknown_fields`, no logic): the
//! cluster, its servers, its balancing, retry, stickiness, active-check and outlier keys.
//! `config/upstream.rs` validates and builds it.

use serde::Deserialize;

use super::defaults as d;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Required and unique; routes name it.
    pub name: String,
    #[serde(default)]
    pub balance: BalanceFile,
    /// For `balance = "hash"`: "client_ip" | "header:NAME" | "cookie:NAME" | "path".
    #[serde(default = "hash_key")]
    pub hash_key: String,
    #[serde(default = "idle_per_server_max")]
    pub idle_per_server_max: usize,
    /// Further servers tried after a connect failure or a reset before any response byte.
    #[serde(default = "retries")]
    pub retries: u32,
    /// Retries allowed as a share of requests (over the last 10 s, per shard).
    #[serde(default = "retry_budget_percent")]
    pub retry_budget_percent: u32,
    /// Retries always allowed per second (per shard), whatever the traffic.
    #[serde(default = "retry_budget_min_per_s")]
    pub retry_budget_min_per_s: u32,
    /// Cookie naming the server a client sticks to; absent: no cookie stickiness.
    pub sticky_cookie: Option<String>,
    /// Weight ramp of a server that comes back (0: full weight at once).
    #[serde(default)]
    pub slow_start_ms: u64,
    /// When every server is down: send to all of them anyway instead of answering 503.
    #[serde(default)]
    pub fail_open: bool,
    /// `p2c_ewma`: how fast old latency observations fade.
    #[serde(default = "ewma_decay_ms")]
    pub ewma_decay_ms: u64,
    /// How often servers given by hostname are resolved again (0: only at start).
    #[serde(default = "resolve_interval_ms")]
    pub resolve_interval_ms: u64,
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerEntryFile>,
    /// Servers from a file (one `address [weight]` per line), watched: changes apply without
    /// a reload. Instead of `[[upstream.server]]`.
    pub servers_file: Option<String>,
    /// Servers from DNS: every A and AAAA address of this `host:port`, re-resolved every
    /// `resolve_interval_ms`. Instead of `[[upstream.server]]`.
    pub dns: Option<String>,
    /// Servers from DNS SRV records (`_http._tcp.name`): targets, ports and weights.
    pub dns_srv: Option<String>,
    /// `[upstream.health]`: active checks; absent: none.
    pub health: Option<HealthFile>,
    /// `[upstream.outlier]`: passive checks; absent: none.
    pub outlier: Option<OutlierFile>,
    /// `[upstream.tls]`: speak HTTPS to the servers; absent: plain HTTP.
    pub tls: Option<UpstreamTlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM file of the CA certificates to trust; absent: the system's roots.
    pub ca: Option<String>,
    /// Name sent as SNI and checked against the certificate; default: each server's host.
    pub server_name: Option<String>,
    /// `false` accepts any certificate: for testing only, never in production.
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

fn hash_key() -> String {
    d::HASH_KEY.into()
}
fn idle_per_server_max() -> usize {
    d::IDLE_PER_SERVER_MAX
}
fn retries() -> u32 {
    d::RETRIES
}
fn retry_budget_percent() -> u32 {
    d::RETRY_BUDGET_PERCENT
}
fn retry_budget_min_per_s() -> u32 {
    d::RETRY_BUDGET_MIN_PER_S
}
fn ewma_decay_ms() -> u64 {
    d::EWMA_DECAY_MS
}
fn resolve_interval_ms() -> u64 {
    d::RESOLVE_INTERVAL_MS
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceFile {
    #[default]
    RoundRobin,
    Weighted,
    LeastConn,
    P2cEwma,
    Hash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntryFile {
    /// Required: "host:port"; a hostname is resolved at load and every `resolve_interval_ms`.
    pub address: String,
    #[serde(default = "server_weight")]
    pub weight: u32,
}

fn server_weight() -> u32 {
    d::SERVER_WEIGHT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthFile {
    /// Path probed with GET.
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// "200-399" or "200".
    pub expect_status: String,
    /// Consecutive passes that bring a down server back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a server down.
    pub unhealthy_threshold: u32,
}

impl Default for HealthFile {
    fn default() -> Self {
        HealthFile {
            path: d::HEALTH_PATH.into(),
            interval_ms: d::HEALTH_INTERVAL_MS,
            timeout_ms: d::HEALTH_TIMEOUT_MS,
            expect_status: d::HEALTH_EXPECT_STATUS.into(),
            healthy_threshold: d::HEALTHY_THRESHOLD,
            unhealthy_threshold: d::UNHEALTHY_THRESHOLD,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierFile {
    /// Consecutive connect failures, resets, timeouts or 5xx answers that eject a server.
    pub consecutive_failures: u32,
    /// First ejection; the n-th ejection in a row lasts n times this.
    pub base_ejection_ms: u64,
    /// Longest ejection.
    pub max_ejection_ms: u64,
}

impl Default for OutlierFile {
    fn default() -> Self {
        OutlierFile {
            consecutive_failures: d::OUTLIER_CONSECUTIVE_FAILURES,
            base_ejection_ms: d::OUTLIER_BASE_EJECTION_MS,
            max_ejection_ms: d::OUTLIER_MAX_EJECTION_MS,
        }
    }
}
