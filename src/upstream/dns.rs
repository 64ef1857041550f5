//! Re-resolution of servers given by hostname, on a thread of its own: `getaddrinfo` blocks,
//! so it never runs on a shard (nor on the control thread's runtime). A changed address goes to
//! the control thread, which tells every shard; their idle connections to the old address
//! close. If the current address is still among the answers it is kept, so round-robin DNS
//! does not churn connections. A failed lookup keeps the last good address. A reload stops
//! this thread and starts another one for the new config's hostnames.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::config::PoolAddress;
use crate::health::Report;

/// One hostname to keep resolving.
struct Entry {
    pool: usize,
    address: String,
    interval: Duration,
    current: SocketAddr,
    due: Instant,
}

/// Start the resolver thread when some pool is a hostname with a re-resolve interval.
/// It exits when `stop` disconnects.
pub fn spawn(
    pools: &[PoolAddress],
    gen: u64,
    reports: flume::Sender<Report>,
    stop: flume::Receiver<()>,
) -> io::Result<Option<JoinHandle<()>>> {
    let now = Instant::now();
    let entries: Vec<Entry> = pools
        .iter()
        .enumerate()
        .filter_map(|(pool, p)| {
            let interval = p.resolve_interval?;
            Some(Entry {
                pool,
                address: p.address.clone(),
                interval,
                current: p.addr,
                due: now + interval,
            })
        })
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("coregate-dns".into())
        .spawn(move || run(entries, gen, reports, stop))
        .map(Some)
}

/// `gen`: the config generation whose pool indexes `entries` use.
fn run(
    mut entries: Vec<Entry>,
    gen: u64,
    reports: flume::Sender<Report>,
    stop: flume::Receiver<()>,
) {
    loop {
        let next = entries
            .iter()
            .map(|e| e.due)
            .min()
            .unwrap_or_else(Instant::now);
        let wait = next.saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait) {
            Err(flume::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        for e in entries.iter_mut().filter(|e| e.due <= now) {
            e.due = now + e.interval;
            let Some(addr) = refresh(e) else { continue };
            info!(server = %e.address, old = %e.current, new = %addr, "server address changed");
            e.current = addr;
            if reports
                .send(Report::Resolved {
                    gen,
                    pool: e.pool,
                    addr,
                })
                .is_err()
            {
                return;
            }
        }
    }
}

/// Resolve `e` again: `Some(new address)` when it changed.
fn refresh(e: &Entry) -> Option<SocketAddr> {
    let answers: Vec<SocketAddr> = match e.address.to_socket_addrs() {
        Ok(it) => it.collect(),
        Err(err) => {
            warn!(server = %e.address, error = %err, "re-resolution failed; keeping the last address");
            return None;
        }
    };
    debug!(server = %e.address, ?answers, "re-resolved");
    if answers.is_empty() || answers.contains(&e.current) {
        return None;
    }
    answers.first().copied()
}
