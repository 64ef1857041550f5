//! One active health probe: connect (and TLS for an HTTPS cluster), `GET path` with `Connection: close`, read the status line,
//! all within the check's timeout. Runs on the control thread, never on a shard.

use std::net::SocketAddr;

use monoio::io::AsyncWriteRentExt;

use crate::buf::RecvBuf;
use crate::config::HealthCheck;
use crate::http::response::{self, ResponseError};

/// Largest probe response head read.
const HEAD_BYTES_MAX: usize = 16 * 1024;

/// The probe request for `check` to a server known as `address` (sent as Host).
pub fn request(check: &HealthCheck, address: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: coregate-health-check\r\n\
Accept: */*\r\nConnection: close\r\n\r\n",
        check.path
    )
    .into_bytes()
}

/// Probe once. `Ok(status)` when a response head arrived in time, else why not.
pub async fn probe(
    addr: SocketAddr,
    request: &[u8],
    check: &HealthCheck,
    tls: crate::upstream::TlsTarget<'_>,
) -> Result<u16, &'static str> {
    let exchange = exchange(addr, request.to_vec(), check, tls);
    match monoio::time::timeout(check.timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err("timed out"),
    }
}

/// Whether `status` passes `check`.
pub fn passes(check: &HealthCheck, status: u16) -> bool {
    check.expect_status.contains(&status)
}

/// Connect (TLS too for a `[upstream.tls]` cluster), send, read the head.
async fn exchange(
    addr: SocketAddr,
    request: Vec<u8>,
    check: &HealthCheck,
    tls: crate::upstream::TlsTarget<'_>,
) -> Result<u16, &'static str> {
    let up = crate::upstream::connect(addr, 0, check.timeout, tls)
        .await
        .map_err(|e| match e {
            crate::error::ProxyError::UpstreamTls => "TLS handshake failed",
            _ => "connect failed",
        })?;
    let mut stream = up.stream;
    let (res, _) = stream.write_all(request).await;
    res.map_err(|_| "write failed")?;
    let mut buf = RecvBuf::with_capacity(1024);
    let mut fields = Vec::new();
    loop {
        // The proxy's own strict parser: a head it would refuse as 502 fails the probe too.
        match response::parse(buf.pending(), false, HEAD_BYTES_MAX, &mut fields) {
            Ok(Some(head)) => return Ok(head.status),
            Ok(None) => {}
            Err(ResponseError::TooLarge) => return Err("response head too large"),
            Err(ResponseError::Malformed(why)) => return Err(why),
        }
        match buf.fill(&mut stream, HEAD_BYTES_MAX).await {
            Ok(0) => return Err("closed before a response"),
            Ok(_) => {}
            Err(_) => return Err("read failed"),
        }
    }
}
