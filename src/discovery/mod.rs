//! Discovery: upstream servers from a watched file (`servers_file`) or from DNS (`dns`: every
//! A/AAAA address; `dns_srv`: SRV targets with weights), on a thread of its own, since file
//! reads and DNS lookups block. Each source is checked on its interval; when the list of
//! servers changes, the whole new list goes to the control thread (`Report::Discovered`),
//! which gives the servers pools and tells every shard (`shard::Control::Members`). A source
//! that fails or yields no servers keeps the last list: a bad write or a resolver outage must
//! not empty a cluster.

pub mod file;
pub mod resolve;
pub mod wire;

use std::io;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::config::{Config, Source, UpstreamId};
use crate::health::Report;
pub use file::Found;
use resolve::Resolver;

/// A source checked only once (DNS with `resolve_interval_ms = 0`) is due again in a year.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

struct Entry {
    upstream: UpstreamId,
    name: String,
    source: Source,
    interval: Duration,
    due: Instant,
    /// The list last sent (sorted), or loaded from the file at start.
    last: Vec<Found>,
    /// A file's (modification time, length) when last read.
    stamp: Option<(SystemTime, u64)>,
}

/// Start the discovery thread when some upstream has a discovery source. It exits when
/// `stop` disconnects.
/// `gen`: the config generation whose cluster indexes the reports use (a reload stops this
/// thread and starts another).
pub fn spawn(
    config: &Config,
    gen: u64,
    reports: flume::Sender<Report>,
    stop: flume::Receiver<()>,
) -> io::Result<Option<JoinHandle<()>>> {
    let now = Instant::now();
    let d = &config.discovery;
    let entries: Vec<Entry> = config
        .upstreams
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let source = u.discovery.clone()?;
            let interval = match &source {
                Source::File(_) => d.file_poll,
                Source::Dns { .. } | Source::Srv(_) => u.resolve_interval.unwrap_or(NEVER),
            };
            let mut last: Vec<Found> = u
                .servers
                .iter()
                .map(|s| Found {
                    address: s.address.clone(),
                    addr: s.addr,
                    weight: s.weight,
                })
                .collect();
            last.sort();
            Some(Entry {
                upstream: i,
                name: u.name.clone(),
                source,
                interval,
                due: now,
                last,
                stamp: None,
            })
        })
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let resolver = Resolver {
        server: d.resolver,
        timeout: d.dns_timeout,
    };
    std::thread::Builder::new()
        .name("coregate-discovery".into())
        .spawn(move || run(entries, gen, resolver, reports, stop))
        .map(Some)
}

fn run(
    mut entries: Vec<Entry>,
    gen: u64,
    resolver: Resolver,
    reports: flume::Sender<Report>,
    stop: flume::Receiver<()>,
) {
    loop {
        let now = Instant::now();
        for e in entries.iter_mut().filter(|e| e.due <= now) {
            e.due = now + e.interval;
            let Some(mut found) = check(e, &resolver) else {
                continue;
            };
            found.sort();
            if found == e.last {
                continue;
            }
            info!(upstream = %e.name, servers = found.len(), was = e.last.len(),
                "discovery: servers changed");
            e.last = found.clone();
            let report = Report::Discovered {
                gen,
                upstream: e.upstream,
                servers: found,
            };
            if reports.send(report).is_err() {
                return;
            }
        }
        let next = entries.iter().map(|e| e.due).min().unwrap_or(now + NEVER);
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(flume::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The source's servers now, or `None` to keep the last list (unchanged file, an error, or
/// nothing found).
fn check(e: &mut Entry, resolver: &Resolver) -> Option<Vec<Found>> {
    let result = match &e.source {
        Source::File(path) => {
            let stamp = stamp(path);
            if stamp.is_some() && stamp == e.stamp {
                return None;
            }
            e.stamp = stamp;
            file::read(path)
        }
        Source::Dns { host, port } => resolver.addresses(host, *port),
        Source::Srv(name) => resolver.srv(name),
    };
    match result {
        Ok(found) if found.is_empty() => {
            warn!(upstream = %e.name, source = ?e.source, "discovery found no servers; keeping the last list");
            None
        }
        Ok(found) => {
            debug!(upstream = %e.name, servers = found.len(), "discovery checked");
            Some(found)
        }
        Err(why) => {
            warn!(upstream = %e.name, source = ?e.source, error = %why, "discovery failed; keeping the last list");
            None
        }
    }
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
