//! A shard: one OS thread pinned to one core, running its own single-threaded monoio runtime
//! (io_uring, or epoll where io_uring is missing), with its own listeners, connections, pools
//! and balancer state. It shares only the read-only config, and hears from the rest of the
//! process through its control channel.

use std::cell::Cell;
use std::io;
use std::net::IpAddr;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::{info, warn};

use crate::balancer::ServerState;
pub use crate::cluster::{Cluster, Snapshot};

mod conns;
use crate::config::{Config, Driver, Upstream, UpstreamId};
use crate::gateway::global::{self, Links};
use crate::gateway::rate_limit::{LeaseRequest, Limiter};
use crate::health::Report;
use crate::signal::Signal;
use crate::upstream::pool::Pools;

/// io_uring submission queue entries per shard.
const RING_ENTRIES: u32 = 1024;
/// How often idle upstream connections past their lifetime are closed.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often a draining shard checks for in-flight requests.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Messages to a shard. A server is named by its index in the control thread's membership
/// of the cluster and by its pool; a shard whose membership differs finds it by the pool.
#[derive(Debug, Clone)]
pub enum Control {
    /// Stop accepting, finish in-flight requests (up to the drain timeout), then exit.
    Shutdown,
    /// The active check's verdict on a server changed.
    Health {
        upstream: UpstreamId,
        server: usize,
        pool: usize,
        up: bool,
    },
    /// Passive health: the server is ejected until then, node-wide.
    Eject {
        upstream: UpstreamId,
        server: usize,
        pool: usize,
        until: Instant,
    },
    /// The ejection ends early: the active check saw the server healthy.
    Release {
        upstream: UpstreamId,
        server: usize,
        pool: usize,
    },
    /// A hostname's address changed (`Config::pools` index).
    Resolved { pool: usize, addr: SocketAddr },
    /// Discovery: cluster `upstream` now has these servers. `pools` holds (pool, address) of
    /// each; `retired` pools are named by no cluster any more (their idle connections close).
    /// Requests in flight finish on the membership they started with.
    Members {
        upstream: UpstreamId,
        members: Arc<Upstream>,
        pools: Vec<(usize, SocketAddr)>,
        retired: Vec<usize>,
    },
}

/// Everything one shard owns. Shared with its connection tasks as `Rc<Shard>`.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    snapshot: Rc<Snapshot>,
    pub pools: Pools,
    /// Rate-limit buckets this shard owns and leases it holds.
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
    /// Requests between head received and response finished.
    active: Cell<usize>,
    /// Set at shutdown: finish what is in flight, take nothing new.
    draining: Cell<bool>,
    /// Fired at shutdown to stop the accept loops.
    pub stop: Signal,
    /// To the control thread: passive-health findings. `None` when no control thread runs.
    reports: Option<flume::Sender<Report>>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<Config>,
        reports: Option<flume::Sender<Report>>,
        peers: Vec<flume::Sender<LeaseRequest>>,
        access_log: Option<crate::access_log::Channel>,
    ) -> Shard {
        let pools = Pools::new(&config.pools);
        let limiter = Limiter::new(&config.gateway.rate_limits);
        let access_log = access_log.map(|ch| {
            let log = &config.log;
            crate::access_log::ShardLog::new(ch, log.access_format, &log.access_fields)
        });
        let global = Links::new(&config.gateway.rate_limits);
        Shard {
            id,
            snapshot: Rc::new(Snapshot::new(config, id)),
            pools,
            limiter,
            peers,
            global,
            connections: conns::Connections::default(),
            access_log,
            active: Cell::new(0),
            draining: Cell::new(false),
            stop: Signal::default(),
            reports,
        }
    }

    /// Apply a health, address or membership update from the control thread. Servers and
    /// clusters that do not fit the current config are ignored.
    pub fn apply(&self, msg: Control) {
        let now = Instant::now();
        let snap = &self.snapshot;
        let with = |upstream: UpstreamId, server: usize, pool: usize, f: &dyn Fn(&ServerState)| {
            let Some(c) = snap.cluster(upstream) else {
                return;
            };
            let servers = &c.upstream.servers;
            let i = match servers.get(server) {
                Some(s) if s.pool == pool => Some(server),
                _ => servers.iter().position(|s| s.pool == pool),
            };
            if let Some(s) = i.and_then(|i| c.lb.server(i)) {
                f(s);
            }
        };
        match msg {
            Control::Shutdown => {}
            Control::Health {
                upstream,
                server,
                pool,
                up,
            } => with(upstream, server, pool, &|s| s.set_up(up, now)),
            Control::Eject {
                upstream,
                server,
                pool,
                until,
            } => with(upstream, server, pool, &|s| s.eject(until)),
            Control::Release {
                upstream,
                server,
                pool,
            } => with(upstream, server, pool, &|s| s.release(now)),
            Control::Resolved { pool, addr } => self.pools.set_addr(pool, addr),
            Control::Members {
                upstream,
                members,
                pools,
                retired,
            } => {
                for (pool, addr) in pools {
                    self.pools.ensure(pool, addr);
                }
                for pool in retired {
                    self.pools.retire(pool);
                }
                snap.set_members(upstream, members);
            }
        }
    }

    /// Tell the control thread that this shard ejected a server (it decides the node-wide
    /// ejection). A full queue drops the report: this shard has ejected it already.
    pub fn report(&self, report: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.try_send(report);
        }
    }

    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.clone()
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Count a new client connection from `ip`, unless the shard drains or is at its limit,
    /// or `ip` at `connections_per_ip_max` on this shard.
    pub fn admit_connection(&self, ip: IpAddr) -> bool {
        !self.draining.get() && self.connections.admit(ip, &self.snapshot.config.limits)
    }

    pub fn connection_closed(&self, ip: IpAddr) {
        self.connections.closed(ip, &self.snapshot.config.limits);
    }

    pub fn request_started(&self) {
        self.active.set(self.active.get() + 1);
    }

    pub fn request_finished(&self) {
        debug_assert!(self.active.get() > 0);
        self.active.set(self.active.get().saturating_sub(1));
    }
}

/// What the main thread hands a shard thread.
pub struct ShardPlan {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    pub config: Arc<Config>,
    /// (listener name, this shard's socket) for every listener.
    pub listeners: Vec<(String, StdListener)>,
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

pub(crate) type Fusion = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

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
        FusionRuntime::Uring(r) => r.block_on(shard_main(plan)),
        FusionRuntime::Legacy(r) => r.block_on(shard_main(plan)),
    }
    info!(shard = id, "shard stopped");
}

/// Build the shard's runtime: io_uring with the cheapest setup flags measured here
/// (research/stack.md), io_uring without them on kernels that refuse them, else epoll.
pub(crate) fn build_runtime(choice: Driver) -> io::Result<(Fusion, &'static str)> {
    let legacy = || -> io::Result<(Fusion, &'static str)> {
        let rt = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?;
        Ok((rt.into(), "legacy (epoll)"))
    };
    let want_uring = match choice {
        Driver::Legacy => false,
        Driver::IoUring => true,
        Driver::Auto => monoio::utils::detect_uring(),
    };
    if !want_uring {
        if choice == Driver::Auto {
            warn!("io_uring is unavailable here; falling back to the legacy (epoll) driver");
        }
        return legacy();
    }
    let mut flagged = io_uring::IoUring::builder();
    flagged
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    let with_flags = RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .uring_builder(flagged)
        .enable_timer()
        .build();
    match with_flags {
        Ok(rt) => return Ok((rt.into(), "io_uring")),
        Err(e) => warn!(error = %e, "io_uring setup flags refused; retrying without them"),
    }
    match RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .enable_timer()
        .build()
    {
        Ok(rt) => Ok((rt.into(), "io_uring (no setup flags)")),
        Err(e) if choice == Driver::Auto => {
            warn!(error = %e, "io_uring failed; falling back to the legacy (epoll) driver");
            legacy()
        }
        Err(e) => Err(e),
    }
}

async fn shard_main(plan: ShardPlan) {
    let shard = Rc::new(Shard::new(
        plan.id,
        plan.config,
        plan.reports,
        plan.lease_peers,
        plan.access_log,
    ));
    // Answer other shards' lease requests for the rate-limit keys this shard owns.
    let owner = shard.clone();
    let leases = plan.leases;
    monoio::spawn(async move {
        while let Ok(req) = leases.recv_async().await {
            let grant = owner.limiter.take_owned(req.policy, req.hash, req.want);
            let _ = req.reply.try_send(grant);
        }
    });
    // Redis workers of global rate limits: connect now, before the first request needs them.
    global::start(&shard);
    for (name, socket) in plan.listeners {
        let tls = shard
            .snapshot
            .config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .and_then(|l| l.tls.as_ref())
            .map(|t| monoio_rustls::TlsAcceptor::from(t.server_config()));
        let access = shard
            .snapshot
            .config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.access.clone())
            .unwrap_or_default();
        let ctx = Rc::new(crate::listener::ListenerCtx {
            name: name.into(),
            tls,
            access,
        });
        monoio::spawn(crate::listener::accept_loop(shard.clone(), socket, ctx));
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
    let sweeper = shard.clone();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(POOL_SWEEP_INTERVAL).await;
            let idle = sweeper.snapshot.config.timeouts.upstream_idle;
            sweeper.pools.sweep(idle);
        }
    });
    // Apply control messages until shutdown. A closed channel (the main thread is gone) means
    // shut down too.
    loop {
        match plan.control.recv_async().await {
            Ok(Control::Shutdown) | Err(_) => break,
            Ok(msg) => shard.apply(msg),
        }
    }
    drain(&shard).await;
}

async fn drain(shard: &Shard) {
    shard.draining.set(true);
    shard.stop.fire();
    let timeout = shard.snapshot.config.server.drain_timeout;
    let deadline = Instant::now() + timeout;
    while shard.active.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    if shard.active.get() > 0 {
        warn!(
            shard = shard.id,
            in_flight = shard.active.get(),
            "drain timeout; closing"
        );
    }
    if let Some(log) = &shard.access_log {
        log.flush();
    }
}
