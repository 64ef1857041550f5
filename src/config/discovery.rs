//! Discovery keys: an upstream's source of servers (`servers_file`, `dns`, `dns_srv`, or its
//! `[[upstream.server]]` list) and the `[discovery]` section (resolver, timeouts). Checked and
//! built here, at load; the discovery thread (`crate::discovery`) runs them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::DiscoveryFile;
use super::upstream::{Balance, Upstream, UpstreamServer};
use super::upstream_file::{ServerEntryFile, UpstreamFile};
use super::ConfigError;
use crate::balancer::hash;
use crate::discovery::resolve;

/// Where a discovered upstream's servers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A watched file (resolved against the config file's directory).
    File(PathBuf),
    /// Every A and AAAA address of `host`, on `port`.
    Dns { host: String, port: u16 },
    /// SRV records of this name.
    Srv(String),
}

#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    pub resolver: SocketAddr,
    pub dns_timeout: Duration,
    pub file_poll: Duration,
}

pub(super) fn settings(f: &DiscoveryFile, errs: &mut Vec<ConfigError>) -> DiscoverySettings {
    let resolver = match &f.resolver {
        None => resolve::system_resolver(),
        Some(r) => r.parse().unwrap_or_else(|_| {
            errs.push(ConfigError::new(
                "discovery.resolver",
                format!("\"{r}\" is not IP:port"),
            ));
            resolve::system_resolver()
        }),
    };
    super::validate::check_ms(
        "discovery.dns_timeout_ms",
        f.dns_timeout_ms,
        1,
        60_000,
        errs,
    );
    super::validate::check_ms(
        "discovery.file_poll_ms",
        f.file_poll_ms,
        10,
        3_600_000,
        errs,
    );
    DiscoverySettings {
        resolver,
        dns_timeout: Duration::from_millis(f.dns_timeout_ms),
        file_poll: Duration::from_millis(f.file_poll_ms),
    }
}

/// The upstream's discovery source, if any: at most one of `servers_file`, `dns`, `dns_srv`,
/// and not with `[[upstream.server]]`.
pub(super) fn source(
    u: &UpstreamFile,
    i: usize,
    config_file: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<Source> {
    let key = |k: &str| format!("upstream[{i}].{k}");
    let given: Vec<&str> = [
        ("servers_file", u.servers_file.is_some()),
        ("dns", u.dns.is_some()),
        ("dns_srv", u.dns_srv.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    match given.as_slice() {
        [] => return None,
        [one] if !u.servers.is_empty() => {
            errs.push(ConfigError::new(
                key(one),
                "servers come from [[upstream.server]] or from one discovery source, not both",
            ));
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            errs.push(ConfigError::new(
                key(second),
                format!("an upstream has one discovery source; {first} is set too"),
            ));
            return None;
        }
    }
    if let Some(f) = &u.servers_file {
        return Some(Source::File(super::relative_to(config_file, f)));
    }
    if let Some(d) = &u.dns {
        let parsed = d
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok().filter(|&p| p > 0)?)))
            .filter(|(h, _)| valid_name(h));
        let Some((host, port)) = parsed else {
            errs.push(ConfigError::new(
                key("dns"),
                format!("\"{d}\" is not host:port"),
            ));
            return None;
        };
        return Some(Source::Dns {
            host: host.to_string(),
            port,
        });
    }
    let name = u.dns_srv.as_deref().unwrap_or_default();
    if !valid_name(name) {
        errs.push(ConfigError::new(
            key("dns_srv"),
            format!("\"{name}\" is not a DNS name"),
        ));
        return None;
    }
    Some(Source::Srv(name.to_string()))
}

fn valid_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The server entries at load: `[[upstream.server]]`, or a `servers_file`'s lines (read now:
/// a missing or broken file is a config error), or none for DNS sources.
pub(super) fn entries(
    u: &UpstreamFile,
    i: usize,
    source: Option<&Source>,
    errs: &mut Vec<ConfigError>,
) -> Vec<ServerEntryFile> {
    match source {
        None => {
            if u.servers.is_empty()
                && u.servers_file.is_none()
                && u.dns.is_none()
                && u.dns_srv.is_none()
            {
                errs.push(ConfigError::new(
                    format!("upstream[{i}].server"),
                    "an upstream needs at least one [[upstream.server]] (or servers_file, dns, dns_srv)",
                ));
            }
            u.servers
                .iter()
                .map(|s| ServerEntryFile {
                    address: s.address.clone(),
                    weight: s.weight,
                })
                .collect()
        }
        Some(Source::File(path)) => {
            let text = super::read_bounded(path, crate::config::defaults::SERVERS_FILE_BYTES_MAX)
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
                .map_err(|e| format!("cannot read {}: {e}", path.display()));
            match text.and_then(|t| crate::discovery::file::parse(&t)) {
                Ok(list) => list
                    .into_iter()
                    .map(|(address, weight)| ServerEntryFile { address, weight })
                    .collect(),
                Err(problem) => {
                    errs.push(ConfigError::new(
                        format!("upstream[{i}].servers_file"),
                        problem,
                    ));
                    Vec::new()
                }
            }
        }
        Some(_) => Vec::new(),
    }
}

/// One server of cluster `cluster` (at load, or discovered later on the control thread).
pub fn server_entry(
    cluster: &str,
    sticky_cookie: Option<&str>,
    address: &str,
    addr: SocketAddr,
    weight: u32,
    pool: usize,
) -> UpstreamServer {
    let token = hash::sticky_token(cluster, address);
    let set_cookie = sticky_cookie.map_or_else(Vec::new, |name| {
        format!("Set-Cookie: {name}={token}; Path=/; HttpOnly\r\n").into_bytes()
    });
    UpstreamServer {
        address: address.to_string(),
        addr,
        weight,
        pool,
        sticky_token: token,
        set_cookie: set_cookie.into_boxed_slice(),
    }
}

impl Upstream {
    /// The same cluster with another list of servers (discovery): the hash ring is rebuilt.
    /// `None` when the ring would be too large (the weights are too high).
    pub fn with_servers(&self, servers: Vec<UpstreamServer>) -> Option<Upstream> {
        let mut errs = Vec::new();
        let ring = if self.balance == Balance::Hash && !servers.is_empty() {
            Some(super::upstream::ring(&servers, "discovered", &mut errs)?)
        } else {
            None
        };
        Some(Upstream {
            servers,
            ring,
            ..self.clone()
        })
    }
}
