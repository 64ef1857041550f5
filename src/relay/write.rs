//! Writing a whole output buffer within a deadline, rent-style: the buffer goes to the socket
//! and comes back cleared, for reuse. Used by the relay and by every other writer of a
//! connection (answers, cached answers, upgrades, aggregation parts).

use std::io;
use std::time::Duration;

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use super::RelayError;
use crate::buf::RecvBuf;
use crate::timer::Timer;

/// Write all of `out` (then clear it) within `timeout`, on the connection's `timer`.
pub async fn write_all_timed<W: AsyncWriteRent>(
    dst: &mut W,
    out: &mut Vec<u8>,
    timeout: Duration,
    timer: &mut Timer,
) -> Result<(), RelayError> {
    write_all_by(dst, out, Instant::now() + timeout, timer).await
}

/// Write all of `out` (then clear it) by `deadline`, on the connection's `timer`: for callers
/// that already hold a fresh clock reading.
pub async fn write_all_by<W: AsyncWriteRent>(
    dst: &mut W,
    out: &mut Vec<u8>,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<(), RelayError> {
    let buf = std::mem::take(out);
    let (res, buf) = timer
        .limit_at(deadline, dst.write_all(buf))
        .await
        .map_err(|_| RelayError::WriteTimeout)?;
    give_back(out, res, buf)
}

/// Write all of `out` (then clear it) within `timeout` (for callers without a `Timer`).
pub async fn write_all<W: AsyncWriteRent>(
    dst: &mut W,
    out: &mut Vec<u8>,
    timeout: Duration,
) -> Result<(), RelayError> {
    let buf = std::mem::take(out);
    let (res, buf) = monoio::time::timeout(timeout, dst.write_all(buf))
        .await
        .map_err(|_| RelayError::WriteTimeout)?;
    give_back(out, res, buf)
}

/// A finished write of `buf`, taken from `out`: on success it goes back to `out`, cleared.
fn give_back(
    out: &mut Vec<u8>,
    res: io::Result<usize>,
    mut buf: Vec<u8>,
) -> Result<(), RelayError> {
    res.map_err(RelayError::WriteIo)?;
    buf.clear();
    *out = buf;
    Ok(())
}

/// Write the first `n` pending bytes of `inbuf` (then consume them) by `deadline`, without
/// copying them.
pub(super) async fn write_front_by<W: AsyncWriteRent>(
    dst: &mut W,
    inbuf: &mut RecvBuf,
    n: usize,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<(), RelayError> {
    timer
        .limit_at(deadline, inbuf.write_front(dst, n))
        .await
        .map_err(|_| RelayError::WriteTimeout)?
        .map_err(RelayError::WriteIo)
}
