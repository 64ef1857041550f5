//! Upstream side: connections to servers, the per-shard pools of idle ones, the retry rules
//! of the attempt loop, and the re-resolution of servers given by hostname.

pub mod dns;
pub mod pool;
pub mod retry;

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::buf::RecvBuf;
use crate::error::ProxyError;
use crate::stream::Stream;

/// Initial read buffer of an upstream connection.
const UPSTREAM_BUF_BYTES: usize = 16 * 1024;

/// A connection to one upstream server, with its read buffer.
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

/// Open a new connection within `timeout`.
pub async fn connect(
    addr: SocketAddr,
    pool: usize,
    timeout: Duration,
) -> Result<UpstreamConn, ProxyError> {
    let stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::UpstreamConnect(e.kind())),
        Err(_) => return Err(ProxyError::UpstreamConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    Ok(UpstreamConn {
        stream: Stream::from(stream),
        buf: RecvBuf::with_capacity(UPSTREAM_BUF_BYTES),
        pool,
        addr,
        reused: false,
        idle_since: std::time::Instant::now(),
    })
}
