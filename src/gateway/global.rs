//! Global rate limits (`scope = "global"`): each shard leases tokens from a bucket in Redis, a
//! batch (`lease_tokens`) per round trip, and spends them locally. The request path waits on
//! Redis only when its shard's lease for the key is empty, and then at most `redis_timeout_ms`.
//!
//! Per shard and global policy, one `Link`: a Redis connection owned by one worker task, fed
//! by a bounded queue. The worker answers queued requests in order; a request whose key got a
//! lease meanwhile (an earlier one fetched it) is answered from that lease, so a burst on one
//! key costs one round trip per batch, not per request. When Redis fails (refused, closed, a
//! timeout, a protocol error) the link is down: requests take the fallback at once (the node
//! limit, open or closed) while the worker reconnects with a bounded back-off, and limiting
//! goes global again as soon as a connection and its `SCRIPT LOAD` succeed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::bucket::Grant;
use super::rate_limit::{Decision, Fallback, From, GlobalSettings, RateLimitPolicy};
use crate::redis::conn::{CallError, Conn};
use crate::redis::{self, resp::Reply, RedisTarget};
use crate::shard::Shard;

/// Requests waiting for one link's worker; a full queue sends requests to the fallback.
const QUEUE_MAX: usize = 1024;
/// Reconnect back-off: first wait, doubling up to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Redirections (`MOVED`) followed for one request.
const REDIRECTS_MAX: usize = 2;
/// Script loads per request (after `NOSCRIPT`: Redis restarted or flushed its scripts).
const SCRIPT_LOADS_MAX: usize = 1;

/// What the rate-limit phase does with a global policy's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Decided(Decision),
    /// Redis unavailable: the policy's fallback says so.
    Fallback(Fallback),
}

/// One shard's Redis links, by policy index (`None` for policies that are not global).
#[derive(Debug, Default)]
pub struct Links {
    links: Vec<Option<Rc<Link>>>,
}

#[derive(Debug)]
pub struct Link {
    up: Cell<bool>,
    queue: flume::Sender<Fetch>,
    inbox: flume::Receiver<Fetch>,
    /// Redis commands sent (EVALSHA and SCRIPT LOAD), for measurements and metrics.
    pub round_trips: Cell<u64>,
}

/// A request for tokens of one key, answered with a decision (`None`: Redis unavailable).
#[derive(Debug)]
struct Fetch {
    hash: u64,
    key: Vec<u8>,
    reply: flume::Sender<Option<Decision>>,
}

// === impl Links ===

impl Links {
    pub fn new(policies: &[RateLimitPolicy]) -> Links {
        let links = policies
            .iter()
            .map(|p| {
                p.global.as_ref().map(|_| {
                    let (queue, inbox) = flume::bounded(QUEUE_MAX);
                    Rc::new(Link {
                        up: Cell::new(true),
                        queue,
                        inbox,
                        round_trips: Cell::new(0),
                    })
                })
            })
            .collect();
        Links { links }
    }

    pub fn get(&self, policy: usize) -> Option<&Rc<Link>> {
        self.links.get(policy)?.as_ref()
    }

    /// Redis commands sent by this shard, all policies.
    pub fn round_trips(&self) -> u64 {
        self.links
            .iter()
            .flatten()
            .map(|l| l.round_trips.get())
            .sum()
    }
}

/// Start one worker per global policy on this shard (call once, from the shard's runtime).
pub fn start(shard: &Rc<Shard>) {
    let config = shard.snapshot().config.clone();
    for (i, p) in config.gateway.rate_limits.iter().enumerate() {
        if let (Some(g), Some(link)) = (&p.global, shard.global.get(i)) {
            let worker = Worker {
                shard: shard.clone(),
                link: link.clone(),
                policy: i,
                p: p.clone(),
                settings: g.clone(),
            };
            monoio::spawn(worker.run());
        }
    }
}

/// The request path: spend a leased token, or ask the worker for a lease and wait (bounded).
pub async fn check(
    shard: &Shard,
    p: &RateLimitPolicy,
    policy: usize,
    hash: u64,
    key: &[u8],
) -> Outcome {
    let Some(g) = &p.global else {
        return Outcome::Fallback(Fallback::Open);
    };
    if let Some(d) = shard.limiter.from_lease(From::Redis, p, policy, hash) {
        return Outcome::Decided(d);
    }
    let Some(link) = shard.global.get(policy).filter(|l| l.up.get()) else {
        return Outcome::Fallback(g.fallback);
    };
    let (tx, rx) = flume::bounded(1);
    let fetch = Fetch {
        hash,
        key: redis::bucket_key(&p.name, key),
        reply: tx,
    };
    if link.queue.try_send(fetch).is_err() {
        debug!(policy = %p.name, "global rate limit queue full; fallback");
        return Outcome::Fallback(g.fallback);
    }
    match monoio::time::timeout(g.timeout, rx.recv_async()).await {
        Ok(Ok(Some(d))) => Outcome::Decided(d),
        _ => Outcome::Fallback(g.fallback),
    }
}

/// The worker of one link: owns the connection, answers the queue, reconnects.
struct Worker {
    shard: Rc<Shard>,
    link: Rc<Link>,
    policy: usize,
    p: RateLimitPolicy,
    settings: GlobalSettings,
}

/// The worker loop's state.
struct Loop {
    backoff: Duration,
    /// The node to connect to: the configured one, or where `MOVED` pointed.
    addr: std::net::SocketAddr,
    session: Option<Session>,
    ever_up: bool,
    /// A request to send again after a redirection, with the redirections so far.
    retry: Option<(Fetch, usize)>,
}

/// A live connection and the SHA1 of the loaded script.
struct Session {
    conn: Conn,
    sha: Vec<u8>,
}

impl Worker {
    async fn run(self) {
        let mut st = Loop {
            backoff: BACKOFF_MIN,
            addr: self.settings.target.addr,
            session: None,
            ever_up: false,
            retry: None,
        };
        loop {
            if st.session.is_none() && !self.connect(&mut st).await {
                continue;
            }
            let Some(s) = st.session.as_mut() else {
                continue;
            };
            let (fetch, redirects) = match st.retry.take() {
                Some(r) => r,
                None => {
                    let got = monoio::select! {
                        f = self.link.inbox.recv_async() => f,
                        e = s.conn.closed() => {
                            st.session = None;
                            self.down(&e.to_string());
                            continue;
                        }
                    };
                    match got {
                        Ok(f) => (f, 0),
                        Err(_) => return,
                    }
                }
            };
            match self.serve(s, &fetch).await {
                Ok(()) => {}
                Err(Failed::Moved(to)) if redirects < REDIRECTS_MAX => {
                    // Redis Cluster: the policy's slot lives on another node; go there.
                    debug!(policy = %self.p.name, %to, "redis cluster: MOVED");
                    st.addr = to;
                    st.session = None;
                    st.retry = Some((fetch, redirects + 1));
                }
                Err(Failed::Moved(_)) => {
                    let _ = fetch.reply.try_send(None);
                }
                Err(Failed::Down(why)) => {
                    st.session = None;
                    self.down(&why);
                    let _ = fetch.reply.try_send(None);
                }
            }
        }
    }

    /// Connect to the configured node, or where a redirection sent us. On a failure: the link
    /// is down, the next attempt goes to the configured node after the back-off; false.
    async fn connect(&self, st: &mut Loop) -> bool {
        match self.open(st.addr).await {
            Ok(s) => {
                if !self.link.up.get() || !st.ever_up {
                    info!(shard = self.shard.id, policy = %self.p.name, redis = %s.conn.addr,
                        "redis connected: global rate limiting");
                }
                st.ever_up = true;
                self.link.up.set(true);
                st.backoff = BACKOFF_MIN;
                st.session = Some(s);
                true
            }
            Err(e) => {
                if let Some((f, _)) = st.retry.take() {
                    let _ = f.reply.try_send(None);
                }
                self.down(&e.to_string());
                st.addr = self.settings.target.addr;
                monoio::time::sleep(st.backoff).await;
                st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                false
            }
        }
    }

    /// Mark the link down (requests take the fallback) and answer every queued request so.
    fn down(&self, why: &str) {
        if self.link.up.get() {
            warn!(shard = self.shard.id, policy = %self.p.name, redis = %self.settings.target.address,
                error = why, fallback = ?self.settings.fallback,
                "redis unavailable: global rate limit falls back until it returns");
        }
        self.link.up.set(false);
        while let Ok(f) = self.link.inbox.try_recv() {
            let _ = f.reply.try_send(None);
        }
    }

    async fn open(&self, addr: std::net::SocketAddr) -> Result<Session, CallError> {
        let t = self.settings.timeout;
        let target: &RedisTarget = &self.settings.target;
        let opened = async {
            let mut conn = Conn::open(addr, target).await?;
            self.link.round_trips.set(self.link.round_trips.get() + 1);
            let load: [&[u8]; 3] = [b"SCRIPT", b"LOAD", redis::BUCKET_SCRIPT.as_bytes()];
            let sha = match conn.call(&load).await? {
                Reply::Bulk(Some(sha)) => sha,
                _ => return Err(CallError::Redis("SCRIPT LOAD did not return a SHA1".into())),
            };
            Ok(Session { conn, sha })
        };
        match monoio::time::timeout(t.max(BACKOFF_MIN), opened).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }

    /// Answer one queued request: from a lease fetched meanwhile, or by one EVALSHA.
    async fn serve(&self, s: &mut Session, fetch: &Fetch) -> Result<(), Failed> {
        if fetch.reply.is_disconnected() {
            return Ok(()); // the request gave up waiting
        }
        let limiter = &self.shard.limiter;
        if let Some(d) = limiter.from_lease(From::Redis, &self.p, self.policy, fetch.hash) {
            let _ = fetch.reply.try_send(Some(d));
            return Ok(());
        }
        let grant = self.evalsha(s, &fetch.key).await?;
        if fetch.reply.is_disconnected() && grant.granted > 0 {
            // Keep every granted token for the next requests; spend none for this one.
            let spare = Grant {
                granted: grant.granted.saturating_add(1),
                ..grant
            };
            limiter.on_grant(From::Redis, &self.p, self.policy, fetch.hash, spare);
            return Ok(());
        }
        let d = limiter.on_grant(From::Redis, &self.p, self.policy, fetch.hash, grant);
        let _ = fetch.reply.try_send(Some(d));
        Ok(())
    }

    async fn evalsha(&self, s: &mut Session, key: &[u8]) -> Result<Grant, Failed> {
        let p = &self.p;
        let per_us = p.rate as f64 / p.period.as_micros().max(1) as f64;
        let rate = format!("{per_us:e}");
        let burst = itoa::Buffer::new().format(p.burst).to_owned();
        let want = itoa::Buffer::new()
            .format(self.settings.lease_tokens)
            .to_owned();
        for _ in 0..=SCRIPT_LOADS_MAX {
            self.link.round_trips.set(self.link.round_trips.get() + 1);
            let args: [&[u8]; 7] = [
                b"EVALSHA",
                &s.sha,
                b"1",
                key,
                rate.as_bytes(),
                burst.as_bytes(),
                want.as_bytes(),
            ];
            let t = self.settings.timeout;
            let reply = match monoio::time::timeout(t, s.conn.call(&args)).await {
                Err(_) => return Err(Failed::Down("timed out".into())),
                Ok(Err(CallError::Redis(e))) if e.starts_with("NOSCRIPT") => {
                    // Flushed scripts (SCRIPT FLUSH, a failover): load it again, once.
                    let load: [&[u8]; 3] = [b"SCRIPT", b"LOAD", redis::BUCKET_SCRIPT.as_bytes()];
                    match monoio::time::timeout(t, s.conn.call(&load)).await {
                        Ok(Ok(Reply::Bulk(Some(sha)))) => s.sha = sha,
                        _ => return Err(Failed::Down("SCRIPT LOAD failed".into())),
                    }
                    continue;
                }
                Ok(Err(CallError::Redis(e))) => {
                    return Err(match redis::moved_to(&e) {
                        Some(to) => Failed::Moved(to),
                        None => Failed::Down(e),
                    })
                }
                Ok(Err(e)) => return Err(Failed::Down(e.to_string())),
                Ok(Ok(r)) => r,
            };
            return grant(&reply).ok_or_else(|| Failed::Down("unexpected script reply".into()));
        }
        Err(Failed::Down("script missing after reload".into()))
    }
}

enum Failed {
    Moved(std::net::SocketAddr),
    Down(String),
}

/// The script's {granted, left, µs to next token, µs to full} as a `Grant`.
fn grant(reply: &Reply) -> Option<Grant> {
    let v = reply.ints()?;
    let [granted, left, wait_us, full_us] = v.as_slice() else {
        return None;
    };
    let u32_of = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    let ns_of = |us: i64| u64::try_from(us.max(0)).unwrap_or(0).saturating_mul(1000);
    Some(Grant {
        granted: u32_of(*granted),
        remaining: u32_of(*left),
        wait_ns: ns_of(*wait_us),
        full_ns: ns_of(*full_us),
    })
}

/// The response fields of a fail-closed refusal (503): retry after a second.
pub fn closed_fields(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Retry-After: 1\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replies_become_grants() {
        let r = Reply::Array(Some(vec![
            Reply::Int(10),
            Reply::Int(90),
            Reply::Int(0),
            Reply::Int(1_000_000),
        ]));
        let g = grant(&r).unwrap();
        assert_eq!(
            (g.granted, g.remaining, g.wait_ns, g.full_ns),
            (10, 90, 0, 1_000_000_000)
        );
        let neg = Reply::Array(Some(vec![
            Reply::Int(-1),
            Reply::Int(-5),
            Reply::Int(-1),
            Reply::Int(i64::MAX),
        ]));
        let g = grant(&neg).unwrap();
        assert_eq!((g.granted, g.remaining, g.wait_ns), (0, 0, 0));
        assert_eq!(g.full_ns, u64::MAX);
        assert!(grant(&Reply::Array(Some(vec![Reply::Int(1)]))).is_none());
        assert!(grant(&Reply::Int(1)).is_none());
    }
}
