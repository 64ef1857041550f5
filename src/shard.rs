//! A shard: one OS thread pinned to one core, running its own single-threaded monoio runtime
//! (io_uring, or epoll where io_uring is missing), with its own listeners, connections, pools
//! and balancer state. It shares only the read-only config, and hears from the rest of the
//! process through its control channel.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::IpAddr;
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::FusionRuntime;
use tracing::{info, warn};

pub use crate::cluster::{Cluster, Snapshot};

mod conns;
mod control;
mod inspect;
mod reload;
mod runtime;
use crate::config::{Config, Driver};
use crate::gateway::global::{self, Links};
use crate::gateway::rate_limit::{LeaseRequest, Limiter};
use crate::health::Report;
use crate::signal::Signal;
pub use control::{Control, ServerRef};
pub use inspect::{PurgeFilter, PurgeResult, ServerView, ShardView, UpstreamView};
pub use reload::Reload;
pub(crate) use runtime::{build_runtime, Fusion};
/// How often idle upstream connections past their lifetime are closed.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often a draining shard checks for in-flight requests.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long a stopping shard waits for its accept loops to close their listeners.
const LISTENERS_CLOSE_MAX: Duration = Duration::from_millis(200);

/// Everything one shard owns. Shared with its connection tasks as `Rc<Shard>`.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    /// The I/O driver the shard runs on, for status and metrics.
    pub driver: &'static str,
    /// The current config snapshot (a reload replaces it; requests keep theirs).
    snapshot: RefCell<Rc<Snapshot>>,
    /// Rate-limit buckets this shard owns and leases it holds (a reload keeps those of
    /// policies that stay).
    pub limiter: Limiter,
    /// Every shard's rate-limit lease queue (this one's included), indexed by shard id.
    pub peers: Vec<flume::Sender<LeaseRequest>>,
    /// This shard's Redis links for global rate limits (one per global policy), each with
    /// its worker task (`gateway::global::start`).
    pub global: Links,
    /// Open client connections, in total and per client IP.
    connections: conns::Connections,
    /// This shard's side of the access log; `None` when it is off.
    pub access_log: Option<crate::access_log::ShardLog>,
    /// This shard's response cache (empty unless routes use `cache`).
    pub cache: crate::cache::Cache,
    /// Buffers of closed client connections, for the next ones.
    /// Connection tasks parked between connections.
    pub workers: crate::connection::Workers,
    /// Requests between head received and response finished.
    active: Cell<usize>,
    /// Connections closing: in a lingering close, so that their answers are not cut by a
    /// reset, or handing over close_notify. A graceful shutdown waits for them too, within the
    /// drain timeout.
    closing: Cell<usize>,
    /// Accept loops that have not yet closed their listener: a shutdown waits for them, so that
    /// the ports are free when the process has exited (`listener::close`).
    listening: Cell<usize>,
    /// Set at shutdown: finish what is in flight, take nothing new.
    draining: Cell<bool>,
    /// Fired at shutdown to stop the accept loops.
    pub stop: Signal,
    /// Running accept loops: listener id and the signal that stops it (listener removed).
    accepting: RefCell<Vec<(u64, Rc<Signal>)>>,
    /// To the control thread: passive-health findings. `None` when no control thread runs.
    reports: Option<flume::Sender<Report>>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<Config>,
        listener_ids: &[u64],
        reports: Option<flume::Sender<Report>>,
        peers: Vec<flume::Sender<LeaseRequest>>,
        access_log: Option<crate::access_log::Channel>,
    ) -> Shard {
        let limiter = Limiter::new(&config.gateway.rate_limits);
        let access_log = access_log.map(|ch| {
            let log = &config.log;
            crate::access_log::ShardLog::new(ch, log.access_format, &log.access_fields)
        });
        let global = Links::new(&config.gateway.rate_limits);
        let cache = crate::cache::Cache::new(config.cache.bytes_per_shard_max);
        Shard {
            id,
            driver: "",
            snapshot: RefCell::new(Rc::new(Snapshot::new(config, id, 0, listener_ids, None))),
            limiter,
            peers,
            global,
            connections: conns::Connections::default(),
            access_log,
            cache,
            workers: Default::default(),
            active: Cell::new(0),
            closing: Cell::new(0),
            listening: Cell::new(0),
            draining: Cell::new(false),
            stop: Signal::default(),
            accepting: RefCell::new(Vec::new()),
            reports,
        }
    }

    /// Tell the control thread that this shard ejected a server (it decides the node-wide
    /// ejection). A full queue drops the report: this shard has ejected it already.
    pub fn report(&self, report: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.try_send(report);
        }
    }

    /// The current config snapshot. A request keeps the one it started on.
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.open()
    }

    pub fn requests_active(&self) -> usize {
        self.active.get()
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Count a new client connection from `ip`, unless the shard drains or is at its limit,
    /// or `ip` at `connections_per_ip_max` on this shard.
    pub fn admit_connection(&self, ip: IpAddr) -> bool {
        let limits = &self.snapshot.borrow().config.limits;
        !self.draining.get() && self.connections.admit(ip, limits)
    }

    pub fn connection_closed(&self, ip: IpAddr) {
        self.connections
            .closed(ip, &self.snapshot.borrow().config.limits);
    }

    pub fn request_started(&self) {
        self.active.set(self.active.get() + 1);
    }

    pub fn request_finished(&self) {
        debug_assert!(self.active.get() > 0);
        self.active.set(self.active.get().saturating_sub(1));
    }

    pub fn close_started(&self) {
        self.closing.set(self.closing.get() + 1);
    }

    pub fn close_finished(&self) {
        debug_assert!(self.closing.get() > 0);
        self.closing.set(self.closing.get().saturating_sub(1));
    }

    pub fn listening_started(&self) {
        self.listening.set(self.listening.get() + 1);
    }

    pub fn listening_finished(&self) {
        debug_assert!(self.listening.get() > 0);
        self.listening.set(self.listening.get().saturating_sub(1));
    }

    /// Requests in flight or connections closing: what a graceful shutdown waits for.
    fn busy(&self) -> bool {
        self.active.get() > 0 || self.closing.get() > 0
    }
}

/// What the main thread hands a shard thread.
pub struct ShardPlan {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    pub config: Arc<Config>,
    /// (listener id, this shard's socket) for every listener, in config order.
    pub listeners: Vec<(u64, StdListener)>,
    pub control: flume::Receiver<Control>,
    /// To the control thread, when one runs.
    pub reports: Option<flume::Sender<Report>>,
    /// Rate-limit lease requests from other shards for keys this shard owns.
    pub leases: flume::Receiver<LeaseRequest>,
    /// Every shard's lease queue (this one's included), indexed by shard id.
    pub lease_peers: Vec<flume::Sender<LeaseRequest>>,
    /// To the access-log writer, when the log is on.
    pub access_log: Option<crate::access_log::Channel>,
}

pub fn spawn(plan: ShardPlan) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("coregate-shard-{}", plan.id))
        .spawn(move || run(plan))
}

fn run(plan: ShardPlan) {
    let pinned = plan.core.map(core_affinity::set_for_current);
    let (mut rt, driver) = match build_runtime(plan.driver) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(shard = plan.id, error = %e, "cannot build the runtime; shard not started");
            return;
        }
    };
    info!(
        shard = plan.id,
        core = plan.core.map(|c| c.id),
        pinned = pinned.unwrap_or(false),
        driver,
        "shard started"
    );
    let id = plan.id;
    match &mut rt {
        FusionRuntime::Uring(r) => r.block_on(shard_main(plan, driver)),
        FusionRuntime::Legacy(r) => r.block_on(shard_main(plan, driver)),
    }
    info!(shard = id, "shard stopped");
}

async fn shard_main(plan: ShardPlan, driver: &'static str) {
    let ids: Vec<u64> = plan.listeners.iter().map(|(id, _)| *id).collect();
    let mut shard = Shard::new(
        plan.id,
        plan.config,
        &ids,
        plan.reports,
        plan.lease_peers,
        plan.access_log,
    );
    shard.driver = driver;
    let shard = Rc::new(shard);
    // Answer other shards' lease requests for the rate-limit keys this shard owns. A request
    // for another config generation (a reload under way) is dropped unanswered: the requester
    // lets its request through.
    let owner = shard.clone();
    let leases = plan.leases;
    monoio::spawn(async move {
        while let Ok(req) = leases.recv_async().await {
            if req.gen == owner.snapshot().gen {
                let grant = owner.limiter.take_owned(req.policy, req.hash, req.want);
                let _ = req.reply.try_send(grant);
            }
        }
    });
    // Redis workers of global rate limits: connect now, before the first request needs them.
    global::start(&shard);
    for (id, socket) in plan.listeners {
        shard.start_accepting(id, socket);
    }
    if shard.access_log.is_some() {
        let flusher = shard.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(crate::access_log::FLUSH_INTERVAL).await;
                if let Some(log) = &flusher.access_log {
                    log.flush();
                }
            }
        });
    }
    let idle_sweeper = shard.clone();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(crate::connection::IDLE_SWEEP_INTERVAL).await;
            idle_sweeper.workers.idle.sweep();
        }
    });
    let sweeper = shard.clone();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(POOL_SWEEP_INTERVAL).await;
            let snap = sweeper.snapshot();
            snap.pools.sweep(snap.config.timeouts.upstream_idle);
        }
    });
    // Apply control messages until shutdown. A closed channel (the main thread is gone) means
    // shut down too.
    loop {
        match plan.control.recv_async().await {
            Ok(Control::Shutdown) | Err(_) => break,
            Ok(Control::Reload(r, ack)) => {
                shard.reload(&r);
                let _ = ack.try_send(shard.id);
            }
            Ok(msg) => shard.apply(msg),
        }
    }
    drain(&shard).await;
}

async fn drain(shard: &Shard) {
    shard.draining.set(true);
    shard.stop.fire();
    shard.workers.close();
    shard.workers.idle.expire_all();
    let timeout = shard.snapshot().config.server.drain_timeout;
    let deadline = Instant::now() + timeout;
    // The idle TLS connections just woken start their close_notify (counted in `busy`) first.
    monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    while shard.busy() && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    if shard.busy() {
        warn!(
            shard = shard.id,
            in_flight = shard.active.get(),
            closing = shard.closing.get(),
            "drain timeout; closing"
        );
    }
    // The accept loops woke at `stop` and are closing their listeners (`listener::close`):
    // wait for them whatever the drain timeout, briefly (one backing off after an accept error
    // takes up to 50 ms to see `stop`).
    let deadline = Instant::now() + LISTENERS_CLOSE_MAX;
    while shard.listening.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    if let Some(log) = &shard.access_log {
        log.flush();
    }
}
