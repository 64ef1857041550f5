//! Upstream side: connections to servers, the per-shard pools of idle ones, the retry rules
//! of the attempt loop, and the re-resolution of servers given by hostname.

pub mod dns;
pub mod pool;
pub mod retry;
pub mod tls;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::buf::RecvBuf;
use crate::error::ProxyError;
use crate::stream::{Stream, CLOSE_NOTIFY_WAIT};

/// Initial read buffer of an upstream connection. 32 KiB takes a response head and a body of up
/// to ~32 KiB in one read: with 16 KiB, a 16 KiB response needed two upstream reads and two
/// client writes (6 io_uring operations and 3.4 segments per request instead of 4 and 2).
/// nginx's default proxy buffers hold 32–64 KiB per request; HAProxy uses two 16 KiB buffers.
const UPSTREAM_BUF_BYTES: usize = 32 * 1024;
/// Room kept in front of each response read, so that a response head longer than the
/// upstream's (a `Via`, added fields) still fits in front of the body: the two go out in one
/// write without copying the body (`Relay::stage`).
const HEAD_ROOM_BYTES: usize = 256;

/// A connection to one upstream server, with its read buffer. It travels boxed (`connect`
/// makes it so, the pool keeps it so): a request moves it a dozen times, from the pool through
/// the attempt and the response back to the pool, and 8 bytes move cheaper than ~190.
#[derive(Debug)]
pub struct UpstreamConn {
    pub stream: Stream,
    pub buf: RecvBuf,
    /// Pool (server address) it belongs to.
    pub pool: usize,
    /// The IP it is connected to.
    pub addr: SocketAddr,
    /// Came from the idle pool: it may have been closed by the server meanwhile.
    pub reused: bool,
    pub idle_since: std::time::Instant,
}

impl UpstreamConn {
    /// Close a connection coregate no longer wants (idle too long, pool full, address gone)
    /// or its server ended (`Connection: close`, a body delimited by the close), or one left
    /// unusable after an answer.
    /// Over TLS, close_notify first (RFC 8446 §6.1 says each side MUST), in a task of its own
    /// that waits at most `CLOSE_NOTIFY_WAIT`: a server that logs a close without it (Java's
    /// SSLEngine warns of a "possible truncation attack") sees a clean end. Plain TCP: the
    /// socket just closes. On a shard only (it spawns for TLS).
    pub fn close(mut self: Box<Self>) {
        if self.stream.is_tls() {
            monoio::spawn(async move {
                let shut = self.stream.shutdown();
                let _ = monoio::time::timeout(CLOSE_NOTIFY_WAIT, shut).await;
            });
        }
    }
}

/// How to secure a new connection: the shard's TLS connector for the cluster and the name to
/// send and check (`None` when the server's host makes none: the handshake then fails).
/// `None` altogether: plain TCP.
pub type TlsTarget<'a> = Option<(&'a monoio_rustls::TlsConnector, Option<ServerName<'static>>)>;

/// Open a new connection (TCP, then the TLS handshake when `tls` says so) within `timeout`.
pub async fn connect(
    addr: SocketAddr,
    pool: usize,
    timeout: Duration,
    tls: TlsTarget<'_>,
) -> Result<Box<UpstreamConn>, ProxyError> {
    let deadline = monoio::time::Instant::now() + timeout;
    let tcp = match monoio::time::timeout_at(deadline, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::UpstreamConnect(e.kind())),
        Err(_) => return Err(ProxyError::UpstreamConnectTimeout),
    };
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let stream = match tls {
        None => Stream::from(tcp),
        Some((_, None)) => return Err(ProxyError::UpstreamTls),
        Some((connector, Some(name))) => {
            // A cancelled handshake leaves nothing to reuse: the stream is dropped.
            match monoio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
                Ok(Ok(s)) => Stream::tls_up(s, fd),
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "upstream TLS handshake failed");
                    return Err(ProxyError::UpstreamTls);
                }
                Err(_) => return Err(ProxyError::UpstreamConnectTimeout),
            }
        }
    };
    Ok(Box::new(UpstreamConn {
        stream,
        buf: RecvBuf::with_capacity(UPSTREAM_BUF_BYTES).with_headroom(HEAD_ROOM_BYTES),
        pool,
        addr,
        reused: false,
        idle_since: std::time::Instant::now(),
    }))
}
