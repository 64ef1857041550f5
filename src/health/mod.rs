//! The control thread: one per process, with its own small monoio runtime, off the shards.
//! It runs one active probe stream per server (not per shard), keeps the node-wide health
//! state, decides passive ejections reported by shards (ejection times growing with repeated
//! ejections), relays address changes from the DNS thread, turns discovered server lists into
//! new cluster memberships (`members.rs`), and tells every shard about each transition by
//! `shard::Control` message. Shards never talk to each other.
//!
//! Messages name a server by its index in the membership the control thread holds and by its
//! pool: a shard whose membership differs (a new one is on its way) finds it by the pool.
//! They also name the config generation their indexes belong to: on a reload the supervisor
//! sends the new config (`Report::Reload`) once every shard runs it; the node-wide health of
//! servers that stay (same cluster name and address) is kept, probe streams restart for the
//! new server set, and every shard gets the full state again. Stale messages are ignored.

pub mod members;
pub mod probe;
mod reload;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{Config, Driver, Upstream, UpstreamId};
use crate::discovery::Found;
use crate::shard::{self, Control, ServerRef};
use members::PoolTable;

/// Reports queued from shards and the DNS thread before new ones are dropped.
pub const REPORT_QUEUE_MAX: usize = 4096;
/// How long the control thread waits for a shard to take a message before moving on: never
/// forever, as a stalled shard must not stop health checks for the others.
const BROADCAST_PATIENCE: Duration = Duration::from_secs(1);

/// Messages to the control thread.
#[derive(Debug, Clone)]
pub enum Report {
    /// A shard saw `consecutive_failures` in a row from this server (and ejected it itself).
    Failing(ServerRef),
    /// The DNS thread: a pool's hostname resolves to a new address.
    Resolved {
        gen: u64,
        pool: usize,
        addr: SocketAddr,
    },
    /// The discovery thread: a cluster's servers are now these (sorted, non-empty).
    Discovered {
        gen: u64,
        upstream: UpstreamId,
        servers: Vec<Found>,
    },
    /// Every shard now runs config generation `gen`: switch to it.
    Reload { gen: u64, config: Arc<Config> },
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
    let mut state = Rc::new(State::new(&plan.config, plan.shards, 0, None));
    start_probes(&state);
    loop {
        let report = monoio::select! {
            r = plan.reports.recv_async() => r,
            _ = plan.stop.recv_async() => break,
        };
        match report {
            Ok(Report::Failing(at)) if at.gen == state.gen => state.eject(at).await,
            Ok(Report::Resolved { gen, pool, addr }) if gen == state.gen => {
                state.resolved(pool, addr).await
            }
            Ok(Report::Discovered {
                gen,
                upstream,
                servers,
            }) if gen == state.gen => state.discovered(upstream, &servers).await,
            Ok(Report::Reload { gen, config }) => {
                state.retired.set(true);
                let next = State::new(&config, state.shards.clone(), gen, Some(&state));
                state = Rc::new(next);
                start_probes(&state);
                state.sync().await;
                info!(gen, "control thread switched to the new config");
            }
            Ok(_) => {} // for another generation
            Err(_) => break,
        }
    }
}

/// One probe stream per server with an active check.
fn start_probes(state: &Rc<State>) {
    for u in 0..state.clusters.len() {
        let upstream = state.clusters[u].borrow().upstream.clone();
        let n = upstream.servers.len() as u32;
        for (i, s) in upstream.servers.iter().enumerate() {
            if let Some(check) = &upstream.health {
                let stagger = check.interval / n.max(1) * i as u32;
                monoio::spawn(probe_loop(state.clone(), u, s.address.clone(), stagger));
            }
        }
    }
}

/// Probe the server at `address` of cluster `u` every `interval`, until it leaves the cluster
/// or a reload retires the state.
async fn probe_loop(state: Rc<State>, u: UpstreamId, address: String, stagger: Duration) {
    monoio::time::sleep(stagger).await;
    let mut request = None;
    // An HTTPS cluster is probed over TLS, with the name its requests use.
    let (connector, name) = {
        let c = state.clusters[u].borrow();
        match &c.upstream.tls {
            Some(t) => (
                Some(monoio_rustls::TlsConnector::from(t.client_config())),
                t.name_for(&address),
            ),
            None => (None, None),
        }
    };
    while !state.retired.get() {
        let (addr, check) = {
            let c = state.clusters[u].borrow();
            let Some(s) = c.upstream.servers.iter().find(|s| s.address == address) else {
                return; // removed by discovery
            };
            let Some(check) = c.upstream.health.clone() else {
                return;
            };
            (state.pools.borrow().addrs[s.pool], check)
        };
        let req = request.get_or_insert_with(|| probe::request(&check, &address));
        let tls = connector.as_ref().map(|c| (c, name.clone()));
        let outcome = probe::probe(addr, req, &check, tls).await;
        if state.retired.get() {
            return;
        }
        let pass = matches!(outcome, Ok(status) if probe::passes(&check, status));
        if !pass {
            tracing::debug!(upstream = u, server = %address, ?outcome, "health probe failed");
        }
        state.probed(u, &address, pass).await;
        monoio::time::sleep(check.interval).await;
    }
}

/// Node-wide view of one server.
#[derive(Debug, Default)]
struct ServerHealth {
    /// The active check's verdict (starts up).
    down: Cell<bool>,
    /// Consecutive probe passes and failures.
    passes: Cell<u32>,
    fails: Cell<u32>,
    /// Ejections in a row (decays by one per base ejection time without one).
    ejections: Cell<u32>,
    ejected_until: Cell<Option<Instant>>,
    /// Probe passes in a row since the current ejection began.
    passes_ejected: Cell<u32>,
}

/// One cluster's current membership and the health of each of its servers (same order).
struct ClusterState {
    upstream: Arc<Upstream>,
    health: Vec<Rc<ServerHealth>>,
}

/// The control thread's state for one config generation.
struct State {
    gen: u64,
    shards: Vec<flume::Sender<Control>>,
    clusters: Vec<RefCell<ClusterState>>,
    pools: RefCell<PoolTable>,
    /// A newer generation took over: probe loops of this one stop.
    retired: Cell<bool>,
}

/// A server found in the current membership: its index, pool and health.
struct Member {
    index: usize,
    pool: usize,
    address: String,
    health: Rc<ServerHealth>,
    upstream: Arc<Upstream>,
}

impl State {
    /// Server of cluster `u` matching `pred` in the current membership.
    fn find(
        &self,
        u: UpstreamId,
        pred: impl Fn(usize, &crate::config::UpstreamServer) -> bool,
    ) -> Option<Member> {
        let c = self.clusters.get(u)?.borrow();
        let index = c
            .upstream
            .servers
            .iter()
            .enumerate()
            .position(|(i, s)| pred(i, s))?;
        let s = &c.upstream.servers[index];
        Some(Member {
            index,
            pool: s.pool,
            address: s.address.clone(),
            health: c.health.get(index)?.clone(),
            upstream: c.upstream.clone(),
        })
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
    async fn probed(&self, u: UpstreamId, address: &str, pass: bool) {
        let Some(f) = self.find(u, |_, s| s.address == address) else {
            return;
        };
        let (Some(check), h) = (&f.upstream.health, &f.health) else {
            return;
        };
        let at = ServerRef {
            gen: self.gen,
            upstream: u,
            server: f.index,
            pool: f.pool,
        };
        let name = &f.upstream.name;
        if pass {
            h.fails.set(0);
            h.passes.set(h.passes.get().saturating_add(1));
            if h.down.get() && h.passes.get() >= check.healthy_threshold {
                h.down.set(false);
                info!(upstream = %name, server = %address, "active check: server up");
                self.broadcast(Control::Health { at, up: true }).await;
            }
            if h.ejected_until.get().is_some_and(|t| t > Instant::now()) {
                h.passes_ejected.set(h.passes_ejected.get() + 1);
                if h.passes_ejected.get() >= check.healthy_threshold {
                    h.ejected_until.set(Some(Instant::now()));
                    info!(upstream = %name, server = %address, "active check: ejection ended early");
                    self.broadcast(Control::Release(at)).await;
                }
            }
        } else {
            h.passes.set(0);
            h.passes_ejected.set(0);
            h.fails.set(h.fails.get().saturating_add(1));
            if !h.down.get() && h.fails.get() >= check.unhealthy_threshold {
                h.down.set(true);
                warn!(upstream = %name, server = %address, "active check: server down");
                self.broadcast(Control::Health { at, up: false }).await;
            }
        }
    }

    /// A shard found a server failing: eject it node-wide, unless it already is. The n-th
    /// ejection in a row lasts n × base (at most max); each base time spent without an
    /// ejection forgives one.
    async fn eject(&self, failing: ServerRef) {
        let (u, pool) = (failing.upstream, failing.pool);
        let found = self
            .find(u, |i, s| i == failing.server && s.pool == pool)
            .or_else(|| self.find(u, |_, s| s.pool == pool));
        let Some(f) = found else { return };
        let (Some(o), h) = (f.upstream.outlier, &f.health) else {
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
        warn!(upstream = %f.upstream.name, server = %f.address,
            ejection_ms = length.as_millis() as u64, ejections = n, "outlier: server ejected");
        let at = ServerRef {
            gen: self.gen,
            upstream: u,
            server: f.index,
            pool: f.pool,
        };
        self.broadcast(Control::Eject { at, until }).await;
    }

    async fn resolved(&self, pool: usize, addr: SocketAddr) {
        {
            let mut pools = self.pools.borrow_mut();
            match pools.addrs.get_mut(pool) {
                Some(a) if *a != addr => *a = addr,
                _ => return,
            }
        }
        self.broadcast(Control::Resolved {
            gen: self.gen,
            pool,
            addr,
        })
        .await;
    }

    /// A discovered list: build the new membership, carry each staying server's health, start
    /// probes for new servers, and send the membership to every shard.
    async fn discovered(self: &Rc<Self>, u: UpstreamId, found: &[Found]) {
        let Some(cell) = self.clusters.get(u) else {
            return;
        };
        let old = cell.borrow().upstream.clone();
        let Some(change) = self.pools.borrow_mut().change(&old, found) else {
            return;
        };
        let mut fresh = Vec::new();
        {
            let mut c = cell.borrow_mut();
            let health = change
                .members
                .servers
                .iter()
                .map(|s| {
                    let kept = old.servers.iter().position(|o| o.address == s.address);
                    kept.and_then(|i| c.health.get(i).cloned())
                        .unwrap_or_else(|| {
                            fresh.push(s.address.clone());
                            Rc::default()
                        })
                })
                .collect();
            *c = ClusterState {
                upstream: change.members.clone(),
                health,
            };
        }
        info!(upstream = %old.name, servers = change.members.servers.len(), added = fresh.len(),
            retired_pools = change.retired.len(), "cluster membership changed");
        self.broadcast(Control::Members {
            gen: self.gen,
            upstream: u,
            members: change.members.clone(),
            pools: change.pools,
            retired: change.retired,
        })
        .await;
        if change.members.health.is_some() {
            for address in fresh {
                monoio::spawn(probe_loop(self.clone(), u, address, Duration::ZERO));
            }
        }
    }
}
