//! The control thread: one per process, with its own small monoio runtime, off the shards.
//! It runs one active probe stream per server (not per shard), keeps the node-wide health
//! state, decides passive ejections reported by shards (ejection times growing with repeated
//! ejections), relays address changes from the DNS thread, and tells every shard about each
//! transition by `shard::Control` message. Shards never talk to each other.

pub mod probe;

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{Config, Driver, UpstreamId};
use crate::shard::{self, Control};

/// Reports queued from shards and the DNS thread before new ones are dropped.
pub const REPORT_QUEUE_MAX: usize = 4096;
/// How long the control thread waits for a shard to take a message before moving on: never
/// forever, as a stalled shard must not stop health checks for the others.
const BROADCAST_PATIENCE: Duration = Duration::from_secs(1);

/// Messages to the control thread.
#[derive(Debug, Clone)]
pub enum Report {
    /// A shard saw `consecutive_failures` in a row from this server (and ejected it itself).
    Failing { upstream: UpstreamId, server: usize },
    /// The DNS thread: a pool's hostname resolves to a new address.
    Resolved { pool: usize, addr: SocketAddr },
}

/// Whether the config needs a control thread: active or passive checks, or hostnames to
/// re-resolve.
pub fn needed(config: &Config) -> bool {
    config
        .upstreams
        .iter()
        .any(|u| u.health.is_some() || u.outlier.is_some())
        || config.pools.iter().any(|p| p.resolve_interval.is_some())
}

/// What the main thread hands the control thread.
pub struct Plan {
    pub config: Arc<Config>,
    pub driver: Driver,
    /// One sender per shard.
    pub shards: Vec<flume::Sender<Control>>,
    pub reports: flume::Receiver<Report>,
    /// Disconnects (its sender dropped) at shutdown.
    pub stop: flume::Receiver<()>,
}

pub fn spawn(plan: Plan) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("coregate-control".into())
        .spawn(move || run(plan))
}

fn run(plan: Plan) {
    let (mut rt, driver) = match shard::build_runtime(plan.driver) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the control runtime; no health checks");
            return;
        }
    };
    info!(driver, "control thread started");
    match &mut rt {
        shard::Fusion::Uring(r) => r.block_on(control_main(plan)),
        shard::Fusion::Legacy(r) => r.block_on(control_main(plan)),
    }
}

async fn control_main(plan: Plan) {
    let state = Rc::new(State::new(plan.config.clone(), plan.shards));
    for (u, upstream) in plan.config.upstreams.iter().enumerate() {
        if upstream.health.is_none() {
            continue;
        }
        for s in 0..upstream.servers.len() {
            monoio::spawn(probe_loop(state.clone(), u, s));
        }
    }
    loop {
        let report = monoio::select! {
            r = plan.reports.recv_async() => r,
            _ = plan.stop.recv_async() => break,
        };
        match report {
            Ok(Report::Failing { upstream, server }) => state.eject(upstream, server).await,
            Ok(Report::Resolved { pool, addr }) => state.resolved(pool, addr).await,
            Err(_) => break,
        }
    }
}

/// Probe server `s` of cluster `u` every `interval`, forever (until the runtime ends).
async fn probe_loop(state: Rc<State>, u: UpstreamId, s: usize) {
    let upstream = &state.config.upstreams[u];
    let Some(check) = upstream.health.as_ref() else {
        return;
    };
    let server = &upstream.servers[s];
    let request = probe::request(check, &server.address);
    // Spread the first probes of a cluster over one interval.
    let n = upstream.servers.len().max(1) as u32;
    monoio::time::sleep(check.interval / n * s as u32).await;
    loop {
        let addr = state.addrs[server.pool].get();
        let outcome = probe::probe(addr, &request, check).await;
        let pass = matches!(outcome, Ok(status) if probe::passes(check, status));
        if !pass {
            tracing::debug!(upstream = %upstream.name, server = %server.address, ?outcome, "health probe failed");
        }
        state.probed(u, s, pass).await;
        monoio::time::sleep(check.interval).await;
    }
}

/// Node-wide view of one server.
#[derive(Debug)]
struct ServerHealth {
    up: Cell<bool>,
    /// Consecutive probe passes and failures.
    passes: Cell<u32>,
    fails: Cell<u32>,
    /// Ejections in a row (decays by one per base ejection time without one).
    ejections: Cell<u32>,
    ejected_until: Cell<Option<Instant>>,
    /// Probe passes in a row since the current ejection began.
    passes_ejected: Cell<u32>,
}

struct State {
    config: Arc<Config>,
    shards: Vec<flume::Sender<Control>>,
    /// Per upstream, per server.
    servers: Vec<Vec<ServerHealth>>,
    /// Current address of every pool, for probes.
    addrs: Vec<Cell<SocketAddr>>,
}

impl State {
    fn new(config: Arc<Config>, shards: Vec<flume::Sender<Control>>) -> State {
        let servers = config
            .upstreams
            .iter()
            .map(|u| {
                u.servers
                    .iter()
                    .map(|_| ServerHealth {
                        up: Cell::new(true),
                        passes: Cell::new(0),
                        fails: Cell::new(0),
                        ejections: Cell::new(0),
                        ejected_until: Cell::new(None),
                        passes_ejected: Cell::new(0),
                    })
                    .collect()
            })
            .collect();
        let addrs = config.pools.iter().map(|p| Cell::new(p.addr)).collect();
        State {
            config,
            shards,
            servers,
            addrs,
        }
    }

    /// Send `msg` to every shard. A shard that has exited is skipped; one whose queue stays
    /// full for `BROADCAST_PATIENCE` misses this message (it is stalled; the others must not be).
    async fn broadcast(&self, msg: Control) {
        for (id, tx) in self.shards.iter().enumerate() {
            let sent = monoio::time::timeout(BROADCAST_PATIENCE, tx.send_async(msg.clone())).await;
            if sent.is_err() {
                warn!(
                    shard = id,
                    ?msg,
                    "shard control queue full; health update dropped"
                );
            }
        }
    }

    /// One probe outcome: count it, and broadcast a transition when a threshold is reached.
    async fn probed(&self, u: UpstreamId, s: usize, pass: bool) {
        let upstream = &self.config.upstreams[u];
        let (Some(check), Some(h)) = (&upstream.health, self.server(u, s)) else {
            return;
        };
        let address = &upstream.servers[s].address;
        if pass {
            h.fails.set(0);
            h.passes.set(h.passes.get().saturating_add(1));
            if !h.up.get() && h.passes.get() >= check.healthy_threshold {
                h.up.set(true);
                info!(upstream = %upstream.name, server = %address, "active check: server up");
                self.broadcast(Control::Health {
                    upstream: u,
                    server: s,
                    up: true,
                })
                .await;
            }
            if h.ejected_until.get().is_some_and(|t| t > Instant::now()) {
                h.passes_ejected.set(h.passes_ejected.get() + 1);
                if h.passes_ejected.get() >= check.healthy_threshold {
                    h.ejected_until.set(Some(Instant::now()));
                    info!(upstream = %upstream.name, server = %address, "active check: ejection ended early");
                    self.broadcast(Control::Release {
                        upstream: u,
                        server: s,
                    })
                    .await;
                }
            }
        } else {
            h.passes.set(0);
            h.passes_ejected.set(0);
            h.fails.set(h.fails.get().saturating_add(1));
            if h.up.get() && h.fails.get() >= check.unhealthy_threshold {
                h.up.set(false);
                warn!(upstream = %upstream.name, server = %address, "active check: server down");
                self.broadcast(Control::Health {
                    upstream: u,
                    server: s,
                    up: false,
                })
                .await;
            }
        }
    }

    /// A shard found server `s` failing: eject it node-wide, unless it already is. The n-th
    /// ejection in a row lasts n × base (at most max); each base time spent without an
    /// ejection forgives one.
    async fn eject(&self, u: UpstreamId, s: usize) {
        let upstream = &self.config.upstreams[u];
        let (Some(o), Some(h)) = (upstream.outlier, self.server(u, s)) else {
            return;
        };
        let now = Instant::now();
        if h.ejected_until.get().is_some_and(|t| t > now) {
            return;
        }
        if let Some(end) = h.ejected_until.get() {
            let quiet = now.saturating_duration_since(end);
            let forgiven = (quiet.as_millis() / o.base_ejection.as_millis().max(1)) as u32;
            h.ejections.set(h.ejections.get().saturating_sub(forgiven));
        }
        let n = h.ejections.get().saturating_add(1).min(1_000_000);
        h.ejections.set(n);
        let length = o.base_ejection.saturating_mul(n).min(o.max_ejection);
        let until = now + length;
        h.ejected_until.set(Some(until));
        h.passes_ejected.set(0);
        warn!(upstream = %upstream.name, server = %upstream.servers[s].address,
            ejection_ms = length.as_millis() as u64, ejections = n, "outlier: server ejected");
        self.broadcast(Control::Eject {
            upstream: u,
            server: s,
            until,
        })
        .await;
    }

    async fn resolved(&self, pool: usize, addr: SocketAddr) {
        let Some(cell) = self.addrs.get(pool) else {
            return;
        };
        if cell.get() != addr {
            cell.set(addr);
            self.broadcast(Control::Resolved { pool, addr }).await;
        }
    }

    fn server(&self, u: UpstreamId, s: usize) -> Option<&ServerHealth> {
        self.servers.get(u)?.get(s)
    }
}
