//! DNS lookups for discovery, blocking, on the discovery thread (never on a shard): one UDP
//! query per name and type to the configured resolver, with a deadline. `dns` upstreams take
//! every A and AAAA address of a name; `dns_srv` upstreams take the SRV records of the lowest
//! priority, each target's addresses from the additional section or from its own lookups.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::file::Found;
use super::wire::{self, Answer, Record, TYPE_A, TYPE_AAAA, TYPE_SRV};
use crate::config::defaults as d;

/// Where and how long to ask.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    pub server: SocketAddr,
    pub timeout: Duration,
}

impl Resolver {
    /// Every address of `host` (A and AAAA), as servers on `port` of weight 1. An empty list
    /// when the name has none.
    pub fn addresses(&self, host: &str, port: u16) -> Result<Vec<Found>, String> {
        let mut out = Vec::new();
        for ip in self.ips(host)? {
            push(&mut out, SocketAddr::new(ip, port), d::SERVER_WEIGHT);
        }
        Ok(out)
    }

    /// The servers of SRV `name`: the records of the lowest priority, each of its target's
    /// addresses weighted by the record's weight (0 counts as 1).
    pub fn srv(&self, name: &str) -> Result<Vec<Found>, String> {
        let answer = self.ask(name, TYPE_SRV)?;
        let srvs: Vec<_> = answer
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Srv(s) => Some(s),
                _ => None,
            })
            .collect();
        let Some(best) = srvs.iter().map(|s| s.priority).min() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in srvs.iter().filter(|s| s.priority == best) {
            let mut ips: Vec<IpAddr> = answer
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Addr(owner, ip) if *owner == s.target => Some(*ip),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                ips = self.ips(&s.target)?;
            }
            let weight = u32::from(s.weight).clamp(1, d::WEIGHT_MAX);
            for ip in ips {
                push(&mut out, SocketAddr::new(ip, s.port), weight);
            }
        }
        Ok(out)
    }

    fn ips(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let mut ips = Vec::new();
        for qtype in [TYPE_A, TYPE_AAAA] {
            for r in self.ask(host, qtype)?.records {
                if let Record::Addr(_, ip) = r {
                    if ip.is_ipv4() == (qtype == TYPE_A) && !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
        Ok(ips)
    }

    /// One query and its answer, within the timeout; answers to other queries are skipped.
    fn ask(&self, name: &str, qtype: u16) -> Result<Answer, String> {
        let id = query_id();
        let q = wire::query(id, name, qtype)?;
        let local: SocketAddr = if self.server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let io = |e: std::io::Error| format!("resolver {}: {e}", self.server);
        let sock = UdpSocket::bind(local).map_err(io)?;
        sock.connect(self.server).map_err(io)?;
        sock.send(&q).map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; wire::UDP_PAYLOAD_MAX];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("resolver {}: no answer in time", self.server));
            }
            sock.set_read_timeout(Some(left)).map_err(io)?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io(e)),
            };
            if wire::id_of(&buf[..n]) == id {
                return wire::parse(&buf[..n], id);
            }
        }
    }
}

fn push(out: &mut Vec<Found>, addr: SocketAddr, weight: u32) {
    if out.len() < d::SERVERS_PER_UPSTREAM_MAX && !out.iter().any(|f| f.addr == addr) {
        out.push(Found {
            address: addr.to_string(),
            addr,
            weight,
        });
    }
}

/// A query id that an off-path sender cannot guess cheaply (not a secret: loopback or LAN).
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let h =
        crate::balancer::hash::hash64(&[&nanos.to_le_bytes(), &std::process::id().to_le_bytes()]);
    h as u16
}

/// The first `nameserver` of /etc/resolv.conf (at load), port 53; 127.0.0.1:53 without one.
pub fn system_resolver() -> SocketAddr {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map_or_else(
            || SocketAddr::from(([127, 0, 0, 1], 53)),
            |ip| SocketAddr::new(ip, 53),
        )
}
