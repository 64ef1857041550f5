//! Start-up and shutdown of the whole process: decide the shards (how many, which cores),
//! bind every listener once per shard, start the shard threads, and stop them on request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use thiserror::Error;
use tracing::info;

use crate::config::{Config, Workers};
use crate::health;
use crate::shard::{self, Control, ShardPlan};

/// Control messages queued for one shard (health transitions, address changes, shutdown).
const CONTROL_QUEUE_MAX: usize = 4096;
/// Rate-limit lease requests waiting at one owner shard; a requester finding it full lets its
/// request through rather than wait (see gateway::rate_limit).
const LEASE_QUEUE_MAX: usize = 4096;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("listener \"{name}\": cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server.workers: core {0} is not available to this process (available: {1:?})")]
    NoSuchCore(usize, Vec<usize>),
    #[error("cannot start shard thread: {0}")]
    Thread(std::io::Error),
    #[error("log.access: cannot open the access log: {0}")]
    AccessLog(std::io::Error),
}

/// Listeners bound, shards planned, nothing running yet.
pub struct Server {
    config: Arc<Config>,
    cores: Vec<Option<core_affinity::CoreId>>,
    listeners: Vec<BoundListener>,
}

struct BoundListener {
    name: String,
    addr: SocketAddr,
    /// One socket per shard, all on `addr` with SO_REUSEPORT.
    sockets: Vec<std::net::TcpListener>,
}

/// A running server.
pub struct Handle {
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped to stop the control and DNS threads.
    side_stop: Option<flume::Sender<()>>,
    side_threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn bind(config: Arc<Config>) -> Result<Server, StartError> {
        let cores = plan_cores(&config.server.workers)?;
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let (sockets, addr) =
                crate::listener::bind_shared(l.addr, cores.len()).map_err(|source| {
                    StartError::Bind {
                        name: l.name.clone(),
                        addr: l.addr,
                        source,
                    }
                })?;
            listeners.push(BoundListener {
                name: l.name.clone(),
                addr,
                sockets,
            });
        }
        Ok(Server {
            config,
            cores,
            listeners,
        })
    }

    /// (listener name, bound address): the real port when the config asked for port 0.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.name.clone(), l.addr))
            .collect()
    }

    pub fn shard_count(&self) -> usize {
        self.cores.len()
    }

    pub fn start(mut self) -> Result<Handle, StartError> {
        let mut handle = Handle {
            controls: Vec::new(),
            threads: Vec::new(),
            side_stop: None,
            side_threads: Vec::new(),
        };
        let side = health::needed(&self.config)
            .then(|| flume::bounded::<health::Report>(health::REPORT_QUEUE_MAX));
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
                .map(|l| {
                    (
                        l.name.clone(),
                        l.sockets.pop().expect("one socket per shard"),
                    )
                })
                .collect();
            let (tx, rx) = flume::bounded(CONTROL_QUEUE_MAX);
            let plan = ShardPlan {
                id,
                core: *core,
                driver: self.config.server.driver,
                config: self.config.clone(),
                listeners,
                control: rx,
                reports: side.as_ref().map(|(tx, _)| tx.clone()),
                leases: lease_rx,
                lease_peers: lease_peers.clone(),
                access_log: access_log.clone(),
            };
            handle.controls.push(tx);
            handle
                .threads
                .push(shard::spawn(plan).map_err(StartError::Thread)?);
        }
        if let Some((reports_tx, reports_rx)) = side {
            self.start_side_threads(&mut handle, reports_tx, reports_rx)?;
        }
        for l in &self.listeners {
            info!(listener = %l.name, addr = %l.addr, shards = self.cores.len(), "listening");
        }
        Ok(handle)
    }

    /// The control thread (health probes, ejections, memberships) and, when needed, the DNS
    /// thread (hostnames) and the discovery thread (servers files, DNS discovery).
    fn start_side_threads(
        &self,
        handle: &mut Handle,
        reports_tx: flume::Sender<health::Report>,
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
        let dns =
            crate::upstream::dns::spawn(&self.config.pools, reports_tx.clone(), stop_rx.clone())
                .map_err(StartError::Thread)?;
        handle.side_threads.extend(dns);
        let discovery = crate::discovery::spawn(&self.config, reports_tx, stop_rx)
            .map_err(StartError::Thread)?;
        handle.side_threads.extend(discovery);
        Ok(())
    }
}

impl Handle {
    /// Ask every shard to stop accepting and drain. Returns at once.
    pub fn shutdown(&self) {
        for c in &self.controls {
            let _ = c.send(Control::Shutdown);
        }
    }

    /// Wait for every shard to finish; stop the control and DNS threads.
    pub fn join(mut self) {
        drop(self.side_stop.take());
        for t in self.threads.into_iter().chain(self.side_threads) {
            let _ = t.join();
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
