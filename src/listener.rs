//! Listening sockets: bound on the main thread (one SO_REUSEPORT socket per listener per shard,
//! so bind errors surface at start-up and port 0 resolves once), then accepted from on each
//! shard. The accept loop gates on the listener's client IP rules and the shard's connection
//! limits (total and per client IP), and hands each client to a connection task (`Workers`).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, warn};

use crate::connection::{Accepted, Workers};
use crate::metrics::ListenerStats;
use crate::shard::Shard;
use crate::signal::Signal;

const BACKLOG: i32 = 4096;

/// The wait in `close`: long enough for the runtime to park once (monoio's timer counts whole
/// milliseconds), which is when queued operations reach the kernel.
const CLOSE_TURN: Duration = Duration::from_millis(1);

/// Bind `count` sockets sharing `addr` with SO_REUSEPORT; returns them and the bound address
/// (with the real port when `addr` asked for port 0).
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<(Vec<StdListener>, SocketAddr)> {
    // SO_REUSEPORT would silently share a port with another process that also set it (for
    // example a second coregate). Probe with a plain socket first so that a port in use is an
    // error, as users expect.
    let probe = socket(addr, false)?;
    let bound = probe.local_addr()?.as_socket().unwrap_or(addr);
    drop(probe);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(socket(bound, true)?.into());
    }
    Ok((out, bound))
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux clones the listener's
    // options), which saves a setsockopt per connection (test below).
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    if reuse_port {
        s.listen(BACKLOG)?;
        // Delayed ACKs from a connection's first byte, as HAProxy does for HTTP: in the quick-ACK
        // mode a new connection starts in, the request is acknowledged at once by a segment of
        // its own, although the response follows and would carry the ACK. Accepted sockets
        // inherit the setting; it is set after listen(), which clears it (test below).
        s.set_quickack(false)?;
    }
    Ok(s)
}

/// Close a listener so that its port is free when this returns. With io_uring, dropping a
/// listener only queues the cancel of its pending accept and the close; they reach the kernel at
/// the driver's next turn. A runtime that ended first would leave the socket to the kernel's
/// teardown of the ring, which finishes after the process has exited: for a few milliseconds the
/// port would stay bound, and a restart that binds at once (`systemctl restart`, a script's
/// kill-then-start) would fail with "address in use" (1 start in 5 in such a loop before this).
/// `tests/lifecycle.rs` checks it.
pub async fn close(listener: TcpListener) {
    drop(listener);
    monoio::time::sleep(CLOSE_TURN).await;
}

/// What a connection needs to know about the listener it came from.
pub struct ListenerCtx {
    pub name: Rc<str>,
    /// This shard's TLS acceptor when the listener speaks HTTPS.
    pub tls: Option<monoio_rustls::TlsAcceptor>,
    /// Client IPs let in (`allow` / `deny`); others are closed before any byte is read.
    pub access: crate::gateway::access::IpRules,
    /// This shard's counters for the listener (kept across reloads).
    pub stats: Rc<ListenerStats>,
}

impl std::fmt::Debug for ListenerCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerCtx")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ListenerCtx {
    /// "https" or "http", for X-Forwarded-Proto.
    pub fn scheme(&self) -> &'static [u8] {
        if self.tls.is_some() {
            b"https"
        } else {
            b"http"
        }
    }
}

/// Accept on listener `id` until the shard's stop signal or the listener's own `stop` fires
/// (shutdown, or the listener left the config). Each connection takes the listener's context
/// (TLS, access rules, counters) from the snapshot current when it is accepted.
pub async fn accept_loop(shard: Rc<Shard>, id: u64, std: StdListener, stop: Rc<Signal>) {
    let listener = match TcpListener::from_std(std) {
        Ok(l) => l,
        Err(e) => {
            warn!(shard = shard.id, listener = id, error = %e, "cannot register listener");
            return;
        }
    };
    shard.listening_started();
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = shard.stop.wait() => break,
            _ = stop.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(ctx) = shard.snapshot().listener(id).cloned() else {
                    continue;
                };
                if !ctx.access.permits(peer.ip()) {
                    debug!(shard = shard.id, %peer, listener = %ctx.name, "client IP refused by the listener's access rules; closing");
                    ctx.stats.c.refused.inc();
                    continue;
                }
                if !shard.admit_connection(peer.ip()) {
                    debug!(shard = shard.id, %peer, "connection limit (shard or client IP) reached; closing");
                    ctx.stats.c.refused.inc();
                    continue;
                }
                ctx.stats.c.accepted.inc();
                let accepted = Accepted {
                    tcp: stream,
                    peer,
                    listener: ctx,
                };
                Workers::dispatch(&shard, accepted.into());
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                warn!(shard = shard.id, listener = id, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    close(listener).await;
    shard.listening_finished();
    debug!(shard = shard.id, listener = id, "stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// coregate sets neither TCP_NODELAY nor TCP_QUICKACK per accepted connection: it relies
    /// on the kernel copying them from the listener. If a kernel stops doing so, this fails.
    #[test]
    fn accepted_sockets_inherit_nodelay_and_delayed_acks() {
        let (listeners, addr) = bind_shared("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let listener = &listeners[0];
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no connection accepted"
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
        // And delayed ACKs: TCP_QUICKACK reads back 0 once the socket is in pingpong mode.
        assert!(!socket2::SockRef::from(&accepted).quickack().unwrap());
    }
}
