//! The worker of one Redis link (one per shard and global policy): owns the connection,
//! answers the link's queue in order (from a lease fetched meanwhile, or by one `EVALSHA`),
//! notices a closed connection while idle, follows Redis Cluster `MOVED` redirections, loads
//! the script again after `NOSCRIPT`, and reconnects with a bounded back-off.

use std::rc::Rc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{Fetch, Link};
use crate::gateway::bucket::Grant;
use crate::gateway::rate_limit::{From, GlobalSettings, RateLimitPolicy};
use crate::redis::conn::{CallError, Conn};
use crate::redis::{self, resp::Reply, RedisTarget};
use crate::shard::Shard;

/// Reconnect back-off: first wait, doubling up to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Redirections (`MOVED`) followed for one request.
const REDIRECTS_MAX: usize = 2;
/// Script loads per request (after `NOSCRIPT`: Redis restarted or flushed its scripts).
const SCRIPT_LOADS_MAX: usize = 1;

/// The worker of one link: owns the connection, answers the queue, reconnects.
pub(super) struct Worker {
    pub shard: Rc<Shard>,
    pub link: Rc<Link>,
    pub policy: usize,
    pub p: RateLimitPolicy,
    pub settings: GlobalSettings,
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
    pub async fn run(self) {
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
