//! Start-up and shutdown of the whole process: decide the shards (how many, which cores),
//! bind every listener once per shard (and the admin listener), start the shard threads, the
//! control thread, the DNS thread and the admin thread, and stop them on request. A running
//! server is a `Handle`; `server/reload.rs` switches it to a new config.

mod reload;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use thiserror::Error;
use tracing::info;

use crate::admin;
use crate::config::{Config, Workers};
use crate::health;
use crate::shard::{self, Control, ShardPlan};

pub use reload::{ListenerRecord, ReloadReport};

/// Control messages queued for one shard (health transitions, address changes, shutdown).
const CONTROL_QUEUE_MAX: usize = 4096;
/// Rate-limit lease requests waiting at one owner shard; a requester finding it full lets its
/// request through rather than wait (see gateway::rate_limit).
const LEASE_QUEUE_MAX: usize = 4096;
/// Requests to the supervisor (signals, admin reloads) waiting to be handled.
const EVENT_QUEUE_MAX: usize = 64;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("listener \"{name}\": cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin.listen: cannot listen on {addr}: {source}")]
    AdminBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server.workers: core {0} is not available to this process (available: {1:?})")]
    NoSuchCore(usize, Vec<usize>),
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
    #[error("log.access: cannot open the access log: {0}")]
    AccessLog(std::io::Error),
}

/// What the supervisor (the main thread) is asked to do.
#[derive(Debug)]
pub enum Event {
    /// A signal arrived (SIGHUP: reload; SIGTERM, SIGINT: shut down).
    Signal(i32),
    /// `POST /reload`: reload and answer.
    Reload(flume::Sender<Result<ReloadReport, Vec<String>>>),
}

/// Listeners bound, shards planned, nothing running yet.
pub struct Server {
    config: Arc<Config>,
    cores: Vec<Option<core_affinity::CoreId>>,
    listeners: Vec<BoundListener>,
    admin: Option<(StdListener, SocketAddr)>,
}

struct BoundListener {
    record: ListenerRecord,
    /// One socket per shard, all on `addr` with SO_REUSEPORT.
    sockets: Vec<StdListener>,
}

/// A running server.
pub struct Handle {
    config: Arc<Config>,
    /// Config generation the shards run.
    gen: u64,
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<JoinHandle<()>>,
    /// To the control thread: shard reports, DNS changes, reloads.
    reports: flume::Sender<health::Report>,
    /// Dropped to stop the control and admin threads.
    side_stop: Option<flume::Sender<()>>,
    side_threads: Vec<JoinHandle<()>>,
    /// The DNS and discovery threads of the current config, and what stops them.
    finders: Option<(flume::Sender<()>, Vec<JoinHandle<()>>)>,
    listeners: Vec<ListenerRecord>,
    next_listener_id: u64,
    events: (flume::Sender<Event>, flume::Receiver<Event>),
    /// To the admin thread, and a receiver to drop stale updates when it is full.
    admin: Option<(flume::Sender<admin::Update>, flume::Receiver<admin::Update>)>,
    reloads: reload::Counts,
}

impl Server {
    pub fn bind(config: Arc<Config>) -> Result<Server, StartError> {
        let cores = plan_cores(&config.server.workers)?;
        let mut listeners = Vec::new();
        for (id, l) in config.listeners.iter().enumerate() {
            let (sockets, addr) =
                crate::listener::bind_shared(l.addr, cores.len()).map_err(|source| {
                    StartError::Bind {
                        name: l.name.clone(),
                        addr: l.addr,
                        source,
                    }
                })?;
            listeners.push(BoundListener {
                record: ListenerRecord {
                    id: id as u64,
                    name: l.name.clone(),
                    configured: l.addr,
                    addr,
                },
                sockets,
            });
        }
        let admin = match &config.admin {
            None => None,
            Some(a) => Some(
                admin::bind(a.listen).map_err(|source| StartError::AdminBind {
                    addr: a.listen,
                    source,
                })?,
            ),
        };
        Ok(Server {
            config,
            cores,
            listeners,
            admin,
        })
    }

    /// (listener name, bound address): the real port when the config asked for port 0.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.record.name.clone(), l.record.addr))
            .collect()
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    pub fn shard_count(&self) -> usize {
        self.cores.len()
    }

    pub fn start(mut self) -> Result<Handle, StartError> {
        let (reports_tx, reports_rx) = flume::bounded(health::REPORT_QUEUE_MAX);
        let mut handle = Handle {
            config: self.config.clone(),
            gen: 0,
            controls: Vec::new(),
            threads: Vec::new(),
            reports: reports_tx.clone(),
            side_stop: None,
            side_threads: Vec::new(),
            finders: None,
            listeners: self.listeners.iter().map(|l| l.record.clone()).collect(),
            next_listener_id: self.listeners.len() as u64,
            events: flume::bounded(EVENT_QUEUE_MAX),
            admin: None,
            reloads: reload::Counts::default(),
        };
        // Rate-limit lease requests between shards travel on their own bounded queues, apart
        // from the control messages.
        let leases: Vec<_> = self
            .cores
            .iter()
            .map(|_| flume::bounded(LEASE_QUEUE_MAX))
            .collect();
        let lease_peers: Vec<_> = leases.iter().map(|(tx, _)| tx.clone()).collect();
        let access_log = match &self.config.log.access {
            Some(target) => {
                let (channel, thread) =
                    crate::access_log::start(target).map_err(StartError::AccessLog)?;
                handle.side_threads.push(thread);
                Some(channel)
            }
            None => None,
        };
        for ((id, core), (_, lease_rx)) in self.cores.iter().enumerate().zip(leases) {
            let listeners = self
                .listeners
                .iter_mut()
                .map(|l| (l.record.id, l.sockets.pop().expect("one socket per shard")))
                .collect();
            let (tx, rx) = flume::bounded(CONTROL_QUEUE_MAX);
            let plan = ShardPlan {
                id,
                core: *core,
                driver: self.config.server.driver,
                config: self.config.clone(),
                listeners,
                control: rx,
                reports: Some(reports_tx.clone()),
                leases: lease_rx,
                lease_peers: lease_peers.clone(),
                access_log: access_log.clone(),
            };
            handle.controls.push(tx);
            handle
                .threads
                .push(shard::spawn(plan).map_err(StartError::Thread)?);
        }
        self.start_side_threads(&mut handle, reports_rx)?;
        for l in &self.listeners {
            let (name, addr) = (&l.record.name, l.record.addr);
            info!(listener = %name, addr = %addr, shards = self.cores.len(), "listening");
        }
        Ok(handle)
    }

    /// The control thread (health probes, ejections, memberships), the DNS thread (hostnames)
    /// and the discovery thread (servers files, DNS discovery) when needed, and the admin
    /// thread.
    fn start_side_threads(
        &mut self,
        handle: &mut Handle,
        reports_rx: flume::Receiver<health::Report>,
    ) -> Result<(), StartError> {
        let (stop_tx, stop_rx) = flume::bounded(1);
        handle.side_stop = Some(stop_tx);
        let plan = health::Plan {
            config: self.config.clone(),
            driver: self.config.server.driver,
            shards: handle.controls.clone(),
            reports: reports_rx,
            stop: stop_rx.clone(),
        };
        handle
            .side_threads
            .push(health::spawn(plan).map_err(StartError::Thread)?);
        handle.restart_finders().map_err(StartError::Thread)?;
        if let Some((listener, addr)) = self.admin.take() {
            let (tx, rx) = flume::bounded(4);
            let plan = admin::Plan {
                listener,
                driver: self.config.server.driver,
                shards: handle.controls.clone(),
                supervisor: handle.events.0.clone(),
                updates: rx.clone(),
                first: handle.update(),
                started: Instant::now(),
                stop: stop_rx,
            };
            handle
                .side_threads
                .push(admin::spawn(plan).map_err(StartError::Thread)?);
            handle.admin = Some((tx, rx));
            info!(admin = %addr, "admin API ready");
        }
        Ok(())
    }
}

impl Handle {
    /// Where signals and admin requests reach the supervisor.
    pub fn events(&self) -> flume::Sender<Event> {
        self.events.0.clone()
    }

    /// The next supervisor event (blocks).
    pub fn next_event(&self) -> Option<Event> {
        self.events.1.recv().ok()
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Ask every shard to stop accepting and drain. Returns at once.
    pub fn shutdown(&self) {
        for c in &self.controls {
            let _ = c.send(Control::Shutdown);
        }
    }

    /// Wait for every shard to finish; stop the control, DNS and admin threads.
    pub fn join(mut self) {
        drop(self.side_stop.take());
        if let Some((stop, threads)) = self.finders.take() {
            drop(stop);
            self.side_threads.extend(threads);
        }
        for t in self.threads.into_iter().chain(self.side_threads) {
            let _ = t.join();
        }
    }

    /// (Re)start the DNS thread (hostnames) and the discovery thread (discovered clusters)
    /// for the current config. Old ones stop at their next wake-up (one may be in a blocking
    /// lookup now) and are joined at shutdown, not here.
    fn restart_finders(&mut self) -> std::io::Result<()> {
        if let Some((stop, threads)) = self.finders.take() {
            drop(stop);
            self.side_threads.extend(threads);
        }
        let (stop_tx, stop_rx) = flume::bounded(1);
        let mut threads = Vec::new();
        let dns = crate::upstream::dns::spawn(
            &self.config.pools,
            self.gen,
            self.reports.clone(),
            stop_rx.clone(),
        )?;
        threads.extend(dns);
        let discovery =
            crate::discovery::spawn(&self.config, self.gen, self.reports.clone(), stop_rx)?;
        threads.extend(discovery);
        self.finders = Some((stop_tx, threads));
        Ok(())
    }

    /// Send the admin thread the current state; older updates it has not read are dropped.
    fn tell_admin(&self) {
        if let Some((tx, rx)) = &self.admin {
            while tx.is_full() && rx.try_recv().is_ok() {}
            let _ = tx.try_send(self.update());
        }
    }

    /// What the admin thread shows of the supervisor's state.
    fn update(&self) -> admin::Update {
        admin::Update {
            config: self.config.clone(),
            gen: self.gen,
            listeners: self
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.addr))
                .collect(),
            reloads_ok: self.reloads.ok,
            reloads_failed: self.reloads.failed,
            last_reload_errors: self.reloads.last_errors.clone(),
        }
    }
}

/// One entry per shard: the core to pin it to.
fn plan_cores(workers: &Workers) -> Result<Vec<Option<core_affinity::CoreId>>, StartError> {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    Ok(match workers {
        Workers::Auto if available.is_empty() => vec![None],
        Workers::Auto => available.into_iter().map(Some).collect(),
        Workers::Count(n) if available.is_empty() => vec![None; *n],
        // More workers than cores share cores round-robin.
        Workers::Count(n) => (0..*n)
            .map(|i| Some(available[i % available.len()]))
            .collect(),
        Workers::Cores(list) => {
            let mut out = Vec::new();
            for &want in list {
                match available.iter().find(|c| c.id == want) {
                    Some(c) => out.push(Some(*c)),
                    None => {
                        return Err(StartError::NoSuchCore(
                            want,
                            available.iter().map(|c| c.id).collect(),
                        ))
                    }
                }
            }
            out
        }
    })
}
