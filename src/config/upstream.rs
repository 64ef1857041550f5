//! Built upstream clusters: `UpstreamFile` → `Upstream`, every check naming its key path
//! (`upstream[0].health.healthy_threshold`), hostnames resolved once here (never on a shard),
//! the consistent-hash ring and the sticky-cookie tokens computed once.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::defaults as d;
use super::discovery::{server_entry, Source};
use super::health::{health, outlier, HealthCheck, Outlier};
use super::upstream_file::*;
use super::ConfigError;
use crate::balancer::hash::Ring;

/// Index of an upstream cluster in `Config::upstreams`.
pub type UpstreamId = usize;

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balance: Balance,
    pub hash_key: HashKey,
    pub idle_per_server_max: usize,
    pub servers: Vec<UpstreamServer>,
    pub retries: u32,
    pub retry_budget: RetryBudget,
    /// Cookie name for session persistence.
    pub sticky_cookie: Option<String>,
    pub slow_start: Duration,
    pub fail_open: bool,
    pub ewma_decay: Duration,
    pub health: Option<HealthCheck>,
    pub outlier: Option<Outlier>,
    /// The consistent-hash ring, for `Balance::Hash`.
    pub ring: Option<Ring>,
    /// Where the servers come from when they are discovered (file, DNS); `servers` is then
    /// the list at load (a file's) or empty (DNS), and shards get new lists by message.
    pub discovery: Option<Source>,
    /// `resolve_interval_ms`: re-resolution of hostnames and of `dns`/`dns_srv` sources.
    pub resolve_interval: Option<Duration>,
    /// HTTPS to the servers (`[upstream.tls]`).
    pub tls: Option<crate::upstream::tls::UpstreamTls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    Weighted,
    LeastConn,
    P2cEwma,
    Hash,
}

/// What `balance = "hash"` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// Lower-case field name.
    Header(String),
    Cookie(String),
    Path,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryBudget {
    pub percent: u32,
    pub min_per_s: u32,
}

#[derive(Debug, Clone)]
pub struct UpstreamServer {
    /// As written in the file (used in logs, never sent to clients).
    pub address: String,
    /// Address at load; a hostname's current address is in the shard's pools.
    pub addr: SocketAddr,
    pub weight: u32,
    /// Index of this address's idle-connection pool on each shard (`Config::pools`).
    pub pool: usize,
    /// Opaque sticky-cookie value naming this server (a hash of cluster and address).
    pub sticky_token: String,
    /// The pre-rendered `Set-Cookie` field line; empty without `sticky_cookie`.
    pub set_cookie: Box<[u8]>,
}

/// One distinct server address as written: its pool index, its address at load, and whether
/// it is a hostname to re-resolve.
#[derive(Debug, Clone)]
pub struct PoolAddress {
    pub address: String,
    pub addr: SocketAddr,
    /// Given as a hostname (re-resolved), not an IP.
    pub hostname: bool,
    /// Re-resolve period (the shortest of the clusters naming it); `None`: an IP, or never.
    pub resolve_interval: Option<Duration>,
}

pub(super) fn build(
    files: &[UpstreamFile],
    config_file: &std::path::Path,
    errs: &mut Vec<ConfigError>,
) -> (Vec<Upstream>, Vec<PoolAddress>) {
    let mut pools: Vec<PoolAddress> = Vec::new();
    let mut by_address: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Upstream> = Vec::new();
    for (i, u) in files.iter().enumerate() {
        let key = |k: &str| format!("upstream[{i}].{k}");
        if u.name.is_empty() {
            errs.push(ConfigError::new(key("name"), "is empty"));
        } else if out.iter().any(|o| o.name == u.name) {
            errs.push(ConfigError::new(
                key("name"),
                format!("\"{}\" is defined twice", u.name),
            ));
        }
        let resolve_interval =
            (u.resolve_interval_ms > 0).then(|| Duration::from_millis(u.resolve_interval_ms));
        let discovery = super::discovery::source(u, i, config_file, errs);
        let entries = super::discovery::entries(u, i, discovery.as_ref(), errs);
        let interval = resolve_interval.filter(|_| discovery.is_none());
        let servers = servers(u, &entries, i, interval, &mut pools, &mut by_address, errs);
        let tls = super::validate_edge::upstream_tls(u, i, config_file, &servers, errs);
        let balance = balance(u.balance);
        let ring = (balance == Balance::Hash && !servers.is_empty())
            .then(|| ring(&servers, &key("server"), errs))
            .flatten();
        out.push(Upstream {
            name: u.name.clone(),
            balance,
            hash_key: hash_key(&u.hash_key, &key("hash_key"), errs),
            idle_per_server_max: u.idle_per_server_max,
            servers,
            retries: u.retries,
            retry_budget: RetryBudget {
                percent: u.retry_budget_percent,
                min_per_s: u.retry_budget_min_per_s,
            },
            sticky_cookie: u.sticky_cookie.clone(),
            slow_start: Duration::from_millis(u.slow_start_ms),
            fail_open: u.fail_open,
            ewma_decay: Duration::from_millis(u.ewma_decay_ms),
            health: u.health.as_ref().and_then(|h| health(h, i, errs)),
            outlier: u.outlier.as_ref().and_then(|o| outlier(o, i, errs)),
            ring,
            discovery,
            resolve_interval,
            tls,
        });
        scalars(u, i, errs);
    }
    (out, pools)
}

fn balance(b: BalanceFile) -> Balance {
    match b {
        BalanceFile::RoundRobin => Balance::RoundRobin,
        BalanceFile::Weighted => Balance::Weighted,
        BalanceFile::LeastConn => Balance::LeastConn,
        BalanceFile::P2cEwma => Balance::P2cEwma,
        BalanceFile::Hash => Balance::Hash,
    }
}

/// Range checks of the plain numeric and name keys.
fn scalars(u: &UpstreamFile, i: usize, errs: &mut Vec<ConfigError>) {
    let mut range = |k: &str, v: u64, min: u64, max: u64| {
        if v < min || v > max {
            errs.push(ConfigError::new(
                format!("upstream[{i}].{k}"),
                format!("{v} is outside {min}..={max}"),
            ));
        }
    };
    range(
        "idle_per_server_max",
        u.idle_per_server_max as u64,
        0,
        d::IDLE_PER_SERVER_LIMIT as u64,
    );
    range("retries", u.retries.into(), 0, d::RETRIES_MAX.into());
    range(
        "retry_budget_percent",
        u.retry_budget_percent.into(),
        0,
        100,
    );
    range(
        "retry_budget_min_per_s",
        u.retry_budget_min_per_s.into(),
        0,
        100_000,
    );
    range("slow_start_ms", u.slow_start_ms, 0, d::TIMEOUT_MS_MAX);
    range("ewma_decay_ms", u.ewma_decay_ms, 1, d::TIMEOUT_MS_MAX);
    range(
        "resolve_interval_ms",
        u.resolve_interval_ms,
        0,
        d::TIMEOUT_MS_MAX,
    );
    if let Some(name) = &u.sticky_cookie {
        if !is_token(name) {
            errs.push(ConfigError::new(
                format!("upstream[{i}].sticky_cookie"),
                format!("\"{name}\" is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
            ));
        }
    }
}

fn servers(
    u: &UpstreamFile,
    entries: &[ServerEntryFile],
    i: usize,
    resolve_interval: Option<Duration>,
    pools: &mut Vec<PoolAddress>,
    by_address: &mut HashMap<String, usize>,
    errs: &mut Vec<ConfigError>,
) -> Vec<UpstreamServer> {
    if entries.len() > d::SERVERS_PER_UPSTREAM_MAX {
        errs.push(ConfigError::new(
            format!("upstream[{i}].server"),
            format!("more than {} servers", d::SERVERS_PER_UPSTREAM_MAX),
        ));
    }
    let mut out: Vec<UpstreamServer> = Vec::new();
    for (j, s) in entries.iter().enumerate() {
        let key = format!("upstream[{i}].server[{j}]");
        if s.weight == 0 || s.weight > d::WEIGHT_MAX {
            errs.push(ConfigError::new(
                format!("{key}.weight"),
                format!("{} is outside 1..={}", s.weight, d::WEIGHT_MAX),
            ));
        }
        if out.iter().any(|o| o.address == s.address) {
            errs.push(ConfigError::new(
                format!("{key}.address"),
                format!("\"{}\" is listed twice in this upstream", s.address),
            ));
            continue;
        }
        let Some(pool) = pool_of(&s.address, &key, resolve_interval, pools, by_address, errs)
        else {
            continue;
        };
        let addr = pools[pool].addr;
        out.push(server_entry(
            &u.name,
            u.sticky_cookie.as_deref(),
            &s.address,
            addr,
            s.weight,
            pool,
        ));
    }
    out
}

/// The pool index of `address`, added (and resolved) on first sight. Several clusters naming
/// one hostname re-resolve it at the shortest of their intervals.
fn pool_of(
    address: &str,
    key: &str,
    resolve_interval: Option<Duration>,
    pools: &mut Vec<PoolAddress>,
    by_address: &mut HashMap<String, usize>,
    errs: &mut Vec<ConfigError>,
) -> Option<usize> {
    if let Some(&p) = by_address.get(address) {
        let known = &mut pools[p];
        if known.hostname {
            known.resolve_interval = match (known.resolve_interval, resolve_interval) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        return Some(p);
    }
    let (addr, hostname) = resolve(address, &format!("{key}.address"), errs)?;
    pools.push(PoolAddress {
        address: address.to_string(),
        addr,
        hostname,
        resolve_interval: resolve_interval.filter(|_| hostname),
    });
    by_address.insert(address.to_string(), pools.len() - 1);
    Some(pools.len() - 1)
}

/// "IP:port" or "host:port"; a hostname is resolved now (at load), never on a shard. Returns
/// the address and whether it was a hostname.
fn resolve(address: &str, key: &str, errs: &mut Vec<ConfigError>) -> Option<(SocketAddr, bool)> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        if a.port() == 0 {
            errs.push(ConfigError::new(key, "port 0 is not a server port"));
            return None;
        }
        return Some((a, false));
    }
    let not_host_port = || ConfigError::new(key, format!("\"{address}\" is not host:port"));
    let Some((host, port)) = address.rsplit_once(':') else {
        errs.push(not_host_port());
        return None;
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        errs.push(not_host_port());
        return None;
    }
    match address.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Some((a, true)),
        Ok(None) | Err(_) => {
            errs.push(ConfigError::new(
                key,
                format!("cannot resolve \"{address}\""),
            ));
            None
        }
    }
}

pub(super) fn ring(
    servers: &[UpstreamServer],
    key: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Ring> {
    let points: usize = servers
        .iter()
        .map(|s| s.weight as usize * d::HASH_POINTS_PER_WEIGHT)
        .sum();
    if points > d::HASH_POINTS_MAX {
        errs.push(ConfigError::new(
            key,
            format!(
                "the hash ring would need {points} points ({} per unit of weight), more than {}; \
                 lower the weights",
                d::HASH_POINTS_PER_WEIGHT,
                d::HASH_POINTS_MAX
            ),
        ));
        return None;
    }
    let members: Vec<(&str, u32)> = servers
        .iter()
        .map(|s| (s.address.as_str(), s.weight))
        .collect();
    Some(Ring::new(&members, d::HASH_POINTS_PER_WEIGHT))
}

fn hash_key(s: &str, key: &str, errs: &mut Vec<ConfigError>) -> HashKey {
    let parsed = match s {
        "client_ip" => Some(HashKey::ClientIp),
        "path" => Some(HashKey::Path),
        _ => match s.split_once(':') {
            Some(("header", name)) if is_token(name) => {
                Some(HashKey::Header(name.to_ascii_lowercase()))
            }
            Some(("cookie", name)) if is_token(name) => Some(HashKey::Cookie(name.to_string())),
            _ => None,
        },
    };
    parsed.unwrap_or_else(|| {
        errs.push(ConfigError::new(
            key,
            format!("\"{s}\" is not one of client_ip, header:NAME, cookie:NAME, path"),
        ));
        HashKey::ClientIp
    })
}

/// An HTTP token (RFC 9110 §5.6.2): field and cookie names.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys() {
        let mut errs = Vec::new();
        assert_eq!(hash_key("client_ip", "k", &mut errs), HashKey::ClientIp);
        assert_eq!(
            hash_key("header:X-User", "k", &mut errs),
            HashKey::Header("x-user".into())
        );
        assert_eq!(
            hash_key("cookie:sid", "k", &mut errs),
            HashKey::Cookie("sid".into())
        );
        assert!(errs.is_empty());
        hash_key("header:", "k", &mut errs);
        hash_key("query:x", "k", &mut errs);
        hash_key("cookie:a b", "k", &mut errs);
        assert_eq!(errs.len(), 3);
    }
}
